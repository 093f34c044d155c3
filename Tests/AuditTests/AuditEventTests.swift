@testable import Audit
import Foundation
import TestSupport
import XCTest

/// Audit events written to the real journald (started by scripts/setup.sh) and read back
/// with `journalctl -o json`, each test finding its own entries by a random session id.
final class AuditJournalTests: XCTestCase {
    var log: AuditLog!

    override func setUpWithError() throws {
        try Journal.requireJournald()
        log = try AuditLog(.journald)
    }

    func testAuthEventsCarryEveryField() throws {
        let connection = AuditConnection(sourceAddress: "192.0.2.7", sourcePort: 50022)
        let key = AuditKey(type: "ssh-ed25519", fingerprint: "SHA256:abcDEF0123456789+/xyz", comment: "alice@laptop")
        log.record(.authFailed(connection, user: "mallory", key: nil, reason: "unknown user or key"))
        log.record(.authAccepted(connection, user: "alice", key: key))

        let entries = try Journal.entries(where: "DEVENV_SESSION_ID", is: connection.sessionID, atLeast: 2)
        XCTAssertEqual(entries.count, 2)
        let failed = try XCTUnwrap(entries.first { $0["DEVENV_EVENT"] == "auth-failed" })
        XCTAssertEqual(failed["MESSAGE_ID"], "31810941d26448f6ae3206f9bd95b18b")
        XCTAssertEqual(failed["PRIORITY"], "5")
        XCTAssertEqual(failed["SYSLOG_IDENTIFIER"], "devenv-gw")
        XCTAssertEqual(failed["MESSAGE"], "refused login as \"mallory\" from 192.0.2.7 port 50022: unknown user or key")
        XCTAssertEqual(failed["DEVENV_USER"], "mallory")
        XCTAssertEqual(failed["DEVENV_SOURCE_ADDRESS"], "192.0.2.7")
        XCTAssertEqual(failed["DEVENV_SOURCE_PORT"], "50022")
        XCTAssertEqual(failed["DEVENV_REASON"], "unknown user or key")
        XCTAssertNil(failed["DEVENV_KEY_FINGERPRINT"])

        let accepted = try XCTUnwrap(entries.first { $0["DEVENV_EVENT"] == "auth-accepted" })
        XCTAssertEqual(accepted["MESSAGE_ID"], "88d339d69cc94c108d6b7ae50c3dc96a")
        XCTAssertEqual(accepted["PRIORITY"], "6")
        XCTAssertEqual(accepted["SYSLOG_IDENTIFIER"], "devenv-gw")
        XCTAssertEqual(accepted["MESSAGE"],
                       "accepted publickey for \"alice\" from 192.0.2.7 port 50022: ssh-ed25519 SHA256:abcDEF0123456789+/xyz")
        XCTAssertEqual(accepted["DEVENV_USER"], "alice")
        XCTAssertEqual(accepted["DEVENV_KEY_TYPE"], "ssh-ed25519")
        XCTAssertEqual(accepted["DEVENV_KEY_FINGERPRINT"], "SHA256:abcDEF0123456789+/xyz")
        XCTAssertEqual(accepted["DEVENV_KEY_COMMENT"], "alice@laptop")
        XCTAssertEqual(accepted["DEVENV_SOURCE_PORT"], "50022")
        // journald's own trusted fields say which process wrote it.
        XCTAssertEqual(accepted["_PID"], String(getpid()))
        XCTAssertEqual(accepted["_TRANSPORT"], "journal")
    }

    func testSessionStartAndEndShareTheSessionID() throws {
        let connection = AuditConnection(sourceAddress: "::1", sourcePort: 40000)
        let channel = AuditChannel(id: 3, kind: .exec, command: "make -j2 test", term: "xterm-256color")
        log.record(.sessionStart(connection, user: "bob", channel: channel, container: "devenv-bob"))
        log.record(.sessionEnd(connection, user: "bob", channel: channel, duration: 1.2345, bytesIn: 12,
                               bytesOut: 3_400_000_000, exitStatus: 2, container: "devenv-bob"))
        log.record(.workspaceStarted(AuditWorkspace(user: "bob", container: "devenv-bob"), sessionID: connection.sessionID))

        let entries = try Journal.entries(where: "DEVENV_SESSION_ID", is: connection.sessionID, atLeast: 3)
        XCTAssertEqual(entries.map { $0["DEVENV_EVENT"] }, ["session-start", "session-end", "workspace-started"])
        let start = entries[0], end = entries[1], workspace = entries[2]
        XCTAssertEqual(start["MESSAGE_ID"], "680006d517c849d4966501f198a5a2a4")
        XCTAssertEqual(start["MESSAGE"],
                       "\"bob\" started exec \"make -j2 test\" with a pty (\"xterm-256color\") on channel 3 from ::1 port 40000")
        for entry in [start, end] {
            XCTAssertEqual(entry["PRIORITY"], "6")
            XCTAssertEqual(entry["DEVENV_USER"], "bob")
            XCTAssertEqual(entry["DEVENV_CHANNEL_ID"], "3")
            XCTAssertEqual(entry["DEVENV_CHANNEL_KIND"], "exec")
            XCTAssertEqual(entry["DEVENV_COMMAND"], "make -j2 test")
            XCTAssertEqual(entry["DEVENV_TERM"], "xterm-256color")
            XCTAssertEqual(entry["DEVENV_CONTAINER"], "devenv-bob")
            XCTAssertEqual(entry["DEVENV_SOURCE_ADDRESS"], "::1")
        }
        XCTAssertNil(start["DEVENV_DURATION_MS"])
        XCTAssertEqual(end["MESSAGE_ID"], "2663d93e9b004d729c0ed5c48f92fdc5")
        XCTAssertEqual(end["DEVENV_DURATION_MS"], "1235")
        XCTAssertEqual(end["DEVENV_BYTES_IN"], "12")
        XCTAssertEqual(end["DEVENV_BYTES_OUT"], "3400000000")
        XCTAssertEqual(end["DEVENV_EXIT_STATUS"], "2")
        XCTAssertNil(end["DEVENV_EXIT_SIGNAL"])
        XCTAssertEqual(end["MESSAGE"], "\"bob\" ended exec \"make -j2 test\" with a pty (\"xterm-256color\") on channel 3 "
                                       + "after 1.235 s, exit status 2, 12 bytes in, 3400000000 bytes out")
        XCTAssertEqual(workspace["MESSAGE_ID"], "94e113d860e740158ee6171f94fc51b5")
        XCTAssertEqual(workspace["MESSAGE"], "started workspace devenv-bob for \"bob\" for session \(connection.sessionID)")
    }

    func testForwardingEvents() throws {
        let connection = AuditConnection(sourceAddress: "10.1.2.3", sourcePort: 1234)
        let local = AuditForwarding(kind: .local, host: "localhost", port: 5432, originHost: "127.0.0.1", originPort: 55555)
        log.record(.forwardingOpened(connection, user: "carol", forwarding: local))
        log.record(.forwardingRefused(connection, user: "carol", forwarding: AuditForwarding(kind: .x11),
                                      reason: "x11 forwarding is not allowed"))
        let entries = try Journal.entries(where: "DEVENV_SESSION_ID", is: connection.sessionID, atLeast: 2)
        XCTAssertEqual(entries.count, 2)
        let opened = entries[0], refused = entries[1]
        XCTAssertEqual(opened["MESSAGE_ID"], "493daab73f97441d886087f256eb9ddb")
        XCTAssertEqual(opened["DEVENV_FORWARD_KIND"], "direct-tcpip")
        XCTAssertEqual(opened["DEVENV_FORWARD_HOST"], "localhost")
        XCTAssertEqual(opened["DEVENV_FORWARD_PORT"], "5432")
        XCTAssertEqual(opened["DEVENV_ORIGIN_HOST"], "127.0.0.1")
        XCTAssertEqual(opened["DEVENV_ORIGIN_PORT"], "55555")
        XCTAssertEqual(opened["MESSAGE"], "\"carol\" opened forwarding direct-tcpip localhost:5432 from 10.1.2.3 port 1234")
        XCTAssertEqual(refused["MESSAGE_ID"], "a131683407304073b9d92cfe10fc0ea0")
        XCTAssertEqual(refused["PRIORITY"], "5")
        XCTAssertEqual(refused["DEVENV_FORWARD_KIND"], "x11")
        XCTAssertEqual(refused["DEVENV_REASON"], "x11 forwarding is not allowed")
    }

    /// A client controls the terminal type and the command; neither can add or change a field.
    func testNewlinesInClientTextStayInsideOneField() throws {
        let connection = AuditConnection(sourceAddress: "192.0.2.1", sourcePort: 2222)
        let term = "xterm\nPRIORITY=0"
        let command = "true\nPRIORITY=0\nDEVENV_USER=root\nMESSAGE_ID=00000000000000000000000000000000\n"
        let channel = AuditChannel(id: 0, kind: .exec, command: command, term: term)
        log.record(.sessionStart(connection, user: "dave", channel: channel))
        log.record(.authFailed(connection, user: "x\nPRIORITY=0", key: nil, reason: "invalid user name"))

        let entries = try Journal.entries(where: "DEVENV_SESSION_ID", is: connection.sessionID, atLeast: 2)
        XCTAssertEqual(entries.count, 2)
        let start = try XCTUnwrap(entries.first { $0["DEVENV_EVENT"] == "session-start" })
        XCTAssertEqual(start.values("DEVENV_TERM"), [term])
        XCTAssertEqual(start.values("DEVENV_COMMAND"), [command])
        XCTAssertEqual(start.values("PRIORITY"), ["6"])
        XCTAssertEqual(start.values("DEVENV_USER"), ["dave"])
        XCTAssertEqual(start.values("MESSAGE_ID"), ["680006d517c849d4966501f198a5a2a4"])
        // MESSAGE shows the text on one line with the control characters visible.
        XCTAssertEqual(start["MESSAGE"], "\"dave\" started exec \"true\\x0aPRIORITY=0\\x0aDEVENV_USER=root\\x0a"
                                         + "MESSAGE_ID=00000000000000000000000000000000\\x0a\" with a pty "
                                         + "(\"xterm\\x0aPRIORITY=0\") on channel 0 from 192.0.2.1 port 2222")
        let failed = try XCTUnwrap(entries.first { $0["DEVENV_EVENT"] == "auth-failed" })
        XCTAssertEqual(failed.values("DEVENV_USER"), ["x\nPRIORITY=0"])
        XCTAssertEqual(failed.values("PRIORITY"), ["5"])
        XCTAssertFalse(failed["MESSAGE"]!.contains("\n"))
    }

    func testAdminChangesNameTheOperatingSystemUser() throws {
        let user = "u\(UInt32.random(in: 0..<UInt32.max))"
        let admin = AuditAdmin.current
        let key = AuditKey(type: "ssh-rsa", fingerprint: "SHA256:\(user)", comment: "laptop")
        log.record(.userAdded(user, uid: 2042, keyCount: 1, by: admin))
        log.record(.keyAdded(key, to: user, by: admin))
        log.record(.keyRemoved(key, from: user, by: admin))
        log.record(.userRemoved(user, keyCount: 0, by: admin))

        let entries = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 4)
        XCTAssertEqual(entries.map { $0["DEVENV_EVENT"] }, ["user-added", "key-added", "key-removed", "user-removed"])
        XCTAssertEqual(entries.map { $0["MESSAGE_ID"] }, ["db746a451b87443fa599af23dcab5913", "1d823b6cbfa44b9fb56a6c5e806cfed7",
                                                          "a6533f5d8572421491c2c1fded4cb516", "d77dc736d2094ab78ba78a626d010450"])
        let name = try XCTUnwrap(admin.name)
        for entry in entries {
            XCTAssertEqual(entry["PRIORITY"], "5")
            XCTAssertEqual(entry["DEVENV_ADMIN_UID"], String(getuid()))
            XCTAssertEqual(entry["DEVENV_ADMIN_USER"], name)
            XCTAssertEqual(entry["_UID"], String(getuid()), "journald's trusted uid agrees")
        }
        XCTAssertEqual(entries[0]["DEVENV_UID"], "2042")
        XCTAssertEqual(entries[0]["DEVENV_KEY_COUNT"], "1")
        XCTAssertEqual(entries[0]["MESSAGE"], "\(name) (uid \(getuid())) added user \"\(user)\" (uid 2042) with 1 key")
        XCTAssertEqual(entries[1]["DEVENV_KEY_FINGERPRINT"], "SHA256:\(user)")
        XCTAssertEqual(entries[1]["DEVENV_KEY_TYPE"], "ssh-rsa")
        XCTAssertEqual(entries[2]["MESSAGE"], "\(name) (uid \(getuid())) removed key ssh-rsa SHA256:\(user) from \"\(user)\"")
    }

    func testWorkspaceEvents() throws {
        let user = "w\(UInt32.random(in: 0..<UInt32.max))"
        let workspace = AuditWorkspace(user: user, container: "devenv-\(user)", image: "devenv-workspace:2",
                                       volume: "devenv-\(user)-home")
        let admin = AuditAdmin.current
        log.record(.workspaceCreated(workspace, sessionID: "0123456789abcdef"))
        log.record(.workspaceStopped(workspace, reason: "idle", idleFor: 3600))
        log.record(.workspaceUpgraded(workspace, previousImage: "devenv-workspace:1", by: admin))
        log.record(.workspaceBackedUp(workspace, archive: "/backup/\(user).tar", bytes: 4096, by: admin))
        log.record(.workspaceRestored(workspace, archive: "/backup/\(user).tar", by: admin))
        let entries = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 5)
        XCTAssertEqual(entries.map { $0["DEVENV_EVENT"] },
                       ["workspace-created", "workspace-stopped", "workspace-upgraded", "workspace-backed-up", "workspace-restored"])
        XCTAssertEqual(entries.map { $0["MESSAGE_ID"] }, [AuditEventType.workspaceCreated, .workspaceStopped, .workspaceUpgraded,
                                                          .workspaceBackedUp, .workspaceRestored].map(\.messageID))
        XCTAssertTrue(entries.allSatisfy { $0["DEVENV_CONTAINER"] == "devenv-\(user)" && $0["PRIORITY"] == "6" })
        XCTAssertEqual(entries[0]["DEVENV_SESSION_ID"], "0123456789abcdef")
        XCTAssertEqual(entries[0]["DEVENV_IMAGE"], "devenv-workspace:2")
        XCTAssertEqual(entries[0]["DEVENV_VOLUME"], "devenv-\(user)-home")
        XCTAssertEqual(entries[1]["DEVENV_REASON"], "idle")
        XCTAssertEqual(entries[1]["DEVENV_IDLE_SECONDS"], "3600")
        XCTAssertEqual(entries[2]["DEVENV_PREVIOUS_IMAGE"], "devenv-workspace:1")
        XCTAssertEqual(entries[2]["DEVENV_ADMIN_UID"], String(getuid()))
        XCTAssertEqual(entries[3]["DEVENV_ARCHIVE"], "/backup/\(user).tar")
        XCTAssertEqual(entries[3]["DEVENV_ARCHIVE_BYTES"], "4096")
        XCTAssertEqual(entries[4]["DEVENV_ARCHIVE"], "/backup/\(user).tar")
    }

    /// One log shared by many threads, as the gateway's connection threads share it.
    func testConcurrentEventsAllArrive() throws {
        let run = AuditConnection.newSessionID()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<25 {
                let connection = AuditConnection(sessionID: "\(run)-\(thread)-\(index)", sourceAddress: "::1", sourcePort: index)
                log.record(.sessionStart(connection, user: run, channel: AuditChannel(id: index, kind: .shell)))
            }
        }
        let entries = try Journal.entries(where: "DEVENV_USER", is: run, atLeast: 200)
        XCTAssertEqual(Set(entries.compactMap { $0["DEVENV_SESSION_ID"] }).count, 200)
    }

    /// An entry larger than the socket's datagram limit travels in a sealed memfd; values
    /// beyond 64 KiB are cut and named in DEVENV_TRUNCATED.
    func testLargeEntriesGoThroughAMemfd() throws {
        let connection = AuditConnection(sourceAddress: "192.0.2.9", sourcePort: 9)
        let long = String(repeating: "é", count: 40_000)  // 80,000 bytes: cut to 64 KiB
        let medium = String(repeating: "x\n", count: 30_000)  // 60,000 bytes, kept
        let channel = AuditChannel(id: 1, kind: .exec, command: long, subsystem: medium, term: medium)
        log.record(.sessionStart(connection, user: "erin", channel: channel))  // ~190 KB in one datagram

        let forced = try AuditLog(.journald)
        forced.journal?.memfdThreshold = 0
        let small = AuditConnection(sourceAddress: "192.0.2.9", sourcePort: 10)
        forced.record(.authAccepted(small, user: "erin", key: AuditKey(type: "ssh-ed25519", fingerprint: "SHA256:x")))

        let large = try XCTUnwrap(Journal.entries(where: "DEVENV_SESSION_ID", is: connection.sessionID).first)
        XCTAssertEqual(large["DEVENV_COMMAND"], String(repeating: "é", count: AuditEvent.maxValueBytes / 2))
        XCTAssertEqual(large["DEVENV_TERM"], medium)
        XCTAssertEqual(large["DEVENV_SUBSYSTEM"], medium)
        XCTAssertEqual(large["DEVENV_TRUNCATED"], "DEVENV_COMMAND")
        XCTAssertEqual(large.values("PRIORITY"), ["6"])
        let viaMemfd = try XCTUnwrap(Journal.entries(where: "DEVENV_SESSION_ID", is: small.sessionID).first)
        XCTAssertEqual(viaMemfd["DEVENV_EVENT"], "auth-accepted")
        XCTAssertEqual(viaMemfd["DEVENV_KEY_FINGERPRINT"], "SHA256:x")
    }
}
