import Foundation
import TestSupport
import XCTest

/// The gateway keeps serving when the engine goes away, and many users at once.
final class GatewayResilienceTests: GatewayTestCase {
    var relay: BackgroundProcess?
    var relaySocket = ""

    override func tearDown() {
        stopRelay()
        super.tearDown()
    }

    /// A socket that forwards to the real engine; stopping it makes the engine unreachable
    /// for the gateway exactly as a stopped dockerd does, without disturbing other tests.
    private func startRelay() throws {
        relay = try BackgroundProcess("/usr/bin/socat", ["UNIX-LISTEN:\(relaySocket),fork,unlink-early",
                                                         "UNIX-CONNECT:/var/run/docker.sock"])
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: relaySocket) && Date() < deadline { usleep(20_000) }
    }

    private func stopRelay() {
        guard let relay else { return }
        relay.stop()
        self.relay = nil
        unlink(relaySocket)
    }

    func testEngineOutageGivesAClearMessageAndRecoversWithoutRestart() throws {
        relaySocket = keys.appendingPathComponent("engine.sock").path
        let alice = try register("alice")
        gateway.extraEnvironment = ["DOCKER_HOST": "unix://\(relaySocket)"]
        try gateway.start()

        let down = try alice.ssh("alice", port: gateway.port, "echo should-not-run")
        XCTAssertNotEqual(down.status, 0)
        XCTAssertEqual(down.output, "")
        XCTAssertTrue(down.stderr.contains("devenv: your workspace could not start:"), down.stderr)
        XCTAssertTrue(down.stderr.contains(relaySocket), "the message names the engine that was tried: \(down.stderr)")
        XCTAssertEqual(gateway.process?.isRunning, true)

        try startRelay()
        let up = try alice.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertEqual(up.output, "alice\n")
    }

    /// Another process (an admin's restore or upgrade) holds alice's workspace: her login
    /// waits at most the login wait (15 s), then is told plainly that it is busy and why,
    /// and logs in once the other process is done. Bob is not held up meanwhile.
    func testLoginToAWorkspaceHeldByAnotherProcessIsToldItIsBusy() throws {
        let alice = try register("alice")
        let bob = try register("bob")
        try gateway.start()
        let locks = gateway.stateDirectory.appendingPathComponent("locks")
        try FileManager.default.createDirectory(at: locks, withIntermediateDirectories: true)
        let lockFile = locks.appendingPathComponent("alice.lock").path
        let ready = keys.appendingPathComponent("held").path
        // util-linux flock takes the same lock devenv-gw takes, from another process (-o: only
        // flock itself holds it, so stopping flock releases it).
        let holder = try startBackground("/usr/bin/flock", ["-o", lockFile, "/bin/sh", "-c",
            "printf 'being restored (test holder)' > \(shellQuoted(lockFile)); touch \(shellQuoted(ready)); sleep 60"])
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) && Date() < deadline { usleep(20_000) }

        let started = Date()
        let busy = try alice.ssh("alice", port: gateway.port, "echo should-not-run")
        let waited = Date().timeIntervalSince(started)
        XCTAssertNotEqual(busy.status, 0)
        XCTAssertEqual(busy.output, "")
        XCTAssertTrue(busy.stderr.contains("the workspace of alice is busy: it is being restored (test holder)"),
                      busy.stderr)
        XCTAssertLessThan(waited, 25, "the login should give up after about 15 s")
        XCTAssertGreaterThan(waited, 10, "the login should wait for the other process a while")
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "id -un").output, "bob\n", "bob is not held up")

        holder.stop()
        let after = try alice.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(after.output, "alice\n", after.stderr)
    }

    func testMissingImageGivesAClearMessage() throws {
        let alice = try register("alice")
        gateway.extraArguments = ["--image", "devenv-no-such-image:\(gateway.prefix)"]
        try gateway.start()
        let result = try alice.ssh("alice", port: gateway.port, "true")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("devenv-no-such-image:\(gateway.prefix)"), result.stderr)
    }

    func testTwentyUsersLogInAtOnceEachIntoTheirOwnWorkspace() throws {
        let users = (1...20).map { "user\($0)" }
        var identities: [String: SSHClientIdentity] = [:]
        for user in users {
            identities[user] = try register(user)
        }
        try gateway.start()
        let script = users.map { user in
            "(\(identities[user]!.sshCommandLine(user, port: gateway.port)) 'echo $(id -un)@$(hostname)' > \(keys.path)/\(user).out 2>&1; echo $? >> \(keys.path)/\(user).out) &"
        }.joined(separator: "\n") + "\nwait"
        XCTAssertEqual(try runShell(script).status, 0)
        for user in users {
            let output = try String(contentsOfFile: "\(keys.path)/\(user).out", encoding: .utf8)
            XCTAssertEqual(output, "\(user)@\(gateway.prefix)-\(user)\n0\n", user)
        }
        XCTAssertEqual(try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"]).count, 20)
    }
}
