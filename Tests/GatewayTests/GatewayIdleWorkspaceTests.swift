import Foundation
import TestSupport
import XCTest

/// Workspaces nobody uses are stopped; ones with any session are not.
final class GatewayIdleWorkspaceTests: GatewayTestCase {
    func testIdleWorkspaceIsStoppedAndOneWithAnIdleShellIsNot() throws {
        let alice = try register("alice")
        let bob = try register("bob")
        gateway.extraArguments = ["--idle-timeout", "5"]
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        // bob keeps an idle shell open (a pty session doing nothing).
        try startSSH(bob, "bob", ["-tt", "-o", "RequestTTY=force"])
        let bobContainer = "\(gateway.prefix)-bob", aliceContainer = "\(gateway.prefix)-alice"
        var bobStarted = false
        for _ in 0..<100 where !bobStarted {
            bobStarted = (try? gateway.docker.inspectContainer(bobContainer).state.running) == true
            if !bobStarted { usleep(100_000) }
        }
        XCTAssertTrue(bobStarted)

        let deadline = Date().addingTimeInterval(30)
        var aliceRunning = true
        while aliceRunning && Date() < deadline {
            usleep(500_000)
            aliceRunning = try gateway.docker.inspectContainer(aliceContainer).state.running
        }
        XCTAssertFalse(aliceRunning, "alice's idle workspace was stopped")
        XCTAssertTrue(try gateway.docker.inspectContainer(bobContainer).state.running, "bob's open shell kept his running")

        let ps = try gateway.admin(["ps", "--json"])
        let rows = try JSONSerialization.jsonObject(with: ps.stdout) as? [[String: Any]]
        let aliceRow = rows?.first { $0["user"] as? String == "alice" }
        XCTAssertEqual(aliceRow?["state"] as? String, "exited")
        XCTAssertNotNil(aliceRow?["lastActivity"] as? String, "ps shows the last activity")

        let again = try alice.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(again.output, "alice\n", "the next login starts it again")
        XCTAssertTrue(try gateway.docker.inspectContainer(aliceContainer).state.running)
    }
}
