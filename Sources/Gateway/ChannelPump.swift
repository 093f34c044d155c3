import CLibSSH

/// Moves one stream (stdout or stderr) of data from a source channel to a sink channel
/// without ever blocking: at most the sink's window is written, the rest stays buffered
/// inside libssh (which then withholds the source's window: back-pressure end to end).
final class ChannelPump {
    let source: ssh_channel
    let sink: ssh_channel
    let isStderr: Bool
    /// Bytes libssh holds for this stream that have not been written on yet.
    private(set) var pending = 0
    /// Bytes moved so far.
    private(set) var transferred: UInt64 = 0

    init(from source: ssh_channel, to sink: ssh_channel, isStderr: Bool) {
        self.source = source
        self.sink = sink
        self.isStderr = isStderr
    }

    /// Called from the source's data callback with the total buffered length; consumes nothing.
    func noteBuffered(_ length: Int) { pending = length }

    /// Writes as much pending data as the sink's window takes. Returns true when bytes moved.
    @discardableResult
    func drain(using buffer: inout [UInt8]) -> Bool {
        var moved = false
        while pending > 0 {
            let window = Int(ssh_channel_window_size(sink))
            guard window > 0, ssh_channel_is_open(sink) != 0 else { break }
            let want = min(pending, window, buffer.count)
            let got = buffer.withUnsafeMutableBytes {
                ssh_channel_read_nonblocking(source, $0.baseAddress, UInt32(want), isStderr ? 1 : 0)
            }
            guard got > 0 else {
                pending = 0
                break
            }
            // Update before writing: the write may poll and re-enter the data callback.
            pending -= Int(got)
            transferred += UInt64(got)
            _ = buffer.withUnsafeBytes {
                isStderr ? ssh_channel_write_stderr(sink, $0.baseAddress, UInt32(got))
                         : ssh_channel_write(sink, $0.baseAddress, UInt32(got))
            }
            moved = true
        }
        return moved
    }

    /// Drops what cannot be delivered any more (the sink is gone).
    func discard() { pending = 0 }
}
