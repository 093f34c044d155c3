import Foundation
import TestSupport
import XCTest

/// Connections that can serve nobody end: keep-alives end the connection of a client that
/// vanished without closing it (so it frees its thread and its workspace can go idle) while
/// a quiet client that answers stays, and a connection whose workspace failed ends once the
/// client was told why.
final class GatewayKeepAliveTests: GatewayTestCase {
    func testAClientThatStopsAnsweringIsDisconnectedAndItsWorkspaceGoesIdle() throws {
        let alice = try register("alice")
        let bob = try register("bob")
        gateway.extraArguments = ["--client-alive-interval", "1", "--client-alive-count-max", "2",
                                  "--idle-timeout", "4", "--audit", "stderr"]
        try gateway.start()
        // Two quiet sessions: alice's client is about to vanish, bob's stays and answers.
        let vanishing = try startBackground("/usr/bin/ssh", alice.sshOptions(port: gateway.port)
                                            + ["alice@127.0.0.1", "sleep 300"])
        let quiet = try startBackground("/usr/bin/ssh", bob.sshOptions(port: gateway.port) + ["bob@127.0.0.1", "sleep 300"])
        XCTAssertTrue(waitUntil(30) { self.events("session-start").count == 2 }, "both sessions started")

        // A stopped process answers nothing, as a laptop that went to sleep.
        kill(vanishing.pid, SIGSTOP)
        let stopped = Date()
        defer { kill(vanishing.pid, SIGCONT) }
        XCTAssertTrue(waitUntil(15) { self.gateway.log.contains("client stopped answering keep-alives") })
        let noticed = Date().timeIntervalSince(stopped)
        // Silent for interval × (count-max + 1) = 3 s, plus a poll or two.
        XCTAssertLessThan(noticed, 5.5, "noticed after \(noticed) s")
        XCTAssertTrue(waitUntil(5) { self.events("session-end").contains { $0["DEVENV_USER"] == "alice" } },
                      "alice's session ended in the audit trail")
        // Her session count dropped to 0: the idle reaper stops her workspace; bob's stays.
        let aliceContainer = "\(gateway.prefix)-alice", bobContainer = "\(gateway.prefix)-bob"
        XCTAssertTrue(waitUntil(20) { (try? self.gateway.docker.inspectContainer(aliceContainer).state.running) == false },
                      "alice's workspace was stopped as idle")
        XCTAssertTrue(quiet.isRunning, "a quiet client that answers keep-alives stays connected")
        XCTAssertFalse(events("session-end").contains { $0["DEVENV_USER"] == "bob" })
        XCTAssertTrue(try gateway.docker.inspectContainer(bobContainer).state.running)

        // Woken up, the vanished client finds its connection gone.
        kill(vanishing.pid, SIGCONT)
        XCTAssertTrue(waitUntil(10) { !vanishing.isRunning }, "the client learns the connection ended")
    }

    /// A connection whose workspace cannot start ends once the client was told why, or,
    /// when it opens no session to be told on, after the auth timeout.
    func testAConnectionWhoseWorkspaceFailedEndsOnceTheClientWasTold() throws {
        let alice = try register("alice")
        gateway.extraArguments = ["--image", "devenv-no-such-image:\(gateway.prefix)", "--auth-timeout", "4"]
        try gateway.start()
        // A ControlMaster connection opens no session itself; a client multiplexed over it does.
        let control = keys.appendingPathComponent("control").path
        let master = try startBackground("/usr/bin/ssh", alice.sshOptions(port: gateway.port)
                                         + ["-N", "-M", "-S", control, "alice@127.0.0.1"])
        XCTAssertTrue(waitUntil(10) { FileManager.default.fileExists(atPath: control) }, "the master connected")
        let told = try runProgram("/usr/bin/ssh", alice.sshOptions(port: gateway.port)
                                  + ["-S", control, "alice@127.0.0.1", "true"])
        XCTAssertEqual(told.status, 1)
        XCTAssertTrue(told.stderr.contains("devenv-no-such-image:\(gateway.prefix)"), told.stderr)
        let toldAt = Date()
        XCTAssertTrue(waitUntil(10) { !master.isRunning }, "the master connection ended")
        XCTAssertLessThan(Date().timeIntervalSince(toldAt), 3, "ended once told, not after the auth timeout")

        // Nobody to tell: `ssh -N` alone is let go after the auth timeout.
        let began = Date()
        let silent = try startBackground("/usr/bin/ssh", alice.sshOptions(port: gateway.port) + ["-N", "alice@127.0.0.1"])
        XCTAssertTrue(waitUntil(15) { !silent.isRunning }, "the connection without a session ended")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(began), 4)
        XCTAssertTrue(gateway.log.contains("ending the connection: the workspace is unavailable"))
    }

    /// Audit events of type `event` the gateway wrote to its log (`--audit stderr`).
    private func events(_ event: String) -> [[String: String]] {
        gateway.log.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{"), let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            let fields = object.compactMapValues { $0 as? String }
            return fields["DEVENV_EVENT"] == event ? fields : nil
        }
    }
}
