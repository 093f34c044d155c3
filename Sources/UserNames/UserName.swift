/// Why a user name was refused.
public enum UserNameError: Error, Equatable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case invalid(String)

    public var description: String {
        switch self {
        case .empty:
            return "the user name is empty"
        case .tooLong(let count):
            return "the user name has \(count) characters; at most 32 are allowed"
        case .invalid(let escaped):
            return "invalid user name \(escaped): use lowercase letters, digits, '_' and '-', starting with a letter or '_'"
        }
    }
}

/// A validated user name: `^[a-z_][a-z0-9_-]{0,31}$`.
///
/// It is the only thing container, volume and log names are derived from, so it can
/// never carry path separators, option dashes, whitespace or control characters.
public struct UserName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The canonical name.
    public let value: String

    public init(_ raw: String) throws {
        guard !raw.isEmpty else { throw UserNameError.empty }
        let bytes = Array(raw.utf8)
        guard bytes.count <= 32 else { throw UserNameError.tooLong(raw.count) }
        func isLower(_ b: UInt8) -> Bool { b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        let first = bytes[0]
        let validFirst = isLower(first) || first == UInt8(ascii: "_")
        let validRest = bytes.dropFirst().allSatisfy {
            isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
        guard validFirst && validRest else { throw UserNameError.invalid(Self.quoted(raw)) }
        value = raw
    }

    public var description: String { value }

    public static func < (lhs: UserName, rhs: UserName) -> Bool { lhs.value < rhs.value }

    /// Quotes untrusted text for an error message with control and non-ASCII characters escaped.
    public static func quoted(_ raw: String) -> String {
        var out = "'"
        for scalar in raw.unicodeScalars.prefix(64) {
            switch scalar {
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case " "..."~": out.unicodeScalars.append(scalar)
            default: out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out + (raw.unicodeScalars.count > 64 ? "…'" : "'")
    }
}
