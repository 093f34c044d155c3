import CLibSSH
import Foundation

/// Owns one libssh `ssh_key` and frees it when released. Internal: callers outside
/// this module see only `PublicKey`, `PrivateKey` and strings.
final class SSHKeyHandle {
    let raw: ssh_key

    init(owning raw: ssh_key) { self.raw = raw }

    convenience init(importingBase64 base64: String, type: ssh_keytypes_e) throws {
        var key: ssh_key?
        guard ssh_pki_import_pubkey_base64(base64, type, &key) == SSH_OK, let key else {
            throw PublicKeyError.malformed("truncated or invalid base64")
        }
        self.init(owning: key)
    }

    deinit { ssh_key_free(raw) }

    var typeName: String {
        guard let name = ssh_key_type_to_char(ssh_key_type(raw)) else { return "unknown" }
        return String(cString: name)
    }

    /// Key size in bits. libssh 0.10 has no accessor, so RSA's modulus is read from the blob.
    var bits: Int {
        switch typeName {
        case "ssh-ed25519", "sk-ssh-ed25519@openssh.com": return 256
        case "ecdsa-sha2-nistp256", "sk-ecdsa-sha2-nistp256@openssh.com": return 256
        case "ecdsa-sha2-nistp384": return 384
        case "ecdsa-sha2-nistp521": return 521
        case "ssh-rsa":
            guard let b64 = try? publicBase64(), let blob = Data(base64Encoded: b64) else { return 0 }
            return Self.rsaModulusBits(blob: [UInt8](blob))
        default: return 0
        }
    }

    /// The RSA public blob is string("ssh-rsa"), mpint(e), mpint(n) (RFC 4253 §6.6).
    static func rsaModulusBits(blob: [UInt8]) -> Int {
        guard let fields = SSHBlob.fields(blob), fields.count == 3 else { return 0 }
        let modulus = fields[2]
        guard let first = modulus.firstIndex(where: { $0 != 0 }) else { return 0 }
        let leading = modulus[first]
        return (modulus.endIndex - first) * 8 - leading.leadingZeroBitCount
    }

    /// The public key in SSH wire form.
    func publicBlob() throws -> [UInt8] {
        guard let blob = Data(base64Encoded: try publicBase64()) else {
            throw PublicKeyError.malformed("cannot export the public key")
        }
        return [UInt8](blob)
    }

    func publicBase64() throws -> String {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(raw, &b64) == SSH_OK, let b64 else {
            throw PublicKeyError.malformed("cannot export the public key")
        }
        defer { ssh_string_free_char(b64) }
        return String(cString: b64)
    }

    func sha256Fingerprint() throws -> String {
        var hash: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard ssh_get_publickey_hash(raw, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == SSH_OK, let hash else {
            throw PublicKeyError.malformed("cannot hash the key")
        }
        defer { var h: UnsafeMutablePointer<UInt8>? = hash; ssh_clean_pubkey_hash(&h) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length) else {
            throw PublicKeyError.malformed("cannot format the fingerprint")
        }
        defer { ssh_string_free_char(text) }
        return String(cString: text)
    }

    func publicKey(comment: String = "") throws -> PublicKey {
        PublicKey(type: typeName, base64: try publicBase64(), comment: comment, bits: bits,
                  fingerprint: try sha256Fingerprint())
    }
}
