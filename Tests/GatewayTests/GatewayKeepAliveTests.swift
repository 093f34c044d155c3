import Foundation
import TestSupport
import XCTest

/// Keep-alives end the connection of a client that vanished without closing it, so it
/// frees its thread and its workspace can go idle; a quiet client that answers stays.
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
