import CLibSSH

/// How much more the bridge may hand to one libssh session for sending.
///
/// libssh queues outgoing data without limit, and a peer that advertises a huge window
/// and stops reading would make that queue grow for ever. The bridge writes to a session
/// only while fewer than `limit` bytes may be waiting in it. libssh reports write-pending
/// from every write until a poll finds its buffer empty, so the count restarts only then:
/// an upper bound on what libssh holds, never an under-estimate.
final class OutboundBudget {
    private let session: ssh_session
    let limit: Int
    private var queued = 0

    init(session: ssh_session, limit: Int) {
        self.session = session
        self.limit = limit
    }

    /// Bytes that may still be written now.
    var available: Int {
        if queued > 0 && ssh_get_poll_flags(session) & SSH_WRITE_PENDING == 0 { queued = 0 }
        return max(0, limit - queued)
    }

    func spent(_ bytes: Int) { queued += bytes }
}
