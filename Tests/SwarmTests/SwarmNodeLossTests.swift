import Foundation
import TestSupport
import XCTest

/// A node that goes away: its workspaces cannot move (their homes are local volumes), so a
/// login says at once where the workspace is and why, `ps` shows it, other users go on,
/// first logins wait rather than make a second home, and the workspace is back, with its
/// data, with the node, after a shutdown and after a crash.
final class SwarmNodeLossTests: SwarmGatewayTestCase {
    /// A worker: stopping the manager would stop the swarm.
    static let lostNode = "devenv-swarm-node3"
    var nodeAway = false

    override func tearDown() {
        if nodeAway { _ = try? runProgram("/usr/bin/docker", ["start", Self.lostNode]) }
        super.tearDown()
    }

    func testAWorkspaceOnAStoppedNodeIsReportedAndComesBackWithIt() throws {
        let users = ["ann", "ben", "cid"]
        let identities = try registerStartAndLogIn(users)
        let placed = try workspaces()
        let lost = try XCTUnwrap(users.firstIndex { placed[$0]?.node == Self.lostNode }, "nobody on \(Self.lostNode): \(placed)")
        let kept = try XCTUnwrap(users.firstIndex { placed[$0]?.node != Self.lostNode && placed[$0]?.node != nil })
        let (lostUser, keptUser) = (users[lost], users[kept])
        XCTAssertEqual(try identities[lost].ssh(lostUser, port: gateway.port, "echo kept > ~/mark").status, 0)

        // The node is shut down (its engine stops its containers and exits).
        XCTAssertEqual(try runProgram("/usr/bin/docker", ["stop", "-t", "60", Self.lostNode]).status, 0)
        nodeAway = true
        try waitFor("the manager to see \(Self.lostNode) down", timeout: 90) { try self.nodeState() == "down" }

        let begun = Date()
        let refused = try identities[lost].ssh(lostUser, port: gateway.port, "true")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(begun), 15, "the login is refused at once, not after the sshd wait")
        XCTAssertTrue(refused.stderr.contains("lives on swarm node \(Self.lostNode), which is down"), refused.stderr)
        XCTAssertEqual(try workspaces()[lostUser]?.state, "node-unavailable")
        XCTAssertEqual(try identities[kept].ssh(keptUser, port: gateway.port, "true").status, 0, "\(keptUser) goes on")
        let dan = try register("dan")
        let first = try dan.ssh("dan", port: gateway.port, "true")
        XCTAssertNotEqual(first.status, 0, "a first login while a node that may hold the home is away")
        XCTAssertTrue(first.stderr.contains("cannot tell whether the home of dan is on swarm node \(Self.lostNode)"),
                      first.stderr)

        try startLostNode()
        try expectBack(identities[lost], lostUser, after: "the node's return")
        XCTAssertEqual(try dan.ssh("dan", port: gateway.port, "true").status, 0, "dan's first login once the node is back")

        // Killed instead (a crash): back as well, since the node's engine starts with its
        // local network store cleared (moby#37087 otherwise; docs/scale-out.md).
        XCTAssertEqual(try runProgram("/usr/bin/docker", ["kill", Self.lostNode]).status, 0)
        nodeAway = true
        try startLostNode()
        // The swarm starts it again once the node reports its old task dead.
        try waitFor("\(lostUser)'s workspace to run on \(Self.lostNode) again", timeout: 90) {
            let label = "com.docker.swarm.service.name=\(self.gateway.prefix)-\(lostUser)"
            return ((try? TestSwarm.engine(Self.lostNode).listContainers(labels: [label])) ?? []).contains { $0.state == "running" }
        }
        try expectBack(identities[lost], lostUser, after: "a crash of the node")
    }

    private func nodeState() throws -> String? {
        try TestSwarm.manager.listNodes().first { $0.hostname == Self.lostNode }?.state
    }

    /// Starts the node's container again and waits until its engine answers and the
    /// manager has it ready (after a kill and a quick start the manager may never have
    /// marked it down, so "ready" alone does not say the engine is back).
    private func startLostNode() throws {
        XCTAssertEqual(try runProgram("/usr/bin/docker", ["start", Self.lostNode]).status, 0)
        nodeAway = false
        try waitFor("\(Self.lostNode)'s engine to answer", timeout: 90) {
            (try? TestSwarm.engine(Self.lostNode).apiVersion()) != nil
        }
        try waitFor("\(Self.lostNode) to be ready again", timeout: 90) { try self.nodeState() == "ready" }
    }

    private func expectBack(_ identity: SSHClientIdentity, _ user: String, after event: String,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let back = try identity.ssh(user, port: gateway.port, "cat ~/mark")
        XCTAssertEqual(back.status, 0, "\(user) after \(event): \(back.stderr)", file: file, line: line)
        XCTAssertEqual(back.output, "kept\n", "\(user)'s data after \(event)", file: file, line: line)
        XCTAssertEqual(try workspaces()[user]?.node, Self.lostNode, file: file, line: line)
    }
}
