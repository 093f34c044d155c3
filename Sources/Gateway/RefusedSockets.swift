import CLibSSH
import Foundation

/// Refuses connections on the accept thread, before any key exchange: no thread, no libssh
/// session, no crypto, so refusing a flood costs next to nothing.
///
/// The client gets our identification line and an unencrypted SSH_MSG_DISCONNECT (allowed
/// before the first key exchange), which OpenSSH prints as
/// `Received disconnect from HOST port PORT:12: <text>`. The socket is then kept until the
/// client closes it, or for `lingerTime`: closing it while the client's own identification
/// is still unread would send a reset, and the client could lose the message.
final class RefusedSockets {
    private struct Lingering {
        let fd: Int32
        let deadline: Date
    }

    /// SSH_DISCONNECT_TOO_MANY_CONNECTIONS (RFC 4253, 11.1).
    static let tooManyConnections: UInt32 = 12
    static let lingerTime: TimeInterval = 2
    /// Refused sockets kept at once, so a flood cannot make the refusals themselves exhaust
    /// descriptors.
    static let maxLingering = 32

    private var lingering: [Lingering] = []

    /// The descriptors to poll for the client's end.
    var descriptors: [Int32] { lingering.map(\.fd) }

    /// Sends `text` to the client as the reason for a disconnect and closes `fd` once the
    /// client has had time to read it. At most `lingerLimit` sockets (and never more than
    /// `maxLingering`) are kept; beyond that the oldest is closed.
    func refuse(_ fd: Int32, text: String, lingerLimit: Int = maxLingering) {
        let bytes = Self.refusal(text)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        // A fresh socket's send buffer is empty, so this small write completes or fails at once.
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count, lingerLimit > 0 else {
            close(fd)
            return
        }
        // The oldest kept socket has had the longest to read its message: it makes room.
        while lingering.count >= min(lingerLimit, Self.maxLingering) {
            close(lingering.removeFirst().fd)
        }
        shutdown(fd, Int32(SHUT_WR))
        lingering.append(Lingering(fd: fd, deadline: Date().addingTimeInterval(Self.lingerTime)))
    }

    /// Reads and drops what the client sent on `fd`; closes it at the client's end.
    func serviceReadable(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { closeLingering(fd) }
    }

    /// Closes the sockets whose time is up.
    func closeExpired(now: Date = Date()) {
        for entry in lingering where entry.deadline <= now { closeLingering(entry.fd) }
    }

    /// Closes every socket still kept.
    func closeAll() {
        lingering.forEach { close($0.fd) }
        lingering.removeAll()
    }

    private func closeLingering(_ fd: Int32) {
        guard let index = lingering.firstIndex(where: { $0.fd == fd }) else { return }
        lingering.remove(at: index)
        close(fd)
    }

    /// Our identification line and an unencrypted SSH_MSG_DISCONNECT carrying `text`.
    static func refusal(_ text: String) -> [UInt8] {
        var payload: [UInt8] = [1]  // SSH_MSG_DISCONNECT
        payload += bigEndian(tooManyConnections)
        payload += bigEndian(UInt32(text.utf8.count)) + Array(text.utf8)
        payload += bigEndian(0)  // language tag
        // packet_length, padding_length, payload and padding fill whole 8-byte blocks,
        // with at least 4 bytes of padding.
        var padding = 8 - (4 + 1 + payload.count) % 8
        if padding < 4 { padding += 8 }
        let packet = bigEndian(UInt32(1 + payload.count + padding)) + [UInt8(padding)] + payload
            + [UInt8](repeating: 0, count: padding)
        return Array("\(identification)\r\n".utf8) + packet
    }

    /// The identification libssh's own sessions send, e.g. `SSH-2.0-libssh_0.10.6`.
    static let identification: String = {
        let version = ssh_version(0).map { String(cString: $0) } ?? ""
        return "SSH-2.0-libssh_" + (version.split(separator: "/").first.map(String.init) ?? "")
    }()

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }
}
