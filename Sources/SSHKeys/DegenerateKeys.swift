/// Public keys that libssh imports but that no real key pair has, so that registering one
/// would let anybody (or nobody) log in: an Ed25519 point of small order (the all-zero key
/// among them), for which a signature can be forged without a private key, and RSA
/// parameters under which signing is no secret (exponent 1 or even, an even modulus).
/// Only cheap checks on the public blob; a key that passes is not thereby proved sound.
enum DegenerateKeys {
    /// Why the key of this type and public blob is refused, or nil.
    static func problem(type: String, blob: [UInt8]) -> String? {
        guard let fields = SSHBlob.fields(blob) else { return nil }
        switch type {
        case "ssh-ed25519":
            guard fields.count == 2, fields[1].count == 32 else { return nil }
            var point = Array(fields[1])
            point[31] &= 0x7f  // the sign of x: both signs of these y values are of small order
            return smallOrderEd25519.contains(point) ? "an Ed25519 point of small order" : nil
        case "ssh-rsa":
            guard fields.count == 3 else { return nil }
            let exponent = fields[1].drop { $0 == 0 }, modulus = fields[2]
            if exponent.count == 0 || (exponent.count == 1 && exponent.first! < 3) { return "RSA public exponent below 3" }
            if exponent.last! & 1 == 0 { return "even RSA public exponent" }
            if modulus.last.map({ $0 & 1 == 0 }) ?? true { return "even RSA modulus" }
            return nil
        default:
            return nil
        }
    }

    /// Encodings of the y coordinate (sign bit cleared) of the Ed25519 points of order 1, 2,
    /// 4 and 8, canonical and not: the list libsodium refuses (`ge25519_has_small_order`).
    static let smallOrderEd25519: Set<[UInt8]> = {
        func littleEndian(_ first: UInt8, rest: UInt8, last: UInt8) -> [UInt8] {
            [first] + [UInt8](repeating: rest, count: 30) + [last]
        }
        return [
            littleEndian(0x00, rest: 0x00, last: 0x00),  // y = 0, order 4
            littleEndian(0x01, rest: 0x00, last: 0x00),  // y = 1, the neutral element
            littleEndian(0xec, rest: 0xff, last: 0x7f),  // y = p - 1, order 2
            littleEndian(0xed, rest: 0xff, last: 0x7f),  // y = p (= 0)
            littleEndian(0xee, rest: 0xff, last: 0x7f),  // y = p + 1 (= 1)
            [0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
             0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05],  // order 8
            [0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
             0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a],  // order 8
        ]
    }()
}

/// The SSH wire encoding of a public key blob: a sequence of uint32-length-prefixed strings
/// (RFC 4253 §6.6).
enum SSHBlob {
    /// Every field of `blob`, or nil when a length runs past its end.
    static func fields(_ blob: [UInt8]) -> [ArraySlice<UInt8>]? {
        var fields: [ArraySlice<UInt8>] = []
        var offset = 0
        while offset < blob.count {
            guard blob.count - offset >= 4 else { return nil }
            let length = blob[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            guard length <= blob.count - offset else { return nil }
            fields.append(blob[offset..<offset + length])
            offset += length
        }
        return fields
    }
}
