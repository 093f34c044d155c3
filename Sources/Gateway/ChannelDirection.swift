/// How a program in the workspace ended, as its sshd reported it.
enum ChannelExit: Equatable {
    case status(Int32)
    case signal(name: String, coreDumped: Bool, message: String)

    var status: Int32? {
        if case .status(let status) = self { return status }
        return nil
    }

    var signalName: String? {
        if case .signal(let name, _, _) = self { return name }
        return nil
    }
}

/// The progress of one direction of a bridged channel (client to workspace, or workspace
/// to client), independent of libssh so that the order of what is sent can be tested alone.
///
/// On each channel: data, then (towards the client) the exit status, then EOF, then close,
/// which is the order OpenSSH's sshd sends them in. The exit status must not follow EOF: a
/// client whose own input has ended (a ControlMaster's session, `ssh -n`) closes the
/// channel as soon as EOF arrives, and an exit status after that is lost (exit 255). The
/// source's end and exit status are only passed on once every byte it sent before was
/// written, and an exit status only when nothing failed on the way.
struct ChannelDirection: Equatable {
    enum Phase: Equatable {
        /// The source may still send data.
        case open
        /// The source ended (EOF, close or failure); what it sent before is still being written.
        case draining
        /// Every byte was written and EOF was sent to the sink.
        case eofSent
        /// Nothing more goes to the sink: we closed it, or it is gone.
        case closed
    }

    /// A control message the sink is due, in order.
    enum Action: Equatable {
        case sendEOF
        case sendExit(ChannelExit)
        case sendClose
    }

    private(set) var phase = Phase.open
    /// The source's channel is closed (not only at EOF): the sink is closed after EOF.
    private(set) var sourceClosed = false
    /// Something broke on the way: the sink gets EOF and close, never an exit status.
    private(set) var failed = false
    private var pendingExit: ChannelExit?
    private(set) var exitSent = false
    /// The sink's peer closed its channel: only an exit status and our close still go there.
    private(set) var sinkClosedByPeer = false

    /// True when this direction has nothing left to do and its source has closed too.
    var isFinished: Bool { phase == .closed && sourceClosed }

    mutating func sourceSentEOF() {
        if phase == .open { phase = .draining }
    }

    mutating func sourceClosedChannel() {
        sourceClosed = true
        if phase == .open { phase = .draining }
    }

    /// The workspace reported how its program ended; passed on after EOF.
    mutating func sourceReported(_ exit: ChannelExit) {
        guard !failed, !exitSent, phase != .closed else { return }
        pendingExit = exit
    }

    /// The source broke (its connection was lost, or data from it could not be written on):
    /// what was received is still delivered, then EOF and close without an exit status,
    /// so the client sees a failure rather than a clean end.
    mutating func sourceFailed() {
        failed = true
        pendingExit = nil
        sourceClosed = true
        if phase == .open { phase = .draining }
    }

    /// The sink's channel is gone (its peer closed it, or writing to it failed): nothing
    /// more can be sent there, and what waits for it is dropped.
    mutating func sinkLost() {
        phase = .closed
        pendingExit = nil
    }

    /// The sink's peer closed its channel. A client whose own input has ended closes as soon
    /// as EOF arrives, and OpenSSH's sshd can send EOF before the exit status: data can no
    /// longer go there, but the exit status still does (sshd, too, sends it after a client's
    /// close), and our close follows it, or the source's close when no exit status comes.
    mutating func sinkClosed() {
        guard !failed, !exitSent, phase != .closed else {
            sinkLost()
            return
        }
        sinkClosedByPeer = true
        if phase == .open || phase == .draining { phase = .eofSent }
    }

    /// Ends this direction at once, without waiting for anything: the connection is gone
    /// or the peer broke the protocol.
    mutating func abandon() {
        phase = .closed
        sourceClosed = true
        failed = true
        pendingExit = nil
    }

    /// The next control message to send, once all data is written (`dataPending` false).
    func nextAction(dataPending: Bool) -> Action? {
        // Data for a sink whose peer closed is dropped, so it holds nothing up.
        guard phase != .closed, !dataPending || sinkClosedByPeer else { return nil }
        if let pendingExit, !exitSent { return .sendExit(pendingExit) }
        switch phase {
        case .open, .closed:
            return nil
        case .draining:
            return .sendEOF
        case .eofSent:
            return sourceClosed || (sinkClosedByPeer && exitSent) ? .sendClose : nil
        }
    }

    /// Records that `action` was sent.
    mutating func performed(_ action: Action) {
        switch action {
        case .sendEOF:
            if phase == .draining { phase = .eofSent }
        case .sendExit:
            exitSent = true
            pendingExit = nil
        case .sendClose:
            phase = .closed
        }
    }
}
