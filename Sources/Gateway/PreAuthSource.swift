import Foundation

/// Where a connection comes from, as the pre-auth limiter counts it: the exact address and
/// the network it belongs to, a /24 for IPv4 and a /64 for IPv6.
///
/// One host can hold a whole /64 (and a small cloud customer a /24), so counting exact
/// addresses would let one party multiply its share by switching addresses. An IPv4-mapped
/// IPv6 address (a dual-stack listener's view of an IPv4 peer) counts as the IPv4 address.
struct PreAuthSource: Hashable, CustomStringConvertible {
    /// The peer's address in canonical text (dotted quad for IPv4, also when it was mapped).
    let address: String
    /// The peer's network, e.g. `192.0.2.0/24` or `2001:db8:0:1::/64`.
    let network: String

    init(address text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(ipv4: v4)
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12..<16]) }
                self.init(ipv4: v4)
                return
            }
            var prefix = v6
            withUnsafeMutableBytes(of: &prefix) { raw in
                for index in 8..<16 { raw[index] = 0 }
            }
            self.init(address: Self.text(AF_INET6, v6), network: Self.text(AF_INET6, prefix) + "/64")
        } else {
            // Not an IP address (never from accept); it forms a network of its own.
            self.init(address: text, network: text)
        }
    }

    private init(ipv4: in_addr) {
        var prefix = ipv4
        withUnsafeMutableBytes(of: &prefix) { $0[3] = 0 }
        self.init(address: Self.text(AF_INET, ipv4), network: Self.text(AF_INET, prefix) + "/24")
    }

    private init(address: String, network: String) {
        self.address = address
        self.network = network
    }

    var description: String { address }

    private static func text(_ family: Int32, _ address: in_addr) -> String {
        withUnsafeBytes(of: address) { text(family, $0) }
    }

    private static func text(_ family: Int32, _ address: in6_addr) -> String {
        withUnsafeBytes(of: address) { text(family, $0) }
    }

    private static func text(_ family: Int32, _ bytes: UnsafeRawBufferPointer) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, bytes.baseAddress, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(cString: buffer)
    }
}
