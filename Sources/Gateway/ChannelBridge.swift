import Audit
import CLibSSH
import CShims
import Foundation

/// One client session channel and its twin on the workspace's sshd.
///
/// Requests (pty, env, exec, shell, subsystem) are completed upstream inside the
/// downstream callback, because libssh sends the reply from the callback's return value.
/// Data moves through `ChannelPump`s after each poll; EOF, exit status and close are
/// forwarded only once the data before them has been written.
final class ChannelBridge {
    private unowned let connection: ClientConnection
    let down: ssh_channel
    let up: ssh_channel?
    private let downCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    private let upCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    let toUpstream: ChannelPump?
    let toClient: ChannelPump?
    let toClientStderr: ChannelPump?

    /// What the client asked this channel to run: `shell`, `exec`, `subsystem:sftp`, …
    private(set) var kind = "session"
    var downEOF = false, upEOF = false
    var downClosed = false, upClosed = false
    private var sentEOFUp = false, sentEOFDown = false
    private var closedUp = false, closedDown = false
    var exitStatus: Int32?
    var exitSignal: (name: String, core: Bool, message: String)?
    private var sentExit = false
    /// Set when the workspace is unavailable: the channel reports why and ends.
    private let failureMessage: String?
    private var failureDue = false
    private(set) var released = false
    /// What the audit trail says about this channel; nil until it runs something.
    private(set) var auditChannel: AuditChannel?
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
        if let up {
            toUpstream = ChannelPump(from: down, to: up, isStderr: false)
            toClient = ChannelPump(from: up, to: down, isStderr: false)
            toClientStderr = ChannelPump(from: up, to: down, isStderr: true)
        } else {
            toUpstream = nil
            toClient = nil
            toClientStderr = nil
        }
        downCallbacks = .allocate(capacity: 1)
        upCallbacks = .allocate(capacity: 1)
        Self.installDownstreamCallbacks(downCallbacks, agentForwarding: agentForwarding)
        Self.installUpstreamCallbacks(upCallbacks)
        let context = Unmanaged.passUnretained(self).toOpaque()
        downCallbacks.pointee.userdata = context
        upCallbacks.pointee.userdata = context
        ssh_set_channel_callbacks(down, downCallbacks)
        if let up { ssh_set_channel_callbacks(up, upCallbacks) }
    }

    deinit {
        release()
        downCallbacks.deallocate()
        upCallbacks.deallocate()
    }

    var bytesToWorkspace: UInt64 { toUpstream?.transferred ?? 0 }
    var bytesToClient: UInt64 { (toClient?.transferred ?? 0) + (toClientStderr?.transferred ?? 0) }

    /// True when both channels are closed and nothing is left to forward.
    var isFinished: Bool {
        closedDown && (up == nil || closedUp) && downClosed && (up == nil || upClosed)
    }

    // MARK: - Progress after each poll

    /// Moves data, then forwards EOF, exit status and close in order. Returns true on progress.
    @discardableResult
    func advance(buffer: inout [UInt8]) -> Bool {
        if released { return false }
        var progress = false
        if let failureMessage, failureDue {
            failureDue = false
            reportFailure(failureMessage)
            return true
        }
        guard let up, let toUpstream, let toClient, let toClientStderr else {
            if downClosed && !closedDown { closeDown() }
            return false
        }
        if let open = completeUpstreamOpen {
            let rc = open()
            if rc == SSH_AGAIN { return false }
            completeUpstreamOpen = nil
            guard rc == SSH_OK else {
                connection.log("forwarding failed in the workspace: \(kind)")
                if let forwarding = auditChannel?.forwarding {
                    connection.recordForwarding(forwarding, refusedBecause: "the workspace could not connect")
                }
                upClosed = true
                closedUp = true
                closeDown()
                return true
            }
            connection.log("forwarding opened: \(kind)")
            if let forwarding = auditChannel?.forwarding { connection.recordForwarding(forwarding) }
            progress = true
        }
        progress = toUpstream.drain(using: &buffer) || progress
        progress = toClient.drain(using: &buffer) || progress
        progress = toClientStderr.drain(using: &buffer) || progress

        if downClosed && !closedUp {
            // The client is gone: its pending data still goes up before the close.
            toUpstream.drain(using: &buffer)
            toClient.discard()
            toClientStderr.discard()
            if !sentEOFUp { ssh_channel_send_eof(up); sentEOFUp = true }
            ssh_channel_close(up)
            closedUp = true
            progress = true
        }
        if downEOF && !sentEOFUp && toUpstream.pending == 0 && !closedUp {
            ssh_channel_send_eof(up)
            sentEOFUp = true
            progress = true
        }
        let upstreamDrained = toClient.pending == 0 && toClientStderr.pending == 0
        if upstreamDrained && (upEOF || upClosed) && !sentEOFDown && !closedDown {
            ssh_channel_send_eof(down)
            sentEOFDown = true
            progress = true
        }
        if upstreamDrained && !sentExit && !closedDown && (exitStatus != nil || exitSignal != nil) {
            if let exitStatus { ssh_channel_request_send_exit_status(down, exitStatus) }
            if let exitSignal {
                ssh_channel_request_send_exit_signal(down, exitSignal.name, exitSignal.core ? 1 : 0,
                                                     exitSignal.message, "")
            }
            sentExit = true
            progress = true
        }
        if upClosed && upstreamDrained && !closedDown {
            closeDown()
            if !closedUp { ssh_channel_close(up); closedUp = true }
            progress = true
        }
        return progress
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
        toClient?.noteBuffered(max(0, Int(ssh_channel_poll(up, 0))))
        toClientStderr?.noteBuffered(max(0, Int(ssh_channel_poll(up, 1))))
        if ssh_channel_is_eof(up) != 0 { upEOF = true }
        if ssh_channel_is_closed(up) != 0 { upClosed = true }
    }

    /// Called when the workspace connection is lost: ends the client's channel.
    func upstreamLost() {
        upClosed = true
        closedUp = true
        toUpstream?.discard()
        if !closedDown { closeDown() }
    }

    /// Called when the client connection is gone.
    func clientLost() {
        downClosed = true
        closedDown = true
        if let up, !closedUp {
            ssh_channel_close(up)
            closedUp = true
        }
        upClosed = true
    }

    private func closeDown() {
        if !sentEOFDown { ssh_channel_send_eof(down); sentEOFDown = true }
        ssh_channel_close(down)
        closedDown = true
    }

    private func reportFailure(_ message: String) {
        let line = "devenv: your workspace could not start: \(message)\r\n"
        _ = line.withCString { ssh_channel_write_stderr(down, $0, UInt32(strlen($0))) }
        ssh_channel_request_send_exit_status(down, 1)
        sentExit = true
        closeDown()
        upClosed = true
        closedUp = true
    }

    /// Removes callbacks and frees both channels; idempotent.
    func release() {
        guard !released else { return }
        released = true
        if auditChannel != nil { connection.recordChannelEnd(self) }
        ssh_remove_channel_callbacks(down, downCallbacks)
        ssh_channel_free(down)
        if let up {
            ssh_remove_channel_callbacks(up, upCallbacks)
            ssh_channel_free(up)
        }
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
        ssh_channel_request_auth_agent(up)
        connection.log("agent forwarding enabled on \(kind) channel")
        connection.recordForwarding(AuditForwarding(kind: .agent))
    }

    func forwardSignal(_ name: String) {
        guard let up else { return }
        ssh_channel_request_send_signal(up, name)
    }

    // MARK: - Callback tables

    private static func installDownstreamCallbacks(_ table: UnsafeMutablePointer<ssh_channel_callbacks_struct>,
                                                   agentForwarding: Bool) {
        table.initialize(to: ssh_channel_callbacks_struct())
        devenv_ssh_init_channel_callbacks(table)
        table.pointee.channel_data_function = { _, _, _, length, isStderr, userdata in
            // Client stderr data is not part of any session protocol, and without a workspace
            // there is nowhere to send data: consume and drop it.
            guard let bridge = bridge(userdata), isStderr == 0, let toUpstream = bridge.toUpstream else {
                return Int32(length)
            }
            toUpstream.noteBuffered(Int(length))
            return 0
        }
        table.pointee.channel_eof_function = { _, _, userdata in bridge(userdata)?.downEOF = true }
        table.pointee.channel_close_function = { _, _, userdata in bridge(userdata)?.downClosed = true }
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
        table.pointee.channel_data_function = { _, _, _, length, isStderr, userdata in
            guard let bridge = bridge(userdata) else { return Int32(length) }
            (isStderr != 0 ? bridge.toClientStderr : bridge.toClient)?.noteBuffered(Int(length))
            return 0
        }
        table.pointee.channel_eof_function = { _, _, userdata in bridge(userdata)?.upEOF = true }
        table.pointee.channel_close_function = { _, _, userdata in bridge(userdata)?.upClosed = true }
        table.pointee.channel_exit_status_function = { _, _, status, userdata in
            bridge(userdata)?.exitStatus = status
        }
        table.pointee.channel_exit_signal_function = { _, _, signal, core, message, _, userdata in
            bridge(userdata)?.exitSignal = (text(signal), core != 0, text(message))
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
