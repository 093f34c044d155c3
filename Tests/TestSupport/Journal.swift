import Foundation
import XCTest

/// One journal entry as `journalctl -o json` prints it. A field may hold several values;
/// values journalctl prints as byte arrays (those with control characters, such as a
/// newline) are decoded back to text.
public struct JournalEntry {
    public let fields: [String: [String]]

    /// The field's value (the first, if it has several).
    public subscript(_ name: String) -> String? { fields[name]?.first }

    /// Every value the field has in this entry.
    public func values(_ name: String) -> [String] { fields[name] ?? [] }

    init(json: [String: Any]) {
        var fields: [String: [String]] = [:]
        for (name, value) in json {
            fields[name] = Self.decode(value)
        }
        self.fields = fields
    }

    private static func decode(_ value: Any) -> [String] {
        if let text = value as? String { return [text] }
        guard let array = value as? [Any] else { return [] }  // null: a field too large without --all
        if let bytes = array as? [Int] { return [String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)] }
        return array.flatMap(decode)
    }
}

/// Reads the journal of the journald that `scripts/setup.sh` starts.
public enum Journal {
    public static let socketPath = "/run/systemd/journal/socket"

    /// Whether journald's native socket is there; tests that need it fail without it
    /// (CI always provides one).
    public static func requireJournald(file: StaticString = #filePath, line: UInt = #line) throws {
        var info = stat()
        guard stat(socketPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
            XCTFail("no journald socket at \(socketPath); run scripts/setup.sh", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
    }

    /// Entries whose `field` equals `value` (e.g. a random session id a test chose), in
    /// journal order. Waits up to `timeout` seconds for at least `count` to arrive.
    public static func entries(where field: String, is value: String, atLeast count: Int = 1,
                               timeout: TimeInterval = 15) throws -> [JournalEntry] {
        let deadline = Date().addingTimeInterval(timeout)
        var found: [JournalEntry] = []
        repeat {
            found = try read(["\(field)=\(value)"])
            if found.count >= count { return found }
            usleep(100_000)
        } while Date() < deadline
        return found
    }

    /// Entries matching journalctl match expressions (`FIELD=value`, `+` for OR).
    public static func read(_ matches: [String]) throws -> [JournalEntry] {
        let result = try runProgram("/usr/bin/journalctl", ["-o", "json", "--all", "--no-pager", "-q"] + matches)
        guard result.status == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "journalctl: \(result.stderr)"])
        }
        return result.output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{"),
                  let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { return nil }
            return JournalEntry(json: object)
        }
    }
}
