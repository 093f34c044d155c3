import CLibSSH
import Foundation

/// Why a public key line was refused. Each case reads as a message an admin can act on.
public enum PublicKeyError: Error, Equatable, CustomStringConvertible {
    case empty
    case privateKey
    case missingKeyData
    case unsupportedType(String)
    case dsaRefused
    case certificateRefused
    case rsaTooShort(bits: Int)
    case malformed(String)
    case typeMismatch(declared: String, actual: String)
    /// Parses, but no real key pair has it (`DegenerateKeys`).
    case degenerate(String)

    public var description: String {
        switch self {
        case .empty:
            return "the key is empty"
        case .privateKey:
            return "this is a private key; give the public key (the .pub file) instead, and keep the private key secret"
        case .missingKeyData:
            return "the key has a type but no base64 key data"
        case .unsupportedType(let type):
            return "unsupported key type '\(type)'"
        case .dsaRefused:
            return "DSA keys (ssh-dss) are insecure and not accepted; use ssh-ed25519"
        case .certificateRefused:
            return "SSH certificates are not accepted; register the plain public key"
        case .rsaTooShort(let bits):
            return "RSA key of \(bits) bits is too short; at least 2048 bits are required"
        case .malformed(let detail):
            return "the key data is not a valid public key (\(detail))"
        case .typeMismatch(let declared, let actual):
            return "the key says it is \(declared) but its data is \(actual)"
        case .degenerate(let detail):
            return "the key is not a usable public key (\(detail)): anybody could sign for it; "
                + "generate a new key with ssh-keygen"
        }
    }
}

/// An SSH public key as registered for a user, validated by libssh.
public struct PublicKey: Equatable, Hashable, Sendable {
    /// The algorithm name, such as `ssh-ed25519`.
    public let type: String
    /// The base64 key blob: the identity of the key.
    public let base64: String
    /// The free-text comment after the key, possibly empty.
    public let comment: String
    /// The key size in bits as libssh reports it.
    public let bits: Int
    /// The OpenSSH-style fingerprint, `SHA256:…`.
    public let fingerprint: String

    /// The key in `authorized_keys` form.
    public var line: String {
        comment.isEmpty ? "\(type) \(base64)" : "\(type) \(base64) \(comment)"
    }

    /// Parses and validates one `authorized_keys`-style line: `type base64 [comment]`.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw PublicKeyError.empty }
        if trimmed.contains("PRIVATE KEY") { throw PublicKeyError.privateKey }
        let fields = trimmed.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let declared = fields[0]
        guard fields.count >= 2 else {
            throw fields[0].count > 40 ? PublicKeyError.malformed("no key type") : PublicKeyError.missingKeyData
        }
        if declared == "ssh-dss" { throw PublicKeyError.dsaRefused }
        if declared.contains("-cert-v01@openssh.com") { throw PublicKeyError.certificateRefused }
        let comment = fields.count > 2 ? fields[2].trimmingCharacters(in: .whitespaces) : ""
        guard comment.allSatisfy({ !$0.isNewline && $0 != "\0" }) else {
            throw PublicKeyError.malformed("the comment spans several lines")
        }
        let keyType = ssh_key_type_from_name(declared)
        guard keyType != SSH_KEYTYPE_UNKNOWN else { throw PublicKeyError.unsupportedType(declared) }

        let key = try SSHKeyHandle(importingBase64: fields[1], type: keyType)
        let actual = key.typeName
        guard actual == declared || (declared.hasPrefix("rsa-sha2-") && actual == "ssh-rsa") else {
            throw PublicKeyError.typeMismatch(declared: declared, actual: actual)
        }
        if actual == "ssh-dss" { throw PublicKeyError.dsaRefused }
        let bits = key.bits
        if actual == "ssh-rsa" && bits < 2048 { throw PublicKeyError.rsaTooShort(bits: bits) }
        if let problem = DegenerateKeys.problem(type: actual, blob: try key.publicBlob()) {
            throw PublicKeyError.degenerate(problem)
        }
        self.type = actual
        self.base64 = try key.publicBase64()
        self.comment = comment
        self.bits = bits
        self.fingerprint = try key.sha256Fingerprint()
    }

    /// Builds a key from parts already validated (for example read back from the registry).
    public init(type: String, base64: String, comment: String, bits: Int, fingerprint: String) {
        self.type = type
        self.base64 = base64
        self.comment = comment
        self.bits = bits
        self.fingerprint = fingerprint
    }

    /// Parses every non-empty, non-comment line of an `authorized_keys`-style text.
    public static func parseAll(_ text: String) throws -> [PublicKey] {
        try text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map { try PublicKey(parsing: $0) }
    }
}
