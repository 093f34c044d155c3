import CCrypto

/// SHA-256 over data given in pieces (OpenSSL's libcrypto, fast in any build mode).
final class SHA256 {
    private let context: OpaquePointer

    init() {
        // Allocation and initialisation fail only when memory is exhausted.
        context = EVP_MD_CTX_new()!
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, !bytes.isEmpty { EVP_DigestUpdate(context, base, bytes.count) }
    }

    func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything given so far, as lowercase hex; the hash cannot be fed afterwards.
    func finalHex() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest.prefix(Int(length)).map { String(format2Hex: $0) }.joined()
    }
}

private extension String {
    init(format2Hex byte: UInt8) {
        let digits = String(byte, radix: 16)
        self = digits.count == 1 ? "0" + digits : digits
    }
}
