import Foundation
import TestSupport
import XCTest

/// The gateway's audit trail in the real journald.
final class GatewayAuditTests: GatewayTestCase {
    func testLoginsCommandsRefusalsAndAdminChangesAreInTheJournal() throws {
        try Journal.requireJournald()
        let name = "audit\(UInt32.random(in: 0..<1_000_000))"
        let identity = try SSHClientIdentity(named: name, in: keys)
        let added = try runProgram(DevenvBinary.path, ["adduser", name, "--key", identity.publicKeyLine, "--audit", "journald"]
                                       + gateway.instanceArguments)
        XCTAssertEqual(added.status, 0, added.stderr)
        gateway.extraArguments = ["--audit", "journald"]
        try gateway.start()

        // A command and a terminal type that try to add a field of their own.
        var environment = ProcessInfo.processInfo.environment
        environment["TERM"] = "xterm\nPRIORITY=0"
        let command = "echo audited\n#PRIORITY=0"
        let session = try runProgram("/usr/bin/ssh", identity.sshOptions(port: gateway.port) + ["-tt", "\(name)@127.0.0.1", command],
                                     environment: environment)
        XCTAssertEqual(session.status, 0, session.stderr)
        let stranger = try SSHClientIdentity(named: "stranger", in: keys)
        XCTAssertEqual(try stranger.ssh(name, port: gateway.port, "true").status, 255)

        let events = try Journal.entries(where: "DEVENV_USER", is: name, atLeast: 8)
        let kinds = events.compactMap { $0["DEVENV_EVENT"] }
        for expected in ["user-added", "key-added", "auth-accepted", "workspace-created", "session-start", "session-end",
                         "auth-failed"] {
            XCTAssertTrue(kinds.contains(expected), "\(expected) missing from \(kinds)")
        }
        for event in events {
            XCTAssertEqual(event["SYSLOG_IDENTIFIER"], "devenv-gw")
            XCTAssertNotNil(event["MESSAGE_ID"])
            XCTAssertEqual(event.values("PRIORITY").count, 1, "one PRIORITY, ours")
            XCTAssertNotEqual(event["PRIORITY"], "0")
        }
        let accepted = try XCTUnwrap(events.first { $0["DEVENV_EVENT"] == "auth-accepted" })
        XCTAssertEqual(accepted["DEVENV_SOURCE_ADDRESS"], "127.0.0.1")
        XCTAssertEqual(accepted["DEVENV_KEY_TYPE"], "ssh-ed25519")
        XCTAssertTrue(accepted["DEVENV_KEY_FINGERPRINT"]?.hasPrefix("SHA256:") == true)
        let sessionID = try XCTUnwrap(accepted["DEVENV_SESSION_ID"])
        let sessionEvents = events.filter { ["auth-accepted", "session-start", "session-end", "workspace-created"]
            .contains($0["DEVENV_EVENT"] ?? "") }
        XCTAssertEqual(Set(sessionEvents.compactMap { $0["DEVENV_SESSION_ID"] }), [sessionID],
                       "every event of the session carries its id")

        let start = try XCTUnwrap(events.first { $0["DEVENV_EVENT"] == "session-start" })
        XCTAssertEqual(start["DEVENV_COMMAND"], command, "the command arrives as one field value")
        XCTAssertEqual(start["DEVENV_TERM"], "xterm\nPRIORITY=0", "the terminal type arrives as one field value")
        let end = try XCTUnwrap(events.first { $0["DEVENV_EVENT"] == "session-end" })
        XCTAssertEqual(end["DEVENV_EXIT_STATUS"], "0")
        XCTAssertNotNil(end["DEVENV_DURATION_MS"])
        XCTAssertGreaterThan(Int(end["DEVENV_BYTES_OUT"] ?? "0") ?? 0, 0)
        let failed = try XCTUnwrap(events.first { $0["DEVENV_EVENT"] == "auth-failed" })
        XCTAssertNotEqual(failed["DEVENV_SESSION_ID"], sessionID)
        XCTAssertEqual(failed["DEVENV_SOURCE_ADDRESS"], "127.0.0.1")
        let admin = try XCTUnwrap(events.first { $0["DEVENV_EVENT"] == "user-added" })
        XCTAssertEqual(admin["DEVENV_ADMIN_UID"], "\(getuid())")
    }
}
