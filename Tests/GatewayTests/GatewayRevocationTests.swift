import DockerEngine
import Foundation
import TestSupport
import XCTest

/// Access ends when an admin says so: `deluser` and `keys remove`, run as separate
/// processes, end the open connections they revoke within seconds, and a name registered
/// again never reaches the container of its earlier owner.
final class GatewayRevocationTests: GatewayTestCase {
    /// The journal is shared by every test run: a fresh user name picks this test's events.
    private var user: String!

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = "rv" + String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
    }

    func testDeluserEndsEveryConnectionAndStopsTheWorkspace() throws {
        try Journal.requireJournald()
        let identity = try register(user)
        try gateway.start()
        let master = try startMaster(identity, "m")
        XCTAssertEqual(try mux(master.socket, "id -un").output, "\(user!)\n")
        // A session in progress over the master, and a plain connection of the same user.
        let session = try startBackground("/usr/bin/ssh", muxArguments(master.socket, "sleep 120"))
        let plain = try startSSH(identity, user, ["-N"])
        try waitFor("the plain connection is authenticated") {
            try Journal.read(["DEVENV_USER=\(user!)", "DEVENV_EVENT=auth-accepted"]).count >= 2
        }

        let removed = Date()
        let result = try gateway.admin(["deluser", user])
        XCTAssertEqual(result.status, 0, result.stderr)
        try waitFor("the master, its session and the plain connection end", timeout: 6) {
            !master.process.isRunning && !session.isRunning && !plain.isRunning
        }
        XCTAssertLessThan(Date().timeIntervalSince(removed), 6)
        let told = try String(contentsOfFile: master.stderr, encoding: .utf8)
        XCTAssertTrue(told.contains("devenv-gw: access revoked: user \(user!) was removed"), told)
        XCTAssertNotEqual(try runProgram("/usr/bin/ssh", ["-S", master.socket, "-O", "check", "x"]).status, 0)
        XCTAssertNotEqual(try mux(master.socket, "true").status, 0, "a new session over the old socket fails")

        var events: [JournalEntry] = []
        try waitFor("both connections' revocations are in the journal") {
            events = try Journal.read(["DEVENV_USER=\(user!)", "DEVENV_EVENT=access-revoked"])
            return events.count >= 2
        }
        XCTAssertEqual(events.count, 2, "one event per connection")
        for event in events {
            XCTAssertEqual(event["MESSAGE_ID"], "71e3a62255455e8516fb2025e0c0a59c")
            XCTAssertEqual(event["PRIORITY"], "5")
            XCTAssertEqual(event["DEVENV_REASON"], "user \(user!) was removed")
            XCTAssertNotNil(event["DEVENV_SESSION_ID"])
        }
        let container = try gateway.docker.inspectContainer("\(gateway.prefix)-\(user!)")
        XCTAssertFalse(container.state.running, "deluser stops the workspace")
        XCTAssertNoThrow(try gateway.docker.inspectVolume("\(gateway.prefix)-\(user!)-home"), "the home volume stays")
        try waitFor("the stop is audited") {
            try Journal.read(["DEVENV_USER=\(user!)", "DEVENV_EVENT=workspace-stopped"]).first?["DEVENV_REASON"]
                == "user removed"
        }
    }

    func testKeysRemoveEndsOnlyTheConnectionsOfThatKey() throws {
        try Journal.requireJournald()
        let first = try register(user)
        let second = try SSHClientIdentity(named: "second", in: keys)
        XCTAssertEqual(try gateway.admin(["keys", "add", user, "--key", second.publicKeyLine]).status, 0)
        try gateway.start()
        let revoked = try startMaster(first, "first")
        let kept = try startMaster(second, "second")
        XCTAssertEqual(try mux(revoked.socket, "true").status, 0)
        XCTAssertEqual(try mux(kept.socket, "true").status, 0)

        let fingerprint = try self.fingerprint(of: first)
        let result = try gateway.admin(["keys", "remove", user, fingerprint])
        XCTAssertEqual(result.status, 0, result.stderr)
        // At once, before the periodic check can have run: a new channel is refused.
        XCTAssertNotEqual(try mux(revoked.socket, "echo still here").output, "still here\n")
        try waitFor("the first key's master ends", timeout: 6) { !revoked.process.isRunning }
        let told = try String(contentsOfFile: revoked.stderr, encoding: .utf8)
        XCTAssertTrue(told.contains("devenv-gw: access revoked: key \(fingerprint) was removed from user \(user!)"), told)
        XCTAssertNotEqual(try runProgram("/usr/bin/ssh", ["-S", revoked.socket, "-O", "check", "x"]).status, 0)

        // The other key's connection is untouched, and so is the workspace.
        sleep(3)
        XCTAssertTrue(kept.process.isRunning)
        XCTAssertEqual(try mux(kept.socket, "id -un").output, "\(user!)\n")
        let event = try XCTUnwrap(try Journal.read(["DEVENV_USER=\(user!)", "DEVENV_EVENT=access-revoked"]).first)
        XCTAssertEqual(event["DEVENV_KEY_FINGERPRINT"], fingerprint)
        XCTAssertEqual(event["DEVENV_REASON"], "key \(fingerprint) was removed from user \(user!)")
        XCTAssertEqual(try Journal.read(["DEVENV_USER=\(user!)", "DEVENV_EVENT=access-revoked"]).count, 1)
    }

    /// The next owner of a name gets the home volume (as documented) but never the earlier
    /// owner's container, even when that container is running again.
    func testANameRegisteredAgainGetsANewContainer() throws {
        let earlier = try register(user)
        try gateway.start()
        XCTAssertEqual(try earlier.ssh(user, port: gateway.port, "touch /tmp/earlier-owner ~/kept").status, 0)
        let containerName = "\(gateway.prefix)-\(user!)"
        let old = try gateway.docker.inspectContainer(containerName)
        XCTAssertEqual(try gateway.admin(["deluser", user]).status, 0)
        // As if the stop had failed, or the container was started by hand since.
        try gateway.docker.startContainer(old.id)

        let next = try SSHClientIdentity(named: "next", in: keys)
        XCTAssertEqual(try gateway.admin(["adduser", user, "--key", next.publicKeyLine]).status, 0)
        XCTAssertNotEqual(try earlier.ssh(user, port: gateway.port, "true").status, 0)
        let login = try next.ssh(user, port: gateway.port, "test -e /tmp/earlier-owner && echo old; test -e ~/kept && echo home")
        XCTAssertEqual(login.status, 0, login.stderr)
        XCTAssertEqual(login.output, "home\n", "a new container, the same home volume")
        let current = try gateway.docker.inspectContainer(containerName)
        XCTAssertNotEqual(current.id, old.id)
        XCTAssertThrowsError(try gateway.docker.inspectContainer(old.id), "the earlier owner's container is gone")
        XCTAssertNotNil(current.config.labels?["devenv.registration"])
        // The same owner's next login keeps the container.
        XCTAssertEqual(try next.ssh(user, port: gateway.port, "true").status, 0)
        XCTAssertEqual(try gateway.docker.inspectContainer(containerName).id, current.id)
    }

    // MARK: - Helpers

    private struct Master {
        let process: BackgroundProcess
        let socket: String
        /// Where the master's stderr goes.
        let stderr: String
    }

    /// Starts a ControlMaster connection (no session) with its stderr in a file and waits
    /// until it is authenticated.
    private func startMaster(_ identity: SSHClientIdentity, _ label: String) throws -> Master {
        let socket = keys.appendingPathComponent("mux-\(label)").path
        let stderr = keys.appendingPathComponent("mux-\(label).stderr").path
        let command = ["/usr/bin/ssh"] + identity.sshOptions(port: gateway.port)
            + ["-N", "-o", "ControlMaster=yes", "-o", "ControlPath=\(socket)", "\(user!)@127.0.0.1"]
        let process = try startBackground("/bin/sh", ["-c", "exec \(command.map(shellQuoted).joined(separator: " ")) 2>\(shellQuoted(stderr))"])
        try waitFor("the \(label) master is connected") {
            try runProgram("/usr/bin/ssh", ["-S", socket, "-O", "check", "x"]).status == 0
        }
        return Master(process: process, socket: socket, stderr: stderr)
    }

    /// Runs `command` over a master's socket.
    private func mux(_ socket: String, _ command: String) throws -> ProgramResult {
        try runProgram("/usr/bin/ssh", muxArguments(socket, command))
    }

    /// ssh arguments for a session over a master's socket only: without the master, ssh's
    /// own connection goes to a closed loopback port and fails.
    private func muxArguments(_ socket: String, _ command: String) -> [String] {
        ["-F", "/dev/null", "-S", socket, "-o", "ControlMaster=no", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=1", "-p", "1", "127.0.0.1", command]
    }

    private func fingerprint(of identity: SSHClientIdentity) throws -> String {
        let result = try runProgram("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", identity.privateKeyPath + ".pub"])
        return try XCTUnwrap(result.output.split(separator: " ").dropFirst().first.map(String.init))
    }
}
