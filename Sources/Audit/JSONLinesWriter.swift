import Foundation

/// Writes entries as one JSON object per line: the same fields as in the journal, every
/// value a string as `journalctl -o json` shows them, plus TIMESTAMP (ISO 8601, UTC, with
/// milliseconds), which journald adds by itself.
final class JSONLinesWriter: @unchecked Sendable {
    let descriptor: Int32
    private let lock = NSLock()

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    func write(_ fields: [AuditFieldValue], at date: Date = Date()) {
        writeLine(Self.line(fields, at: date))
    }

    /// Writes one whole line; lines from different threads never interleave.
    func writeLine(_ line: String) {
        let bytes = Array(line.utf8) + [0x0a]
        lock.lock()
        defer { lock.unlock() }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }  // nowhere left to write the audit trail
            offset += written
        }
    }

    static func line(_ fields: [AuditFieldValue], at date: Date) -> String {
        var members = [("TIMESTAMP", timestamp(date))]
        members += fields.map { ($0.field.rawValue, $0.value) }
        return "{" + members.map { "\(quoted($0.0)):\(quoted($0.1))" }.joined(separator: ",") + "}"
    }

    /// A JSON string; control characters, U+2028 and U+2029 always as \u escapes.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), milliseconds)
    }
}
