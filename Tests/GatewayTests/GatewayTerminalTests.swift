import Foundation
import TestSupport
import XCTest

/// An interactive terminal through the gateway, driven by tmux like a person at a keyboard.
final class GatewayTerminalTests: GatewayTestCase {
    var alice: SSHClientIdentity!
    let session = "devenv-pty-\(UInt32.random(in: 0..<UInt32.max))"

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
        // Create the workspace first so the terminal test measures the terminal, not the start.
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
    }

    override func tearDown() {
        _ = try? BackgroundProcess.run("/usr/bin/tmux", ["kill-session", "-t", session])
        super.tearDown()
    }

    /// tmux forks a daemon server: it is driven with posix_spawn, never Foundation's
    /// `Process`, whose child monitor stalls when a daemonizing child keeps its socket.
    private func tmux(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try BackgroundProcess.run("/usr/bin/tmux", arguments)
    }

    private func screen() throws -> String { try tmux(["capture-pane", "-p", "-t", session]).output }

    private func waitForScreen(_ predicate: (String) -> Bool, timeout: TimeInterval = 15) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        while Date() < deadline {
            text = try screen()
            if predicate(text) { return text }
            usleep(100_000)
        }
        XCTFail("screen never matched; it shows:\n\(text)")
        return text
    }

    private func type(_ keys: String...) throws {
        XCTAssertEqual(try tmux(["send-keys", "-t", session] + keys).status, 0)
    }

    func testPromptWindowSizeAndControlC() throws {
        let command = alice.sshCommandLine("alice", port: gateway.port, extra: ["-tt"])
        XCTAssertEqual(try tmux(["new-session", "-d", "-s", session, "-x", "80", "-y", "24", command]).status, 0)
        _ = try waitForScreen { $0.contains("alice@\(self.gateway.prefix)-alice") && $0.contains("$") }

        // The client's terminal type arrives with the pty request.
        let term = try tmux(["show-options", "-gv", "default-terminal"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        try type("stty size; echo TERM=$TERM", "Enter")
        _ = try waitForScreen { $0.contains("24 80") && $0.contains("TERM=\(term)") }

        XCTAssertEqual(try tmux(["resize-window", "-t", session, "-x", "100", "-y", "30"]).status, 0)
        usleep(300_000)
        try type("clear; stty size", "Enter")
        _ = try waitForScreen { $0.contains("30 100") }

        try type("sleep 300; echo sleep-ended-$?", "Enter")
        usleep(500_000)
        let interrupted = Date()
        try type("C-c")
        try type("echo after-interrupt", "Enter")
        _ = try waitForScreen({ $0.contains("after-interrupt\n") || $0.hasSuffix("after-interrupt") || $0.components(separatedBy: "after-interrupt").count > 2 }, timeout: 10)
        XCTAssertLessThan(Date().timeIntervalSince(interrupted), 10, "Ctrl-C ended sleep")
        XCTAssertFalse(try screen().contains("sleep-ended-0"))

        try type("exit", "Enter")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, try tmux(["has-session", "-t", session]).status == 0 { usleep(100_000) }
        XCTAssertNotEqual(try tmux(["has-session", "-t", session]).status, 0, "the session ends on exit")
    }
}
