import CLibSSH
import CoreMetrics

/// One byte stream of a bridged channel (stdout or stderr, one way) from a source channel
/// to a sink channel, without blocking and without losing a byte.
///
/// Bytes arrive through the source's data callback (`accept`), which takes them into a
/// queue of this stream up to `softLimit`; libssh keeps the rest and, since it counts what
/// it keeps, grants the peer no more window meanwhile. `flush` writes the queue to the sink
/// as far as the sink's window and the session's outbound budget allow, keeps whatever a
/// short or zero write (a key re-exchange) left, and writes it first next time.
///
/// What libssh keeps is fetched whole (`fetchHeld`), by the bridge, for all streams of a
/// channel at once: libssh 0.10's `ssh_channel_read` grants the peer a full window
/// (1.28 MB) whatever it still buffers, so reading only what a slow sink takes would let
/// libssh's buffer grow by a window per read.
final class ChannelStream {
    /// Where the bytes come from; nil for a stream that only carries the gateway's own message.
    let source: ssh_channel?
    let sink: ssh_channel
    let isStderr: Bool
    private let queue = ByteQueue()
    /// Bytes libssh still buffers for this stream, as its data callback and reads tell.
    private(set) var heldBySource = 0
    /// Bytes written to the sink: what the audit trail reports.
    private(set) var delivered: UInt64 = 0
    /// Set while a read writes into the queue's memory, which a callback must not touch then.
    private var isFetching = false

    /// The queue takes new data from the source's callback up to this size.
    static let softLimit = 256 * 1024

    /// The source channel's window account, shared by its streams.
    private let sourceWindow: ReceiveWindowWatch?
    /// Where the bytes of each flush are counted for the metrics (one atomic add a flush).
    private let deliveredCounter: Counter?

    init(from source: ssh_channel?, to sink: ssh_channel, isStderr: Bool, sourceWindow: ReceiveWindowWatch?,
         deliveredCounter: Counter? = nil) {
        self.source = source
        self.sink = sink
        self.isStderr = isStderr
        self.sourceWindow = sourceWindow
        self.deliveredCounter = deliveredCounter
    }

    /// Bytes received from the source and not written yet, here or in libssh.
    var pendingCount: Int { queue.count + heldBySource }

    /// True while some byte has not been written to the sink yet.
    var hasPendingData: Bool { pendingCount > 0 }

    /// True when the queue has room to take everything libssh holds (see `fetchHeld`).
    var isReadyToFetch: Bool { queue.count <= Self.softLimit / 2 }

    /// Queues bytes that do not come from a channel (the gateway's own messages).
    func enqueue(_ bytes: [UInt8]) { queue.append(bytes) }

    /// The source's data callback: `bytes` is everything libssh buffers for this stream.
    /// Returns how many bytes were taken; libssh keeps the rest.
    func accept(_ bytes: UnsafeRawBufferPointer) -> Int {
        // A read that found libssh's buffer empty handles packets and lands here: leave
        // the bytes to libssh, the read in progress takes them.
        let taken = isFetching ? 0 : min(bytes.count, max(0, Self.softLimit - queue.count))
        queue.append(UnsafeRawBufferPointer(rebasing: bytes[..<taken]))
        sourceWindow?.received(max(0, bytes.count - heldBySource), keptByLibssh: bytes.count - taken)
        heldBySource = bytes.count - taken
        return taken
    }

    /// Takes over what libssh buffered before this stream's callbacks existed.
    func adoptBuffered(_ length: Int) { heldBySource = max(0, length) }

    /// What a flush achieved.
    struct Progress {
        var moved = false
        /// The sink returned an error.
        var sinkFailed = false
    }


    /// Drops everything that waits: the sink is gone. What libssh still holds stays there
    /// (it withholds the peer's window) until the channel is freed.
    func discard() {
        queue.removeAll()
        heldBySource = 0
    }

    /// Gives back the queue's memory while it is empty.
    func trim() { queue.trim() }

    /// Writes what the sink takes now: at most its window and the session's budget. A
    /// short or zero write keeps the rest for next time.
    func flush(budget: OutboundBudget) -> Progress {
        var progress = Progress()
        var flushed = 0
        defer { if flushed > 0 { deliveredCounter?.increment(by: flushed) } }
        while !queue.isEmpty {
            let allowance = min(Int(ssh_channel_window_size(sink)), budget.available)
            guard allowance > 0 else { break }
            var result: Int32 = 0
            let written = queue.consumeFront(upTo: allowance) { bytes in
                result = isStderr
                    ? ssh_channel_write_stderr(sink, bytes.baseAddress, UInt32(bytes.count))
                    : ssh_channel_write(sink, bytes.baseAddress, UInt32(bytes.count))
                return result > 0 ? Int(result) : 0
            }
            if result < 0 {
                progress.sinkFailed = true
                break
            }
            guard written > 0 else { break }  // a key re-exchange: retried after the next poll
            delivered += UInt64(written)
            flushed += written
            budget.spent(written)
            progress.moved = true
        }
        return progress
    }

    /// Moves everything libssh holds for this stream into the queue. False on a read error.
    /// The caller fetches every stream of a channel together, once each `isReadyToFetch`.
    ///
    /// Reads straight into the queue's memory. With data buffered libssh serves a read
    /// without handling packets; if it handles some anyway, `accept` leaves them to libssh.
    func fetchHeld() -> Bool {
        guard let source else { return true }
        isFetching = true
        defer { isFetching = false }
        while heldBySource > 0 {
            var result: Int32 = 0
            queue.fill(upTo: heldBySource) { free in
                result = ssh_channel_read_nonblocking(source, free.baseAddress, UInt32(free.count), isStderr ? 1 : 0)
                return result > 0 ? Int(result) : 0
            }
            if result == SSH_ERROR {
                heldBySource = 0  // lost with the source's session
                return false
            }
            guard result > 0 else {
                heldBySource = 0  // nothing was buffered after all (EOF, or taken already)
                break
            }
            heldBySource = max(0, heldBySource - Int(result))
        }
        sourceWindow?.resynchronize()
        return true
    }
}
