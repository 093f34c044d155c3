import CLibSSH
import Foundation

/// Errors from generating, reading or writing private keys.
public enum PrivateKeyError: Error, CustomStringConvertible {
    case generationFailed(String)
    case unreadable(path: String, reason: String)
    case invalid(String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .generationFailed(let type): return "cannot generate a \(type) key"
        case .unreadable(let path, let reason): return "cannot read key \(path): \(reason)"
        case .invalid(let what): return "not a valid private key: \(what)"
        case .writeFailed(let path, let reason): return "cannot write key \(path): \(reason)"
        }
    }
}

/// A private key (host key or client key), kept as its OpenSSH/PEM text.
public struct PrivateKey: Sendable, Equatable {
    /// The key in the text form libssh and OpenSSH read.
    public let pemText: String
    /// The matching public key.
    public let publicKey: PublicKey

    /// Generates a new key. `bits` is used for RSA only.
    public static func generate(_ kind: Kind, comment: String = "") throws -> PrivateKey {
        var key: ssh_key?
        let (type, bits): (ssh_keytypes_e, Int32) = kind == .ed25519 ? (SSH_KEYTYPE_ED25519, 0) : (SSH_KEYTYPE_RSA, 3072)
        guard ssh_pki_generate(type, bits, &key) == SSH_OK, let key else {
            throw PrivateKeyError.generationFailed("\(kind)")
        }
        let handle = SSHKeyHandle(owning: key)
        return try PrivateKey(handle: handle, comment: comment)
    }

    /// The kinds of key the gateway generates.
    public enum Kind: Sendable { case ed25519, rsa3072 }

    /// Parses a private key from its text.
    public init(pemText: String, comment: String = "") throws {
        var key: ssh_key?
        guard ssh_pki_import_privkey_base64(pemText, nil, nil, nil, &key) == SSH_OK, let key else {
            throw PrivateKeyError.invalid("libssh cannot parse it")
        }
        try self.init(handle: SSHKeyHandle(owning: key), comment: comment, text: pemText)
    }

    private init(handle: SSHKeyHandle, comment: String, text: String? = nil) throws {
        if let text {
            pemText = text
        } else {
            var b64: UnsafeMutablePointer<CChar>?
            guard ssh_pki_export_privkey_base64(handle.raw, nil, nil, nil, &b64) == SSH_OK, let b64 else {
                throw PrivateKeyError.invalid("cannot export")
            }
            defer { ssh_string_free_char(b64) }
            pemText = String(cString: b64)
        }
        do {
            publicKey = try handle.publicKey(comment: comment)
        } catch {
            throw PrivateKeyError.invalid("cannot derive the public key")
        }
    }

    /// Reads a key file; a missing, unreadable or corrupt file is an error, never replaced.
    public static func load(path: String) throws -> PrivateKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PrivateKeyError.unreadable(path: path, reason: error.localizedDescription)
        }
        do {
            return try PrivateKey(pemText: text)
        } catch {
            throw PrivateKeyError.unreadable(path: path, reason: "corrupt or not a private key")
        }
    }

    /// Writes the key with mode 0600, refusing to replace an existing file.
    public func write(to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw PrivateKeyError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        let bytes = Array(pemText.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let closed = close(fd)
        guard written == bytes.count, closed == 0 else {
            unlink(path)
            throw PrivateKeyError.writeFailed(path: path, reason: "short write")
        }
    }

    /// Loads the key at `path`, or generates and writes one when no file exists there.
    public static func loadOrCreate(path: String, kind: Kind) throws -> (key: PrivateKey, created: Bool) {
        if FileManager.default.fileExists(atPath: path) {
            return (try load(path: path), false)
        }
        let key = try generate(kind)
        try key.write(to: path)
        return (key, true)
    }
}
