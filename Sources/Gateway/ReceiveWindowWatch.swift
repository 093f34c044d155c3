import CLibSSH

/// Tells a peer that keeps within the window it was granted on one channel from one that
/// does not. libssh 0.10 accepts data past the window (it only logs it and sets the window
/// to 0), so the bridge keeps its own account: the window before each packet is libssh's
/// counter after the previous event plus libssh's grant rule, and what arrives beyond it
/// is excess.
final class ReceiveWindowWatch {
    private let channel: ssh_channel
    /// The window the peer may send into before the next packet; nil until the channel is
    /// open (the bridge calls `resynchronize()` then).
    private var expected: UInt32?
    /// Bytes the peer sent beyond its window so far.
    private(set) var excess = 0

    /// libssh's WINDOWBASE and WINDOWLIMIT (channels.c).
    private static let grantedWindow: UInt32 = 1_280_000
    private static let grantThreshold: UInt32 = 640_000
    /// More excess than this is far past the window: the channel is closed.
    static let toleratedExcess = 1024 * 1024

    init(_ channel: ssh_channel) {
        self.channel = channel
    }

    var isOverrun: Bool { excess > Self.toleratedExcess }

    /// From a data callback: `arrived` new bytes, of which libssh keeps `keptByLibssh`
    /// buffered for that stream when the callback returns.
    func received(_ arrived: Int, keptByLibssh: Int) {
        guard let state = ChannelPeerState(of: channel) else { return }
        // libssh sets the window to 0 when a packet is larger than it.
        if let expected, arrived > Int(expected), state.window == 0 {
            excess += arrived - Int(expected)
        }
        // After the callback, libssh grants a full window when little is left and kept.
        let left = UInt64(state.window) + UInt64(keptByLibssh)
        expected = left < UInt64(Self.grantThreshold) ? max(state.window, Self.grantedWindow) : state.window
    }

    /// After a read, which may have granted a window.
    func resynchronize() {
        expected = ChannelPeerState(of: channel)?.window
    }
}
