import Foundation

/// Sends entries to journald with its native protocol: one datagram per entry on the
/// journal socket, each field `NAME=value\n`, or for a value holding a newline (or NUL)
/// the binary form `NAME\n<64-bit little-endian length><bytes>\n`. An entry larger than a
/// datagram may be goes in a sealed memfd passed with SCM_RIGHTS, as sd_journal_send does.
///
/// Field names come only from `AuditField`; a value is always one value, whatever it holds.
final class JournaldWriter: @unchecked Sendable {
    let socketPath: String
    private let fd: Int32
    /// Read-only after init: sends from many threads only read it.
    private let address: sockaddr_un
    /// Entries larger than this go through a memfd without trying a datagram first
    /// (tests set it low to exercise that path); nil: only when the kernel says EMSGSIZE.
    var memfdThreshold: Int?

    init(socketPath: String) throws {
        self.socketPath = socketPath
        let pathBytes = Array(socketPath.utf8)
        var address = sockaddr_un()
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw AuditError.journal(socketPath, "socket path too long")
        }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AuditError.journal(socketPath, "socket: \(errnoText())") }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        self.address = address
        // Room for large entries (the kernel caps this at net.core.wmem_max), and never
        // more than a second's wait when journald's queue is full.
        var sendBuffer: Int32 = 8 * 1024 * 1024
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Whether a socket exists at `path` (journald is presumably listening on it).
    static func socketExists(at path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Sends one entry; throws when journald did not take it.
    func send(_ fields: [AuditFieldValue]) throws {
        let entry = Self.serialize(fields)
        if let memfdThreshold, entry.count > memfdThreshold {
            try sendThroughMemfd(entry)
            return
        }
        let sent = entry.withUnsafeBytes { bytes in
            withUnsafePointer(to: address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0,
                           socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        if sent == entry.count { return }
        if sent < 0 && (errno == EMSGSIZE || errno == ENOBUFS) {
            try sendThroughMemfd(entry)
            return
        }
        throw AuditError.journal(socketPath, sent < 0 ? errnoText() : "short send")
    }

    /// The native protocol's bytes for one entry.
    static func serialize(_ fields: [AuditFieldValue]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(0) { $0 + $1.field.rawValue.utf8.count + $1.value.utf8.count + 10 })
        for item in fields {
            out += item.field.rawValue.utf8
            let value = Array(item.value.utf8)
            if value.contains(0x0a) || value.contains(0) {
                out.append(0x0a)
                var length = UInt64(value.count).littleEndian
                withUnsafeBytes(of: &length) { out += $0 }
                out += value
            } else {
                out.append(UInt8(ascii: "="))
                out += value
            }
            out.append(0x0a)
        }
        return out
    }

    // MARK: - Large entries

    private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
    private static let memfdCreate: MemfdCreate? = {
        // glibc has memfd_create since 2.27, but Swift's Glibc module does not export it.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else { return nil }
        return unsafeBitCast(symbol, to: MemfdCreate.self)
    }()

    private func sendThroughMemfd(_ entry: [UInt8]) throws {
        let mfdCloexec: UInt32 = 1, mfdAllowSealing: UInt32 = 2
        guard let create = Self.memfdCreate else { throw AuditError.journal(socketPath, "entry too large and no memfd") }
        let memfd = create("devenv-gw-audit", mfdCloexec | mfdAllowSealing)
        guard memfd >= 0 else { throw AuditError.journal(socketPath, "memfd_create: \(errnoText())") }
        defer { close(memfd) }
        var offset = 0
        while offset < entry.count {
            let written = entry[offset...].withUnsafeBytes { write(memfd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw AuditError.journal(socketPath, "memfd write: \(errnoText())") }
            offset += written
        }
        // journald takes only a sealed memfd: F_ADD_SEALS with SHRINK, GROW, WRITE and SEAL.
        let fAddSeals: Int32 = 1033, seals: Int32 = 0x1 | 0x2 | 0x4 | 0x8
        guard fcntl(memfd, fAddSeals, seals) == 0 else { throw AuditError.journal(socketPath, "sealing the memfd: \(errnoText())") }

        // One SCM_RIGHTS control message carrying the descriptor, and no data.
        let headerSize = MemoryLayout<cmsghdr>.size
        let controlLength = headerSize + MemoryLayout<Int32>.size
        let controlSpace = (controlLength + 7) & ~7
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSpace, alignment: 8)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: controlSpace)
        let header = control.assumingMemoryBound(to: cmsghdr.self)
        header.pointee.cmsg_len = Int(controlLength)
        header.pointee.cmsg_level = SOL_SOCKET
        header.pointee.cmsg_type = Int32(SCM_RIGHTS)
        control.storeBytes(of: memfd, toByteOffset: headerSize, as: Int32.self)

        var target = address
        let sent = withUnsafeMutablePointer(to: &target) { pointer -> Int in
            var message = msghdr()
            message.msg_name = UnsafeMutableRawPointer(pointer)
            message.msg_namelen = socklen_t(MemoryLayout<sockaddr_un>.size)
            message.msg_control = control
            message.msg_controllen = controlSpace
            return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        }
        guard sent >= 0 else { throw AuditError.journal(socketPath, "sendmsg with memfd: \(errnoText())") }
    }
}

/// Why the audit trail could not be written where it was asked to go.
public enum AuditError: Error, CustomStringConvertible {
    case journal(String, String)

    public var description: String {
        switch self {
        case .journal(let path, let reason): return "journald at \(path): \(reason)"
        }
    }
}

func errnoText() -> String {
    String(cString: strerror(errno))
}
