import Foundation

/// An IPv4 network in CIDR notation, e.g. `169.254.0.0/16`; a bare address is a /32.
public struct IPv4Network: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The network address, host bits cleared.
    public let address: UInt32
    public let prefixLength: Int

    public init(address: UInt32, prefixLength: Int) {
        self.prefixLength = prefixLength
        self.address = prefixLength == 0 ? 0 : address & (UInt32.max << (32 - prefixLength))
    }

    /// Parses `A.B.C.D` or `A.B.C.D/N`; host bits set in the address are cleared, as
    /// iptables does.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = Self.parseAddress(String(parts[0])) else {
            throw EgressPolicyError("\(text) is not an IPv4 address or network (A.B.C.D or A.B.C.D/N)")
        }
        var length = 32
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...32).contains(value) else {
                throw EgressPolicyError("\(text): the prefix length must be 0 to 32")
            }
            length = value
        }
        self.init(address: address, prefixLength: length)
    }

    public var description: String {
        let octets = [24, 16, 8, 0].map { String((address >> UInt32($0)) & 0xff) }
        return octets.joined(separator: ".") + "/\(prefixLength)"
    }

    /// True when `other` lies inside this network.
    public func contains(_ other: UInt32) -> Bool {
        IPv4Network(address: other, prefixLength: prefixLength).address == address
    }

    /// Four decimal octets, each 0 to 255, nothing else (no shorthand like `10.1`).
    static func parseAddress(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = UInt32(octet), number <= 255 else { return nil }
            value = value << 8 | number
        }
        return value
    }
}
