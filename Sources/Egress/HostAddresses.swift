import Foundation

/// The IPv4 addresses of this host's interfaces, as a workspace could reach them.
public enum HostAddresses {
    /// Every IPv4 address on every interface (bridges and `lo` included), except
    /// 127.0.0.0/8, which a container's packets never reach. With `--network host` the
    /// gateway's container sees the host's interfaces.
    public static func ipv4() -> [UInt32] {
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0 else { return [] }
        defer { freeifaddrs(first) }
        var result: [UInt32] = []
        var current = first
        while let entry = current {
            defer { current = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let value = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            if value >> 24 == 127 || result.contains(value) { continue }
            result.append(value)
        }
        return result.sorted()
    }
}
