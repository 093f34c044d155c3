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

extension HostAddresses {
    /// The address this host's packets to `destination` leave from, as the kernel's routes
    /// choose it, or nil when there is no route. Nothing is sent: a UDP socket is only
    /// connected.
    public static func source(toward destination: UInt32) -> UInt32? {
        let socketFD = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socketFD >= 0 else { return nil }
        defer { close(socketFD) }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(9).bigEndian
        remote.sin_addr.s_addr = destination.bigEndian
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        guard named == 0 else { return nil }
        return UInt32(bigEndian: local.sin_addr.s_addr)
    }
}
