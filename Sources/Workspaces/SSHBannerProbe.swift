import Foundation

/// Checks that an SSH server accepts connections by reading its identification line.
enum SSHBannerProbe {
    /// Waits until sshd at `host` (port 22) answers, for at most `timeout` seconds, then
    /// throws `WorkspaceError.sshdNotReady` naming `workspace`. `checkStillStarting` throws
    /// when the workspace stopped; it is called at most twice a second, because in a login
    /// storm every waiting login asking the engine 20 times a second slowed the very starts
    /// they were waiting for.
    static func waitUntilAnswering(host: String, timeout: TimeInterval, workspace: String,
                                   checkStillStarting: () throws -> Void) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var nextCheck = Date().addingTimeInterval(0.5)
        while Date() < deadline {
            if answers(host: host, port: 22, timeout: 1) { return }
            if Date() >= nextCheck {
                try checkStillStarting()
                nextCheck = Date().addingTimeInterval(0.5)
            }
            usleep(50_000)
        }
        throw WorkspaceError.sshdNotReady(container: workspace, address: host)
    }

    /// True when `host:port` (IPv4) answers with `SSH-` within `timeout` seconds.
    static func answers(host: String, port: UInt16, timeout: TimeInterval) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4)
        let count = recv(fd, &buffer, 4, Int32(MSG_WAITALL))
        return count == 4 && buffer == Array("SSH-".utf8)
    }
}
