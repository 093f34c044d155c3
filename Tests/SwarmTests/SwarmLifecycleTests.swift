import Foundation
import TestSupport
import XCTest

/// Backup, restore and upgrade of workspaces on other nodes than the manager.
final class SwarmLifecycleTests: SwarmGatewayTestCase {
    func testBackupOnOneNodeRestoresAsANewUser() throws {
        // Two logins first, so alice's workspace is not on the manager's node.
        let filler = try register("filler")
        let alice = try register("alice")
        try gateway.start()
        XCTAssertEqual(try filler.ssh("filler", port: gateway.port, "true").status, 0)
        let wrote = try alice.ssh("alice", port: gateway.port, "mkdir -p ~/src && echo kept > ~/src/notes && chmod 600 ~/src/notes")
        XCTAssertEqual(wrote.status, 0, wrote.stderr)
        let aliceNode = try XCTUnwrap(try workspaces()["alice"]?.node)
        XCTAssertNotEqual(aliceNode, TestSwarm.nodes[0], "alice's workspace is on a worker")

        let archive = keys.appendingPathComponent("alice.tar").path
        let backup = try gateway.admin(["backup", "alice", "-o", archive])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        // alice goes, workspace and home (her keys may belong to one user only).
        let purged = try gateway.admin(["deluser", "alice", "--purge", "--yes"])
        XCTAssertEqual(purged.status, 0, purged.stderr)
        XCTAssertNil(try workspaces()["alice"], "nothing of alice is left on \(aliceNode)")
        let restore = try gateway.admin(["restore", "carol", "-i", archive, "--rename-from", "alice"])
        XCTAssertEqual(restore.status, 0, restore.stderr)
        // carol was registered from the archive with alice's keys.
        let read = try alice.ssh("carol", port: gateway.port, "cat ~/src/notes; stat -c '%a %U' ~/src/notes")
        XCTAssertEqual(read.status, 0, read.stderr)
        XCTAssertEqual(read.output, "kept\n600 carol\n")
        XCTAssertNotNil(try workspaces()["carol"]?.node)
    }

    /// A home that holds data is replaced only with --force, which saves it first; the
    /// workspace stays on its node.
    func testRestoreWithForceOverAWorkspaceOnAWorkerSavesTheReplacedHome() throws {
        let alice = try registerStartAndLogIn(["filler", "alice"])[1]
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo from-backup > ~/kept").status, 0)
        let aliceNode = try XCTUnwrap(try workspaces()["alice"]?.node)
        XCTAssertNotEqual(aliceNode, TestSwarm.nodes[0], "alice's workspace is on a worker")
        let archive = keys.appendingPathComponent("alice.tar").path
        let backup = try gateway.admin(["backup", "alice", "-o", archive])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo after-backup > ~/kept").status, 0)

        let refused = try gateway.admin(["restore", "alice", "-i", archive])
        XCTAssertNotEqual(refused.status, 0, "a home with data is not replaced without --force")
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat ~/kept").output, "after-backup\n", "nothing changed")

        let saveDirectory = keys.appendingPathComponent("replaced").path
        let forced = try gateway.admin(["restore", "alice", "-i", archive, "--force", "--save-dir", saveDirectory])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        let read = try alice.ssh("alice", port: gateway.port, "cat ~/kept")
        XCTAssertEqual(read.output, "from-backup\n", read.stderr)
        XCTAssertEqual(try workspaces()["alice"]?.node, aliceNode, "the restored home is on alice's node")
        let saved = try FileManager.default.contentsOfDirectory(atPath: saveDirectory)
        XCTAssertEqual(saved.count, 1, "one saved home: \(saved)")
        let savedHome = try runProgram("/usr/bin/tar", ["-xOf", "\(saveDirectory)/\(saved.first ?? "")", "home/kept"])
        XCTAssertEqual(savedHome.output, "after-backup\n", "the replaced home was saved first: \(savedHome.stderr)")
    }

    func testUpgradeKeepsData() throws {
        // A new image on alice's node: the workspace image with one more label.
        let tag = "devenv-workspace:swarm-\(gateway.prefix)"
        let (alice, node) = try aliceWithImageOnHerNode(kept: "before-upgrade", tag: tag,
                                                        dockerfileLine: "LABEL devenv.test=\(gateway.prefix)")
        let upgraded = try gateway.admin(["upgrade", "alice", "--image", tag, "--now"])
        XCTAssertEqual(upgraded.status, 0, upgraded.stderr + upgraded.output)
        let read = try alice.ssh("alice", port: gateway.port, "cat ~/kept")
        XCTAssertEqual(read.output, "before-upgrade\n", read.stderr)
        let running = try TestSwarm.engine(node).listContainers(labels: ["com.docker.swarm.service.name=\(gateway.prefix)-alice"])
            .filter { $0.state == "running" }
        XCTAssertEqual(running.map(\.image), [tag], "the workspace runs the new image")
        XCTAssertEqual(try workspaces()["alice"]?.node, node, "an upgrade keeps the node")
    }

    func testANameRegisteredAgainGetsANewServiceOnTheSameHomeAndNode() throws {
        let alice = try register("alice")
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo first-owner > ~/kept").status, 0)
        let node = try XCTUnwrap(try workspaces()["alice"]?.node)
        let service = "\(gateway.prefix)-alice"
        let before = try TestSwarm.manager.inspectService(service)
        let oldSecret = try XCTUnwrap(try TestSwarm.manager.secretID(named: try XCTUnwrap(before.labels["devenv.identity-secret"])))

        XCTAssertEqual(try gateway.admin(["deluser", "alice"]).status, 0)
        let again = try SSHClientIdentity(named: "alice-again", in: keys)
        XCTAssertEqual(try gateway.admin(["adduser", "alice", "--key", again.publicKeyLine]).status, 0)
        let read = try again.ssh("alice", port: gateway.port, "cat ~/kept")
        XCTAssertEqual(read.output, "first-owner\n", "the kept home is reattached: \(read.stderr)")
        let after = try TestSwarm.manager.inspectService(service)
        XCTAssertNotEqual(after.id, before.id, "the earlier owner's service is not reused")
        XCTAssertNotEqual(after.labels["devenv.registration"], before.labels["devenv.registration"])
        XCTAssertEqual(try workspaces()["alice"]?.node, node, "the new service is on the home's node")
        // Same uid and host key give a secret of the same name, but not the same secret.
        let newSecret = try XCTUnwrap(after.labels["devenv.identity-secret"])
        XCTAssertNotEqual(try TestSwarm.manager.secretID(named: newSecret), oldSecret, "the earlier identity secret is gone")
    }

    func testAnUpgradeWhoseWorkspaceDoesNotComeUpIsSetBack() throws {
        // An image whose entrypoint is gone: its tasks fail at start.
        let tag = "devenv-workspace:broken-\(gateway.prefix)"
        let (alice, _) = try aliceWithImageOnHerNode(kept: "before", tag: tag,
                                                     dockerfileLine: "RUN rm /usr/local/sbin/devenv-entrypoint")
        let upgraded = try gateway.admin(["upgrade", "alice", "--image", tag, "--now"])
        XCTAssertEqual(upgraded.status, 1, upgraded.output + upgraded.stderr)
        XCTAssertTrue((upgraded.output + upgraded.stderr).contains("did not come up"), upgraded.output + upgraded.stderr)
        XCTAssertEqual(try TestSwarm.manager.inspectService("\(gateway.prefix)-alice").image, DockerTestEnvironment.workspaceImage,
                       "the service is set back to the old image")
        let read = try alice.ssh("alice", port: gateway.port, "cat ~/kept")
        XCTAssertEqual(read.output, "before\n", read.stderr)
    }

    /// Registers alice, logs her in and writes `kept` to ~/kept, then builds `tag` on her
    /// node: the workspace image plus `dockerfileLine`. The image goes at tear-down.
    private func aliceWithImageOnHerNode(kept: String, tag: String,
                                         dockerfileLine: String) throws -> (SSHClientIdentity, String) {
        let alice = try register("alice")
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo \(kept) > ~/kept").status, 0)
        let node = try XCTUnwrap(try workspaces()["alice"]?.node)
        let built = try runShell("printf 'FROM \(DockerTestEnvironment.workspaceImage)\\n\(dockerfileLine)\\n' "
                                 + "| docker -H \(TestSwarm.endpoint(node)) build -q -t \(tag) - 2>&1")
        XCTAssertEqual(built.status, 0, built.output)
        nodeImages.append((node, tag))
        return (alice, node)
    }
}
