import Audit
import CLibSSH
import CShims
import Foundation
import GatewayMetrics

/// One client channel and its twin on the workspace's sshd.
///
/// Requests (pty, env, exec, shell, subsystem) are completed upstream inside the
/// downstream callback, because libssh sends the reply from the callback's return value.
/// Data moves through `ChannelStream`s after each poll; each direction's EOF, exit status
/// and close follow from its `ChannelDirection`, only once the data before them is written.
final class ChannelBridge {
    private unowned let connection: ClientConnection
    let down: ssh_channel
    let up: ssh_channel?
    private let downCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    private let upCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    /// Client to workspace.
    private let toWorkspace: ChannelStream?
    /// Workspace to client: stdout, and stderr (which also carries the gateway's own messages).
    private let toClient: ChannelStream?
    private let toClientStderr: ChannelStream
    /// The streams of each direction, kept once rather than built on every poll.
    private let streamsToWorkspace: [ChannelStream]
    private let streamsToClient: [ChannelStream]
    /// What each peer may send on its channel, to close a channel whose peer ignores it.
    private let clientWindow: ReceiveWindowWatch
    private let workspaceWindow: ReceiveWindowWatch?
    private(set) var toWorkspaceDirection = ChannelDirection()
    private(set) var toClientDirection = ChannelDirection()

    /// What the client asked this channel to run: `shell`, `exec`, `subsystem:sftp`, …
    private(set) var kind = "session"
    /// How the workspace's program ended, for the audit trail.
    private(set) var exit: ChannelExit?
    /// Set when the workspace is unavailable: the channel reports why and ends.
    private let failureMessage: String?
    private var failureDue = false
    private var peerLimitsChecked = false
    private(set) var released = false
    /// What the audit trail says about this channel; nil until it runs something.
    private(set) var auditChannel: AuditChannel?
    /// The kind this channel is counted under in the session metrics, once it runs
    /// something in the workspace (a channel that only reports a failure is not counted).
    private var countedKind: SessionKind?
    private var term: String?
    let opened = Date()
    /// Completes an upstream open that was started without blocking (direct-tcpip): returns
    /// SSH_AGAIN while the workspace has not answered yet.
    private var completeUpstreamOpen: (() -> Int32)?

    /// - Parameters:
    ///   - kind: what the channel is for, until a request says more (`session`, `direct-tcpip …`).
    ///   - agentForwarding: whether `auth-agent-req` is accepted on this channel.
    init(connection: ClientConnection, down: ssh_channel, up: ssh_channel?, failureMessage: String?,
         kind: String = "session", agentForwarding: Bool = false, auditChannel: AuditChannel? = nil) {
        self.connection = connection
        self.down = down
        self.up = up
        self.failureMessage = failureMessage
        self.kind = kind
        self.auditChannel = auditChannel
        clientWindow = ReceiveWindowWatch(down)
        workspaceWindow = up.map(ReceiveWindowWatch.init)
        toWorkspace = up.map { [clientWindow] in
            ChannelStream(from: down, to: $0, isStderr: false, sourceWindow: clientWindow,
                          deliveredCounter: GatewayMetric.bytesToWorkspace)
        }
        toClient = up.map { [workspaceWindow] in
            ChannelStream(from: $0, to: down, isStderr: false, sourceWindow: workspaceWindow,
                          deliveredCounter: GatewayMetric.bytesToClient)
        }
        // Without a workspace this stream carries only the gateway's own message: not counted.
        toClientStderr = ChannelStream(from: up, to: down, isStderr: true, sourceWindow: workspaceWindow,
                                       deliveredCounter: up == nil ? nil : GatewayMetric.bytesToClient)
        streamsToWorkspace = toWorkspace.map { [$0] } ?? []
        streamsToClient = (toClient.map { [$0] } ?? []) + [toClientStderr]
        downCallbacks = .allocate(capacity: 1)
        upCallbacks = .allocate(capacity: 1)
        Self.installDownstreamCallbacks(downCallbacks, agentForwarding: agentForwarding)
        Self.installUpstreamCallbacks(upCallbacks)
        let context = Unmanaged.passUnretained(self).toOpaque()
        downCallbacks.pointee.userdata = context
        upCallbacks.pointee.userdata = context
        ssh_set_channel_callbacks(down, downCallbacks)
        if let up { ssh_set_channel_callbacks(up, upCallbacks) }
        if let auditChannel { countSession(auditChannel) }
    }

    /// Counts the channel as a started and open session, once, if it has a workspace side.
    private func countSession(_ channel: AuditChannel) {
        guard up != nil, countedKind == nil else { return }
        let kind = SessionKind(channel)
        kind.started.increment()
        kind.open.increment()
        countedKind = kind
    }

    deinit {
        release()
        downCallbacks.deallocate()
        upCallbacks.deallocate()
    }

    /// Bytes delivered to the workspace and to the client.
    var bytesToWorkspace: UInt64 { toWorkspace?.delivered ?? 0 }
    var bytesToClient: UInt64 { (toClient?.delivered ?? 0) + (up == nil ? 0 : toClientStderr.delivered) }

    /// True when both directions are done and both peers closed their channels.
    var isFinished: Bool { toWorkspaceDirection.isFinished && toClientDirection.isFinished }

    // MARK: - Progress after each poll

    /// Moves data, then sends what each direction is due. Returns true on progress.
    @discardableResult
    func advance() -> Bool {
        // Finished (or aborted): nothing more to do until the connection frees it.
        if released || isFinished { return false }
        var progress = false
        if let failureMessage, failureDue {
            failureDue = false
            toClientStderr.enqueue(Array("devenv: your workspace could not start: \(failureMessage)\r\n".utf8))
            toClientDirection.sourceReported(.status(1))
            toClientDirection.sourceClosedChannel()
            progress = true
        }
        if let open = completeUpstreamOpen {
            let rc = open()
            if rc == SSH_AGAIN { return progress }
            completeUpstreamOpen = nil
            guard rc == SSH_OK else {
                if let forwarding = auditChannel?.forwarding {
                    connection.recordForwarding(forwarding, refusedBecause: "the workspace could not connect")
                }
                workspaceChannelFailed("forwarding failed in the workspace")
                return performDueActions() || true
            }
            connection.log("forwarding opened: \(kind)")
            if let forwarding = auditChannel?.forwarding { connection.recordForwarding(forwarding) }
            progress = true
        }
        // Only now are both channels open and their peers' declarations known.
        if !peerLimitsChecked {
            peerLimitsChecked = true
            if let problem = unacceptablePeerLimits() {
                abort(problem)
                return true
            }
            clientWindow.resynchronize()
            workspaceWindow?.resynchronize()
        }
        progress = moveData() || progress
        if let (window, peer) = overrunWindow() {
            abort("the \(peer) sent \(window.excess) bytes past the window it was granted")
            return true
        }
        return performDueActions() || progress
    }

    /// Writes what each sink takes now, then fetches what libssh holds for a channel once
    /// all its streams have room, and writes again. A sink that fails loses its direction;
    /// a source that fails makes its direction end without an exit status.
    private func moveData() -> Bool {
        var moved = false
        if let budget = connection.upstreamBudget {
            moved = move(streamsToWorkspace, direction: \.toWorkspaceDirection, budget: budget,
                         sinkFailed: { $0.workspaceChannelFailed("writing to the workspace failed") },
                         sourceFailed: { $0.clientChannelFailed("reading from the client failed") })
        }
        let toClientMoved = move(streamsToClient, direction: \.toClientDirection, budget: connection.clientBudget,
                                 sinkFailed: { $0.clientChannelFailed("writing to the client failed") },
                                 sourceFailed: { $0.workspaceChannelFailed("reading from the workspace failed") })
        return toClientMoved || moved
    }

    /// Flushes `streams`; then, if libssh holds more for their channel and every stream has
    /// room, fetches it all and flushes again.
    private func move(_ streams: [ChannelStream], direction: KeyPath<ChannelBridge, ChannelDirection>,
                      budget: OutboundBudget, sinkFailed: (ChannelBridge) -> Void,
                      sourceFailed: (ChannelBridge) -> Void) -> Bool {
        var moved = false
        func flushAll() -> Bool {
            for stream in streams where self[keyPath: direction].phase != .closed {
                let result = stream.flush(budget: budget)
                moved = result.moved || moved
                if result.sinkFailed {
                    sinkFailed(self)
                    return false
                }
            }
            return true
        }
        guard flushAll(), self[keyPath: direction].phase != .closed,
              streams.contains(where: { $0.heldBySource > 0 }), streams.allSatisfy(\.isReadyToFetch) else {
            return moved
        }
        for stream in streams where !stream.fetchHeld() {
            sourceFailed(self)
            return true
        }
        _ = flushAll()
        return true
    }

    /// The window account of a peer that sent far past its window, if any.
    private func overrunWindow() -> (ReceiveWindowWatch, String)? {
        if clientWindow.isOverrun { return (clientWindow, "client") }
        if let workspaceWindow, workspaceWindow.isOverrun { return (workspaceWindow, "workspace") }
        return nil
    }

    /// Bytes received from the workspace (`fromWorkspace`) or the client and not yet written.
    func pendingCount(fromWorkspace: Bool) -> Int {
        fromWorkspace ? (toClient?.pendingCount ?? 0) + toClientStderr.pendingCount : toWorkspace?.pendingCount ?? 0
    }

    /// The client's channel broke: the workspace gets what was received, then EOF and close.
    private func clientChannelFailed(_ why: String) {
        connection.log("channel \(kind): \(why)")
        toClientDirection.sinkLost()
        discardToClient()
        toWorkspaceDirection.sourceFailed()
    }

    /// The workspace's channel broke: the client gets what was received, then EOF and close
    /// with no exit status, which clients report as a failure.
    private func workspaceChannelFailed(_ why: String) {
        connection.log("channel \(kind): \(why)")
        toWorkspaceDirection.sinkLost()
        toWorkspace?.discard()
        toClientDirection.sourceFailed()
    }

    private func discardToClient() {
        toClient?.discard()
        toClientStderr.discard()
    }

    /// Sends, in order, what each direction is due now.
    private func performDueActions() -> Bool {
        var progress = false
        let toWorkspacePending = toWorkspace?.hasPendingData ?? false
        while let action = toWorkspaceDirection.nextAction(dataPending: toWorkspacePending) {
            guard perform(action, on: up) else {
                workspaceChannelFailed("the workspace's channel refused \(action)")
                break
            }
            toWorkspaceDirection.performed(action)
            progress = true
        }
        let toClientPending = (toClient?.hasPendingData ?? false) || toClientStderr.hasPendingData
        while let action = toClientDirection.nextAction(dataPending: toClientPending) {
            guard perform(action, on: down) else {
                clientChannelFailed("the client's channel refused \(action)")
                break
            }
            toClientDirection.performed(action)
            progress = true
        }
        return progress
    }

    /// Sends one control message; false when libssh reports an error. No sink (no workspace)
    /// takes everything.
    private func perform(_ action: ChannelDirection.Action, on sink: ssh_channel?) -> Bool {
        guard let sink else { return true }
        let rc: Int32
        switch action {
        case .sendEOF:
            rc = ssh_channel_send_eof(sink)
        case .sendExit(.status(let status)):
            rc = ssh_channel_request_send_exit_status(sink, status)
        case .sendExit(.signal(let name, let core, let message)):
            rc = ssh_channel_request_send_exit_signal(sink, name, core ? 1 : 0, message, "")
        case .sendClose:
            rc = Self.close(sink)
        }
        // SSH_AGAIN: queued in libssh, which sends it before anything written later.
        return rc != SSH_ERROR
    }

    /// Sends close. libssh's close first sends EOF and returns SSH_AGAIN without sending the
    /// close when that EOF is not flushed yet; a second call then sends it.
    private static func close(_ channel: ssh_channel) -> Int32 {
        let rc = ssh_channel_close(channel)
        return rc == SSH_AGAIN ? ssh_channel_close(channel) : rc
    }

    /// Refuses channels whose peer declared a maximum packet libssh cannot write with.
    private func unacceptablePeerLimits() -> String? {
        for (channel, peer) in [(down, "client"), (up, "workspace")] {
            guard let channel, let state = ChannelPeerState(of: channel) else { continue }
            if state.maxPacket < ChannelPeerState.smallestMaxPacket {
                return "the \(peer) declared a maximum packet of \(state.maxPacket) bytes"
            }
        }
        return nil
    }

    /// Closes both channels at once, dropping what waits: the peer broke the protocol.
    private func abort(_ why: String) {
        connection.logger.notice("channel closed: \(why)", metadata: ["kind": .string(kind)])
        toWorkspace?.discard()
        discardToClient()
        completeUpstreamOpen = nil
        _ = Self.close(down)
        if let up { _ = Self.close(up) }
        toWorkspaceDirection.abandon()
        toClientDirection.abandon()
    }

    /// Defers the bridge until `open` (called after each poll) stops returning SSH_AGAIN;
    /// if it fails, the client's channel is closed.
    func awaitUpstreamOpen(_ open: @escaping () -> Int32) {
        completeUpstreamOpen = open
    }

    /// Takes over what libssh received on the workspace side before this bridge's callbacks
    /// existed (a channel the workspace opened and the gateway accepted first).
    func adoptEarlierUpstreamState() {
        guard let up else { return }
        toClient?.adoptBuffered(Int(ssh_channel_poll(up, 0)))
        toClientStderr.adoptBuffered(Int(ssh_channel_poll(up, 1)))
        guard let peer = ChannelPeerState(of: up) else { return }
        if peer.sentClose { workspaceClosedChannel() } else if peer.sentEOF { toClientDirection.sourceSentEOF() }
    }

    /// Called when the workspace connection is lost: the client gets what arrived, then
    /// EOF and close without an exit status.
    func upstreamLost() {
        guard up != nil, !toClientDirection.failed else { return }
        workspaceChannelFailed("the connection to the workspace was lost")
    }

    /// Called when the client connection is gone: the workspace's channel is closed now.
    func clientLost() {
        if let up { _ = Self.close(up) }
        toWorkspaceDirection.abandon()
        toClientDirection.abandon()
    }

    /// Gives back queue memory of streams that are idle.
    func trimBuffers() {
        toWorkspace?.trim()
        toClient?.trim()
        toClientStderr.trim()
    }

    /// Removes callbacks and frees both channels; idempotent.
    func release() {
        guard !released else { return }
        released = true
        if auditChannel != nil { connection.recordChannelEnd(self) }
        countedKind?.open.decrement()
        ssh_remove_channel_callbacks(down, downCallbacks)
        ssh_channel_free(down)
        if let up {
            ssh_remove_channel_callbacks(up, upCallbacks)
            ssh_channel_free(up)
        }
    }

    // MARK: - Events from the peers

    fileprivate func clientClosedChannel() {
        toWorkspaceDirection.sourceClosedChannel()
        toClientDirection.sinkClosed()
        discardToClient()
    }

    fileprivate func workspaceClosedChannel() {
        toClientDirection.sourceClosedChannel()
        toWorkspaceDirection.sinkLost()
        toWorkspace?.discard()
    }

    fileprivate func workspaceReported(_ exit: ChannelExit) {
        self.exit = exit
        toClientDirection.sourceReported(exit)
    }

    /// Data from the client: taken by the stream unless nothing goes to the workspace any more.
    fileprivate func acceptFromClient(_ bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        // Client stderr is not part of any session protocol, and without a workspace or
        // once its channel is gone there is nowhere to send data: consumed and dropped.
        guard !isStderr, let toWorkspace, toWorkspaceDirection.phase != .closed else {
            if toWorkspaceDirection.phase != .closed { clientWindow.received(bytes.count, keptByLibssh: 0) }
            return bytes.count
        }
        return toWorkspace.accept(bytes)
    }

    fileprivate func acceptFromWorkspace(_ bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        guard let stream = isStderr ? toClientStderr : toClient, toClientDirection.phase != .closed else {
            return bytes.count
        }
        return stream.accept(bytes)
    }

    // MARK: - Downstream requests (from the client)

    private func completeUpstream(_ what: String, _ request: (ssh_channel) -> Int32) -> Int32 {
        guard let up else {
            // No workspace: accept, then explain on stderr and exit non-zero.
            if what != "pty" && what != "env" && what != "window-change" { failureDue = true }
            return 0
        }
        let rc = connection.withUpstreamBlocking { request(up) }
        if rc != SSH_OK { connection.log("upstream refused \(what) (\(rc))") }
        return rc == SSH_OK ? 0 : -1
    }

    func requestPTY(term: String, columns: Int32, rows: Int32) -> Int32 {
        self.term = term
        return completeUpstream("pty") { ssh_channel_request_pty_size($0, term, columns, rows) }
    }

    func requestShell() -> Int32 {
        kind = "shell"
        return started(AuditChannel(id: 0, kind: .shell, term: term),
                       completeUpstream("shell") { ssh_channel_request_shell($0) })
    }

    func requestExec(_ command: String) -> Int32 {
        kind = "exec"
        return started(AuditChannel(id: 0, kind: .exec, command: command, term: term),
                       completeUpstream("exec") { ssh_channel_request_exec($0, command) })
    }

    func requestSubsystem(_ name: String) -> Int32 {
        kind = "subsystem:\(name)"
        return started(AuditChannel(id: 0, kind: .subsystem, subsystem: name, term: term),
                       completeUpstream("subsystem") { ssh_channel_request_subsystem($0, name) })
    }

    /// Records the start of what the channel runs once the workspace accepted it.
    private func started(_ channel: AuditChannel, _ result: Int32) -> Int32 {
        if result == 0 && auditChannel == nil {
            auditChannel = connection.recordChannelStart(channel)
            countSession(channel)
        }
        return result
    }

    func requestEnvironment(name: String, value: String) -> Int32 {
        guard GatewayConfiguration.isForwardedEnvironment(name) else { return -1 }
        return completeUpstream("env") { ssh_channel_request_env($0, name, value) }
    }

    func changeWindow(columns: Int32, rows: Int32) -> Int32 {
        guard let up else { return 0 }
        return ssh_channel_change_pty_size(up, columns, rows) == SSH_OK ? 0 : -1
    }

    func requestAgent() {
        guard let up else { return }
        // Sent without want-reply: the workspace's sshd then offers SSH_AUTH_SOCK.
        guard ssh_channel_request_auth_agent(up) != SSH_ERROR else {
            connection.log("the workspace refused agent forwarding on \(kind) channel")
            return
        }
        connection.log("agent forwarding enabled on \(kind) channel")
        connection.recordForwarding(AuditForwarding(kind: .agent))
    }

    func forwardSignal(_ name: String) {
        guard let up else { return }
        if ssh_channel_request_send_signal(up, name) == SSH_ERROR {
            connection.log("could not pass signal \(name) to the workspace")
        }
    }

    // MARK: - Callback tables

    private static func installDownstreamCallbacks(_ table: UnsafeMutablePointer<ssh_channel_callbacks_struct>,
                                                   agentForwarding: Bool) {
        table.initialize(to: ssh_channel_callbacks_struct())
        devenv_ssh_init_channel_callbacks(table)
        table.pointee.channel_data_function = { _, _, data, length, isStderr, userdata in
            guard let bridge = bridge(userdata) else { return Int32(length) }
            return Int32(bridge.acceptFromClient(UnsafeRawBufferPointer(start: data, count: Int(length)),
                                                 isStderr: isStderr != 0))
        }
        table.pointee.channel_eof_function = { _, _, userdata in bridge(userdata)?.toWorkspaceDirection.sourceSentEOF() }
        table.pointee.channel_close_function = { _, _, userdata in bridge(userdata)?.clientClosedChannel() }
        table.pointee.channel_signal_function = { _, _, signal, userdata in
            bridge(userdata)?.forwardSignal(text(signal))
        }
        table.pointee.channel_pty_request_function = { _, _, term, width, height, _, _, userdata in
            bridge(userdata)?.requestPTY(term: text(term), columns: width, rows: height) ?? -1
        }
        table.pointee.channel_shell_request_function = { _, _, userdata in
            bridge(userdata)?.requestShell() ?? -1
        }
        table.pointee.channel_exec_request_function = { _, _, command, userdata in
            bridge(userdata)?.requestExec(text(command)) ?? -1
        }
        table.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            bridge(userdata)?.requestSubsystem(text(name)) ?? -1
        }
        table.pointee.channel_env_request_function = { _, _, name, value, userdata in
            bridge(userdata)?.requestEnvironment(name: text(name), value: text(value)) ?? -1
        }
        table.pointee.channel_pty_window_change_function = { _, _, width, height, _, _, userdata in
            bridge(userdata)?.changeWindow(columns: width, rows: height) ?? -1
        }
        // libssh answers auth-agent-req with success exactly when this callback exists,
        // so a policy without agent forwarding leaves it unset and the client is refused.
        if agentForwarding {
            table.pointee.channel_auth_agent_req_function = { _, _, userdata in bridge(userdata)?.requestAgent() }
        }
    }

    private static func installUpstreamCallbacks(_ table: UnsafeMutablePointer<ssh_channel_callbacks_struct>) {
        table.initialize(to: ssh_channel_callbacks_struct())
        devenv_ssh_init_channel_callbacks(table)
        table.pointee.channel_data_function = { _, _, data, length, isStderr, userdata in
            guard let bridge = bridge(userdata) else { return Int32(length) }
            return Int32(bridge.acceptFromWorkspace(UnsafeRawBufferPointer(start: data, count: Int(length)),
                                                    isStderr: isStderr != 0))
        }
        table.pointee.channel_eof_function = { _, _, userdata in bridge(userdata)?.toClientDirection.sourceSentEOF() }
        table.pointee.channel_close_function = { _, _, userdata in bridge(userdata)?.workspaceClosedChannel() }
        table.pointee.channel_exit_status_function = { _, _, status, userdata in
            bridge(userdata)?.workspaceReported(.status(status))
        }
        table.pointee.channel_exit_signal_function = { _, _, signal, core, message, _, userdata in
            bridge(userdata)?.workspaceReported(.signal(name: text(signal), coreDumped: core != 0, message: text(message)))
        }
    }
}

/// The bridge a libssh callback's userdata points at (C callbacks cannot capture context).
private func bridge(_ userdata: UnsafeMutableRawPointer?) -> ChannelBridge? {
    userdata.map { Unmanaged<ChannelBridge>.fromOpaque($0).takeUnretainedValue() }
}

private func text(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}
