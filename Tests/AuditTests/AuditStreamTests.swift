@testable import Audit
import Foundation
import TestSupport
import XCTest

/// The stderr JSON writer, the choice of destination, and the fall-back to stderr when
/// journald goes away, with a stand-in journal socket the test controls.
final class AuditStreamTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-audit")
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func testStderrWriterPrintsOneJSONObjectPerLineWithTheSameFields() throws {
        let capture = try Capture()
        let log = try AuditLog(.stderr, descriptor: capture.writeFD)
        XCTAssertFalse(log.writesToJournal)
        let connection = AuditConnection(sessionID: "feedface00000001", sourceAddress: "192.0.2.5", sourcePort: 2200)
        let channel = AuditChannel(id: 0, kind: .shell, term: "xterm\nPRIORITY=0\u{1b}[2J\"\\")
        log.record(.sessionEnd(connection, user: "alice", channel: channel, duration: 0.5, bytesIn: 1, bytesOut: 2,
                               exitStatus: nil, exitSignal: "TERM"))
        let lines = capture.finish()
        XCTAssertEqual(lines.count, 1, "\(lines)")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String])
        XCTAssertEqual(object["MESSAGE_ID"], "2663d93e9b004d729c0ed5c48f92fdc5")
        XCTAssertEqual(object["PRIORITY"], "6")
        XCTAssertEqual(object["SYSLOG_IDENTIFIER"], "devenv-gw")
        XCTAssertEqual(object["DEVENV_EVENT"], "session-end")
        XCTAssertEqual(object["DEVENV_SESSION_ID"], "feedface00000001")
        XCTAssertEqual(object["DEVENV_SOURCE_ADDRESS"], "192.0.2.5")
        XCTAssertEqual(object["DEVENV_SOURCE_PORT"], "2200")
        XCTAssertEqual(object["DEVENV_USER"], "alice")
        XCTAssertEqual(object["DEVENV_CHANNEL_KIND"], "shell")
        XCTAssertEqual(object["DEVENV_TERM"], "xterm\nPRIORITY=0\u{1b}[2J\"\\")
        XCTAssertEqual(object["DEVENV_DURATION_MS"], "500")
        XCTAssertEqual(object["DEVENV_BYTES_IN"], "1")
        XCTAssertEqual(object["DEVENV_BYTES_OUT"], "2")
        XCTAssertEqual(object["DEVENV_EXIT_SIGNAL"], "TERM")
        XCTAssertNil(object["DEVENV_EXIT_STATUS"])
        XCTAssertEqual(object["MESSAGE"], "\"alice\" ended shell with a pty (\"xterm\\x0aPRIORITY=0\\x1b[2J\\\"\\\\\") on "
                                          + "channel 0 after 0.500 s, killed by signal TERM, 1 bytes in, 2 bytes out")
        XCTAssertNotNil(object["TIMESTAMP"].flatMap { ISO8601DateFormatter.withFractionalSeconds.date(from: $0) })
        // The same fields as in the journal, plus the time stamp journald would add.
        let event = AuditEvent.sessionEnd(connection, user: "alice", channel: channel, duration: 0.5, bytesIn: 1,
                                          bytesOut: 2, exitStatus: nil, exitSignal: "TERM")
        XCTAssertEqual(Set(object.keys), Set(event.record().map(\.field.rawValue) + ["TIMESTAMP"]))
    }

    func testConcurrentEventsStayWholeLines() throws {
        let capture = try Capture()
        let log = try AuditLog(.stderr, descriptor: capture.writeFD)
        let command = String(repeating: "long command ", count: 500)  // each line ~13 KB, beyond PIPE_BUF
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<50 {
                let connection = AuditConnection(sessionID: "t\(thread)-\(index)", sourceAddress: "::1", sourcePort: index)
                log.record(.sessionStart(connection, user: "u\(thread)", channel: AuditChannel(id: index, kind: .exec, command: command)))
            }
        }
        let lines = capture.finish()
        XCTAssertEqual(lines.count, 400)
        let ids = try lines.map { line -> String in
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            XCTAssertEqual(object["DEVENV_COMMAND"], command)
            return try XCTUnwrap(object["DEVENV_SESSION_ID"])
        }
        XCTAssertEqual(Set(ids).count, 400)
    }

    func testDestinationChoice() throws {
        let missing = directory.appendingPathComponent("no-journal").path
        XCTAssertFalse(try AuditLog(.auto, journalSocket: missing).writesToJournal)
        XCTAssertThrowsError(try AuditLog(.journald, journalSocket: missing)) { error in
            XCTAssertEqual("\(error)", "journald at \(missing): no such socket (is systemd-journald running?)")
        }
        let journal = try FakeJournal(path: directory.appendingPathComponent("socket").path)
        XCTAssertTrue(try AuditLog(.auto, journalSocket: journal.path).writesToJournal)
        XCTAssertFalse(try AuditLog(.stderr, journalSocket: journal.path).writesToJournal)
    }

    /// The native protocol as journald parses it: names as ours, values whole.
    func testNativeProtocolEncoding() throws {
        let journal = try FakeJournal(path: directory.appendingPathComponent("socket").path)
        let log = try AuditLog(.journald, journalSocket: journal.path)
        let connection = AuditConnection(sessionID: "s1", sourceAddress: "192.0.2.1", sourcePort: 1)
        log.record(.authFailed(connection, user: "a=b\nPRIORITY=0\n", key: nil, reason: "invalid user name"))
        let fields = try journal.receive()
        XCTAssertEqual(fields.map(\.0), ["MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE", "DEVENV_EVENT",
                                         "DEVENV_SESSION_ID", "DEVENV_SOURCE_ADDRESS", "DEVENV_SOURCE_PORT", "DEVENV_USER",
                                         "DEVENV_REASON"])
        XCTAssertEqual(fields.first { $0.0 == "DEVENV_USER" }?.1, "a=b\nPRIORITY=0\n")
        XCTAssertEqual(fields.first { $0.0 == "PRIORITY" }?.1, "5")
        let head = Array("MESSAGE_ID=31810941d26448f6ae3206f9bd95b18b\n".utf8)
        XCTAssertEqual(Array(journal.lastDatagram.prefix(head.count)), head)
    }

    /// journald going away: events continue on stderr with one warning, and go back to the
    /// journal when it answers again.
    func testFallsBackToStderrOnceWhenJournaldVanishes() throws {
        let path = directory.appendingPathComponent("socket").path
        var journal: FakeJournal? = try FakeJournal(path: path)
        let capture = try Capture()
        let log = try AuditLog(.journald, journalSocket: path, descriptor: capture.writeFD)
        let connection = AuditConnection(sourceAddress: "192.0.2.1", sourcePort: 1)
        let event = AuditEvent.authAccepted(connection, user: "alice", key: AuditKey(type: "ssh-ed25519", fingerprint: "SHA256:k"))
        log.record(event)
        XCTAssertEqual(try journal?.receive().first { $0.0 == "DEVENV_USER" }?.1, "alice")

        journal = nil  // journald stops: its socket is gone
        log.record(event)
        log.record(event)
        log.retryInterval = 0
        log.record(event)  // tried again, still gone: no second warning
        journal = try FakeJournal(path: path)
        log.record(event)  // back
        XCTAssertEqual(try journal?.receive().first { $0.0 == "DEVENV_EVENT" }?.1, "auth-accepted")

        let lines = capture.finish()
        XCTAssertEqual(lines.count, 5, lines.joined(separator: "\n"))
        XCTAssertTrue(lines[0].hasPrefix("devenv-gw: warning: audit: cannot write to journald at \(path): "), lines[0])
        XCTAssertTrue(lines[0].hasSuffix("audit events go to stderr as JSON lines until journald answers again"), lines[0])
        for line in lines[1...3] {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            XCTAssertEqual(object["DEVENV_SESSION_ID"], connection.sessionID)
        }
        XCTAssertEqual(lines[4], "devenv-gw: audit: \(path) answers again; audit events go to journald")
    }

    func testInMemoryAndDiscardingLogs() {
        let memory = AuditLog.inMemory()
        memory.record(.userRemoved("alice", by: AuditAdmin(uid: 0, name: "root")))
        XCTAssertEqual(memory.recordedEvents.map(\.type), [.userRemoved])
        XCTAssertEqual(memory.recordedEvents.first?.message, "root (uid 0) removed user \"alice\"")
        AuditLog.discarding().record(.userRemoved("alice", by: AuditAdmin(uid: 0, name: "root")))
    }

    func testEveryEventTypeHasItsOwnMessageID() {
        let ids = AuditEventType.allCases.map(\.messageID)
        XCTAssertEqual(Set(ids).count, ids.count)
        XCTAssertTrue(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
        XCTAssertTrue(AuditField.allCases.allSatisfy { field in
            field.rawValue.count <= 64 && field.rawValue.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" }
        })
    }

    func testEscapingForMessages() {
        XCTAssertEqual(AuditEvent.escaped("a\nb\tc\u{7f}\u{85}\u{202e}d\\"), "a\\x0ab\\x09c\\x7f\\u{85}\\u{202e}d\\\\")
        XCTAssertEqual(AuditEvent.quoted("say \"hi\""), "\"say \\\"hi\\\"\"")
        XCTAssertEqual(AuditEvent.escaped("ünïcødé"), "ünïcødé")
    }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}

/// A pipe standing in for stderr; `finish()` closes the writing end and returns the lines.
final class Capture {
    let writeFD: Int32
    private let reader: FileHandle
    private var data = Data()
    private let done = DispatchGroup()

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CocoaError(.fileWriteUnknown) }
        writeFD = fds[1]
        reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        done.enter()
        DispatchQueue.global().async { [self] in
            data = reader.readDataToEndOfFile()
            done.leave()
        }
    }

    func finish() -> [String] {
        close(writeFD)
        done.wait()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// A datagram socket where journald's would be, decoding what arrives as journald does.
final class FakeJournal {
    let path: String
    private let fd: Int32
    private(set) var lastDatagram: [UInt8] = []

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw CocoaError(.fileWriteUnknown) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next entry's fields, in order.
    func receive() throws -> [(String, String)] {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { throw CocoaError(.fileReadUnknown) }
        lastDatagram = Array(buffer[0..<count])
        return try Self.decode(lastDatagram)
    }

    static func decode(_ bytes: [UInt8]) throws -> [(String, String)] {
        var fields: [(String, String)] = []
        var index = 0
        while index < bytes.count {
            guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == 0x0a }) else {
                throw CocoaError(.fileReadCorruptFile)
            }
            let name = String(decoding: bytes[index..<end], as: UTF8.self)
            if bytes[end] == UInt8(ascii: "=") {
                guard let lineEnd = bytes[end...].firstIndex(of: 0x0a) else { throw CocoaError(.fileReadCorruptFile) }
                fields.append((name, String(decoding: bytes[(end + 1)..<lineEnd], as: UTF8.self)))
                index = lineEnd + 1
            } else {
                guard end + 9 <= bytes.count else { throw CocoaError(.fileReadCorruptFile) }
                let length = bytes[(end + 1)..<(end + 9)].reversed().reduce(0) { $0 << 8 | Int($1) }
                let start = end + 9
                guard start + length < bytes.count, bytes[start + length] == 0x0a else { throw CocoaError(.fileReadCorruptFile) }
                fields.append((name, String(decoding: bytes[start..<(start + length)], as: UTF8.self)))
                index = start + length + 1
            }
        }
        return fields
    }
}
