import Foundation
import TestSupport
import XCTest

/// A workspace cannot open a TCP connection to another user's, on its node or another.
final class SwarmIsolationTests: SwarmGatewayTestCase {
    func testWorkspacesCannotConnectToEachOtherOnTheSameOrAnotherNode() throws {
        // Placed one by one on the node with the fewest: 1, 2, 3, then 1 again.
        let users = ["ann", "ben", "cid", "dot"]
        let identities = try registerStartAndLogIn(users)
        let placed = try workspaces()
        let annNode = try XCTUnwrap(placed["ann"]?.node)
        let sameNode = try XCTUnwrap(users.dropFirst().first { placed[$0]?.node == annNode })
        let otherNode = try XCTUnwrap(users.first { placed[$0]?.node != annNode })
        let probe = { (address: String) in
            "python3 -c \"import socket; socket.create_connection(('\(address)', 22), 3); print('connected')\""
        }
        // The probe itself works: ann reaches her own sshd.
        let own = try identities[0].ssh("ann", port: gateway.port, probe(try address(of: "ann")))
        XCTAssertEqual(own.output, "connected\n", own.stderr)
        for other in [sameNode, otherNode] {
            let target = try address(of: other)
            let tried = try identities[0].ssh("ann", port: gateway.port, probe(target))
            XCTAssertNotEqual(tried.status, 0, "ann reached \(other)'s sshd at \(target)")
            XCTAssertFalse(tried.output.contains("connected"), "ann reached \(other) (\(placed[other]?.node ?? "?"))")
        }
    }
}
