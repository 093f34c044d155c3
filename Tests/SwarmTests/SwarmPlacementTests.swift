import Foundation
import TestSupport
import XCTest

/// Workspaces spread over the swarm's nodes and stay with their home volumes.
final class SwarmPlacementTests: SwarmGatewayTestCase {
    func testNineUsersLandOnAllNodesAndReturnToTheirVolumesAfterIdleStopAndRestart() throws {
        let users = (1...9).map { "user\($0)" }
        let identities = try users.map { try register($0) }
        // No idle stops while they log in one by one: each goes to the node with the fewest running.
        try gateway.start()
        for (user, identity) in zip(users, identities) {
            let wrote = try identity.ssh(user, port: gateway.port, "echo data-of-\(user) > ~/mark && hostname")
            XCTAssertEqual(wrote.status, 0, wrote.stderr)
        }
        let placed = try workspaces()
        let nodes = users.compactMap { placed[$0]?.node }
        XCTAssertEqual(nodes.count, 9, "every user has a node: \(placed)")
        XCTAssertEqual(Set(nodes), Set(TestSwarm.nodes), "the nine workspaces use all three nodes")
        for node in TestSwarm.nodes { XCTAssertEqual(nodes.filter { $0 == node }.count, 3, "fewest running first: \(nodes)") }

        // A gateway restart with a short idle timeout: idle stop scales each service to zero.
        gateway.stop()
        gateway.extraArguments = ["--idle-timeout", "4"]
        try gateway.start()
        try waitFor("every workspace is stopped", timeout: 90) {
            try self.workspaces().filter { users.contains($0.key) }.allSatisfy { $0.value.state == "stopped" }
        }
        let nodeCounts = try TestSwarm.manager.listNodes().count
        XCTAssertEqual(nodeCounts, 3)
        try checkEachUser(users, identities, against: placed, after: "idle stop")

        gateway.stop()
        gateway.extraArguments = []
        try gateway.start()
        try checkEachUser(users, identities, against: placed, after: "a gateway restart")
    }

    private func checkEachUser(_ users: [String], _ identities: [SSHClientIdentity],
                               against placed: [String: (node: String?, state: String)], after event: String) throws {
        for (user, identity) in zip(users, identities) {
            let read = try identity.ssh(user, port: gateway.port, "cat ~/mark")
            XCTAssertEqual(read.status, 0, "\(user) after \(event): \(read.stderr)")
            XCTAssertEqual(read.output, "data-of-\(user)\n", "\(user)'s data after \(event)")
        }
        let now = try workspaces()
        for user in users {
            XCTAssertEqual(now[user]?.node, placed[user]?.node, "\(user) is back on the node with its volume after \(event)")
        }
    }

    /// Six first logins at the same moment: each node gets two, not whichever node looked
    /// emptiest to all of them at once.
    func testFirstLoginsAtOnceSpreadOverTheNodes() throws {
        let users = (1...6).map { "burst\($0)" }
        var identities: [String: SSHClientIdentity] = [:]
        for user in users { identities[user] = try register(user) }
        try gateway.start()
        let script = users.map { user in
            "(\(identities[user]!.sshCommandLine(user, port: gateway.port)) 'id -un' > \(keys.path)/\(user).out 2>&1; "
                + "echo $? >> \(keys.path)/\(user).out) &"
        }.joined(separator: "\n") + "\nwait"
        XCTAssertEqual(try runShell(script).status, 0)
        for user in users {
            XCTAssertEqual(try String(contentsOfFile: "\(keys.path)/\(user).out", encoding: .utf8), "\(user)\n0\n", user)
        }
        let placed = try workspaces()
        let nodes = users.compactMap { placed[$0]?.node }
        XCTAssertEqual(nodes.count, 6, "every user has a node: \(placed)")
        for node in TestSwarm.nodes {
            XCTAssertEqual(nodes.filter { $0 == node }.count, 2, "two first logins on each node: \(nodes)")
        }
    }

    func testNodesListsEveryNodeWithItsWorkspaceCount() throws {
        let alice = try register("alice")
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        let listed = try gateway.admin(["nodes", "--json"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        struct Row: Decodable { let node: String; let workspaces: Int; let running: Int; let guardState: String }
        let rows = try JSONDecoder().decode([Row].self, from: listed.stdout)
        XCTAssertEqual(rows.map(\.node), TestSwarm.nodes)
        XCTAssertEqual(rows.map(\.guardState), ["running", "running", "running"], "each node's guard runs")
        XCTAssertEqual(rows.map(\.workspaces).reduce(0, +), 1)
        XCTAssertEqual(rows.first { $0.node == (try? self.workspaces()["alice"]?.node) ?? nil }?.running, 1)
        let table = try gateway.admin(["ps"])
        XCTAssertTrue(table.output.contains("NODE"), table.output)
    }
}
