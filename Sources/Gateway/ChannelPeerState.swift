import CLibSSH
import CShims

/// What the peer of a channel declared, read through the C shim (libssh keeps it private).
struct ChannelPeerState {
    /// The largest data packet the peer accepts.
    let maxPacket: UInt32
    let sentEOF: Bool
    let sentClose: Bool
    /// How much the peer may still send before libssh grants more.
    let window: UInt32

    /// Smaller maximum packets are refused: libssh's write loop spins for ever on 10 and
    /// sends one byte per packet on 11. Every real client asks for 16 KiB or more.
    static let smallestMaxPacket: UInt32 = 1024

    /// nil when the running libssh's layout is unknown to the shim.
    init?(of channel: ssh_channel) {
        var state = devenv_channel_peer_state()
        guard devenv_ssh_channel_peer_state(channel, &state) == 0 else { return nil }
        maxPacket = state.max_packet
        sentEOF = state.sent_eof != 0
        sentClose = state.sent_close != 0
        window = state.local_window
    }
}
