import Audit
import CLibSSH
import CShims
import Foundation
import GatewayMetrics
import Logging
import SSHKeys
import UserNames
import Workspaces

/// One client's SSH connection, from key exchange to the end of its last channel.
/// Runs entirely on its own thread: libssh sessions belong to one thread at a time.
final class ClientConnection {
    let server: GatewayServer
    let session: ssh_session
    /// The client's socket as the pre-auth limiter may shut it down.
    private let socket: ConnectionSocket
    private let peer: String
    var logger: Logger
    private let serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>
    /// Session-level callbacks on the upstream: channels the workspace opens towards us.
    private let upstreamCallbacks: UnsafeMutablePointer<ssh_callbacks_struct>
    private var event: ssh_event?
    var upstream: UpstreamConnection?
    private var workspaceFailure: String?
    private var workspaceFailedAt = Date.distantFuture
    /// Set once a channel that told the client why the workspace failed has ended.
    private var workspaceFailureDelivered = false
    /// Packets received from the client, counted by libssh (the keep-alives' sign of life).
    private let received: UnsafeMutablePointer<ssh_counter_struct>
    private var clientAlive: ClientAliveMonitor
    var bridges: [ChannelBridge] = []
    /// Channels the workspace opened (agent, forwarded ports) that still need their twin
    /// opened towards the client, which is done outside libssh callbacks.
    var pendingReverseChannels: [PendingReverseChannel] = []
    /// What may wait in libssh's send buffers of each session before the bridge stops
    /// reading the other side.
    private(set) lazy var clientBudget = OutboundBudget(session: session, limit: Self.outboundLimit)
    private(set) var upstreamBudget: OutboundBudget?
    static let outboundLimit = 1024 * 1024
    /// Bytes received from one side and not yet written to the other at which that side is
    /// no longer read (see `applyBackPressure`).
    static let pauseLimit = 4 * 1024 * 1024
    private var upstreamPaused = false
    private var clientPaused = false

    private var authenticatedUser: UserName?
    /// The key that authenticated and the registration of the name it belonged to: the
    /// login holds only while both are still in the registry.
    private var login: (type: String, base64: String, registration: String)?
    /// Why an admin ended this login (user or key removed), once noticed.
    private var revokedBecause: String?
    private var revocationWatch = RevocationWatch(interval: ClientConnection.revocationCheckInterval)
    /// How often an open connection reads the registry's revocation count.
    static let revocationCheckInterval: TimeInterval = 2
    /// The audit trail's view of this connection: its session id and source.
    let auditConnection: AuditConnection
    /// The last name and key offered, for the one auth-failed event of a refused connection.
    private var lastAttempt: (user: String, type: String?, base64: String?)?
    private var nextChannelID = 0
    private var authAttempts = 0
    private var tooManyAttempts = false
    /// Set when a registered key came with a signature that did not verify.
    private var sawBadSignature = false
    private let peerHost: String
    private let started = Date()
    /// Set when the connection is refused after authentication: teardown then waits for the
    /// client to close, because closing with the client's data unread (its channel open,
    /// sent right after authentication) sends a reset that loses the disconnect message.
    private var waitForClientAfterDisconnect = false
    /// Set while the connection is being refused: the client's requests get no answer at all,
    /// so nothing is written before the disconnect message (see `prepareToSendDisconnect`).
    private(set) var refusing = false

    init(server: GatewayServer, session: ssh_session, socket: ConnectionSocket, peerHost: String, peerPort: Int) {
        self.server = server
        self.session = session
        self.socket = socket
        received = .allocate(capacity: 1)
        received.initialize(to: ssh_counter_struct())
        clientAlive = ClientAliveMonitor(interval: server.configuration.clientAliveInterval,
                                         countMax: server.configuration.clientAliveCountMax)
        peer = "\(peerHost):\(peerPort)"
        self.peerHost = peerHost
        auditConnection = AuditConnection(sourceAddress: peerHost, sourcePort: peerPort)
        logger = server.logger
        logger[metadataKey: "peer"] = .string(peer)
        logger[metadataKey: "session"] = .string(auditConnection.sessionID)
        upstreamCallbacks = .allocate(capacity: 1)
        serverCallbacks = .allocate(capacity: 1)
        serverCallbacks.initialize(to: ssh_server_callbacks_struct())
        devenv_ssh_init_server_callbacks(serverCallbacks)
        serverCallbacks.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        serverCallbacks.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            guard let userdata else { return Int32(SSH_AUTH_DENIED.rawValue) }
            let connection = Unmanaged<ClientConnection>.fromOpaque(userdata).takeUnretainedValue()
            return connection.authenticate(user: user.map { String(cString: $0) } ?? "", key: key, state: state)
        }
        serverCallbacks.pointee.channel_open_request_session_function = { _, userdata in
            guard let userdata else { return nil }
            return Unmanaged<ClientConnection>.fromOpaque(userdata).takeUnretainedValue().openSessionChannel()
        }
        upstreamCallbacks.initialize(to: ssh_callbacks_struct())
        devenv_ssh_init_session_callbacks(upstreamCallbacks)
        upstreamCallbacks.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        upstreamCallbacks.pointee.channel_open_request_auth_agent_function = { _, userdata in
            guard let userdata else { return nil }
            return Unmanaged<ClientConnection>.fromOpaque(userdata).takeUnretainedValue().acceptAgentChannelFromWorkspace()
        }
    }

    deinit {
        serverCallbacks.deallocate()
        upstreamCallbacks.deallocate()
        received.deallocate()
    }

    func log(_ message: String) { logger.info("\(message)") }

    /// Runs the connection to its end and frees everything it owns.
    func run(preAuthToken: UInt64) {
        defer {
            server.preAuth.remove(preAuthToken)
            teardown()
        }
        ssh_set_server_callbacks(session, serverCallbacks)
        installDownstreamMessageHandler()
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        guard ssh_handle_key_exchange(session) == SSH_OK else {
            // At debug level like any failed key exchange: under a flood these come by the
            // thousand, and the accept loop already notes them (throttled).
            logger.debug("key exchange failed: \(socket.wasEvicted ? "pushed out by the pre-auth limit" : errorText)")
            return
        }
        server.preAuth.keyExchangeCompleted(preAuthToken)
        guard let event = ssh_event_new() else { return }
        self.event = event
        ssh_event_add_session(event, session)
        guard authenticateWithinDeadline(), let user = authenticatedUser else {
            recordAuthFailure()
            return
        }
        server.preAuth.remove(preAuthToken)
        guard server.connections.claim(user) else {
            refuseOverUserCap(user)
            prepareToSendDisconnect()
            return
        }
        defer { server.connections.unclaim(user) }
        // Counted before the workspace is ensured, so the idle reaper never stops it under us.
        server.activity.sessionStarted(user)
        defer { server.activity.sessionEnded(user) }
        prepareWorkspace()
        bridgeUntilDone()
    }

    /// Tells the client, in the disconnect message OpenSSH prints, that `user` holds all
    /// the connections they may; logs and audits the refusal.
    private func refuseOverUserCap(_ user: UserName) {
        let cap = server.connections.maxPerUser
        let reason = "\(user.value) already has \(cap) \(cap == 1 ? "connection" : "connections") open"
        countRefusal(.cap, user: user.value)
        logger.notice("connection refused", metadata: ["limit": "max-connections-per-user", "reason": .string(reason)])
        server.audit.record(.connectionRefused(auditConnection, user: user.value, limit: "max-connections-per-user",
                                               limitValue: cap, reason: reason))
        // Sent by ssh_disconnect at teardown.
        refusing = true
        waitForClientAfterDisconnect = true
        ssh_session_set_disconnect_message(session, "devenv-gw: \(reason) (the limit per user); "
                                           + "close one and try again")
    }

    /// libssh writes a packet at once only after a poll saw the socket writable since its
    /// last write, and ssh_disconnect closes the socket right after queueing the disconnect,
    /// so without this poll the message (sent just after the auth reply) is dropped unsent.
    /// The client's channel open is left unanswered meanwhile: answering it would be another
    /// write, and a refused session makes OpenSSH quit before it reads the disconnect.
    private func prepareToSendDisconnect() {
        serverCallbacks.pointee.channel_open_request_session_function = nil
        ssh_event_dopoll(event, 100)
    }

    private var errorText: String { String(cString: ssh_get_error(UnsafeMutableRawPointer(session))) }

    // MARK: - Authentication

    private func authenticateWithinDeadline() -> Bool {
        let deadline = started.addingTimeInterval(server.configuration.authDeadline)
        while authenticatedUser == nil {
            if tooManyAttempts {
                logger.notice("too many authentication attempts; disconnecting")
                return false
            }
            guard Date() < deadline, !server.isStopping else {
                logger.notice("authentication deadline passed")
                return false
            }
            if ssh_event_dopoll(event, 200) == SSH_ERROR || ssh_is_connected(session) == 0 { return false }
        }
        return true
    }

    /// The public-key callback: probes are answered for registered keys only, and identity
    /// is decided only on a valid signature of a key registered to that user.
    private func authenticate(user: String, key: ssh_key?, state: CChar) -> Int32 {
        let denied = Int32(SSH_AUTH_DENIED.rawValue)
        authAttempts += 1
        if authAttempts >= server.configuration.maxAuthAttempts { tooManyAttempts = true }
        guard let key, let name = try? UserName(user), let (type, base64) = Self.describe(key) else {
            logger.notice("auth refused", metadata: ["user": .string(UserName.quoted(user))])
            lastAttempt = (user, nil, nil)
            return denied
        }
        let standing = try? server.accounts.standing(user: name, type: type, base64: base64)
        lastAttempt = (name.value, type, base64)
        switch (Int32(state), standing) {
        case (SSH_PUBLICKEY_STATE_NONE.rawValue, .registered?):
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        case (SSH_PUBLICKEY_STATE_WRONG.rawValue, .registered?):
            sawBadSignature = true
            logger.notice("auth refused: bad signature", metadata: ["user": .string(name.value)])
            return denied
        case (SSH_PUBLICKEY_STATE_VALID.rawValue, .registered(let registration)?):
            authenticatedUser = name
            login = (type, base64, registration)
            logger[metadataKey: "user"] = .string(name.value)
            logger.info("auth accepted", metadata: ["key": .string(type)])
            if let auditKey = Self.auditKey(type: type, base64: base64) {
                server.audit.record(.authAccepted(auditConnection, user: name.value, key: auditKey))
            }
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        default:
            logger.notice("auth refused", metadata: ["user": .string(name.value)])
            return denied
        }
    }

    /// One failed-login event per connection that never authenticated (probes of unknown
    /// keys are normal client behaviour, so they are not each recorded).
    private func recordAuthFailure() {
        guard let attempt = lastAttempt else { return }
        let (reason, refusal): (String, LoginRefusal) = socket.wasEvicted ? ("pushed out by the pre-auth limit", .evicted)
            : tooManyAttempts ? ("too many attempts", .tooManyAttempts)
            : Date() >= started.addingTimeInterval(server.configuration.authDeadline)
                ? ("authentication deadline passed", .timeout)
            : sawBadSignature ? ("bad signature", .badSignature)
            : ("unknown user or key", .unknownKey)
        countRefusal(refusal, user: attempt.user)
        let key = attempt.type.flatMap { type in attempt.base64.flatMap { Self.auditKey(type: type, base64: $0) } }
        server.audit.record(.authFailed(auditConnection, user: attempt.user, key: key, reason: reason))
    }

    /// Counts a refused login and keeps it for `devenv-gw status`.
    private func countRefusal(_ refusal: LoginRefusal, user: String) {
        GatewayMetric.loginsRefused.counter(refusal.rawValue).increment()
        server.refusedLogins?.note(RefusedLogin(time: Date(), user: user, address: peerHost, reason: refusal.rawValue))
    }

    /// The key as the audit trail names it. Computed only when an event is recorded, not for
    /// every probe a client makes.
    private static func auditKey(type: String, base64: String) -> AuditKey? {
        (try? PublicKey(parsing: "\(type) \(base64)")).map { AuditKey(type: type, fingerprint: $0.fingerprint) }
    }

    var authenticatedUserName: String? { authenticatedUser?.value }

    /// Gives a channel its number and records its start; returns what was recorded.
    func recordChannelStart(_ channel: AuditChannel) -> AuditChannel {
        var channel = channel
        nextChannelID += 1
        channel.id = nextChannelID
        if let user = authenticatedUser {
            server.audit.record(.sessionStart(auditConnection, user: user.value, channel: channel,
                                              container: upstream == nil ? nil : server.workspaces.settings.containerName(for: user)))
        }
        return channel
    }

    /// Records how a channel ended: duration, bytes each way, exit status or signal.
    func recordChannelEnd(_ bridge: ChannelBridge) {
        guard let user = authenticatedUser, let channel = bridge.auditChannel else { return }
        server.audit.record(.sessionEnd(auditConnection, user: user.value, channel: channel,
                                        duration: Date().timeIntervalSince(bridge.opened),
                                        bytesIn: bridge.bytesToWorkspace, bytesOut: bridge.bytesToClient,
                                        exitStatus: bridge.exit?.status.map(Int.init), exitSignal: bridge.exit?.signalName,
                                        container: server.workspaces.settings.containerName(for: user)))
    }

    private static func describe(_ key: ssh_key) -> (type: String, base64: String)? {
        guard let typeName = ssh_key_type_to_char(ssh_key_type(key)) else { return nil }
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        return (String(cString: typeName), String(cString: b64))
    }

    // MARK: - Workspace and upstream

    private func prepareWorkspace() {
        guard let user = authenticatedUser else { return }
        do {
            guard let account = try server.accounts.workspaceAccount(for: user),
                  account.registration.id == login?.registration else {
                throw GatewayError.configuration("the user is no longer registered")
            }
            let identity = WorkspaceIdentity(user: user, uid: account.uid,
                                             gatewayPublicKey: server.upstreamKey.publicKey.line,
                                             hostKeyPEM: account.hostKey.pemText, registration: account.registration)
            let ensureStarted = Date()
            let endpoint = try server.workspaces.ensure(identity)
            let upstreamStarted = Date()
            let workspace = AuditWorkspace(user: user.value, container: endpoint.containerName,
                                           image: server.workspaces.settings.image,
                                           volume: server.workspaces.settings.volumeName(for: user))
            if endpoint.created {
                logger.info("workspace created", metadata: ["container": .string(endpoint.containerName)])
                server.audit.record(.workspaceCreated(workspace, sessionID: auditConnection.sessionID))
            }
            if endpoint.started {
                server.audit.record(.workspaceStarted(workspace, sessionID: auditConnection.sessionID))
            }
            let upstream = try UpstreamConnection(address: endpoint.address, port: endpoint.port, user: user.value,
                                                  clientKey: server.upstreamKey, pinnedHostKey: account.hostKey.publicKey,
                                                  timeout: server.configuration.upstreamTimeout)
            ssh_set_blocking(upstream.session, 0)
            ssh_set_callbacks(upstream.session, upstreamCallbacks)
            installUpstreamMessageHandler(upstream.session)
            ssh_event_add_session(event, upstream.session)
            upstreamBudget = OutboundBudget(session: upstream.session, limit: Self.outboundLimit)
            self.upstream = upstream
            GatewayMetric.loginsAccepted.counter().increment()
            let cold = endpoint.created || endpoint.started
            let now = Date()
            GatewayMetric.loginDuration.timer(cold ? "cold" : "warm")
                .recordNanoseconds(Int64(now.timeIntervalSince(started) * 1_000_000_000))
            // Where this login's time went, from accept: bench/scale.sh sums these up.
            logger.info("workspace ready", metadata: [
                "workspace": .string(endpoint.created ? "created" : endpoint.started ? "started" : "running"),
                "total_s": .string(Self.seconds(now.timeIntervalSince(started))),
                "lock_wait_s": .string(Self.seconds(upstreamStarted.timeIntervalSince(ensureStarted)
                    - endpoint.engineSeconds - endpoint.sshdWaitSeconds)),
                "engine_s": .string(Self.seconds(endpoint.engineSeconds)),
                "sshd_wait_s": .string(Self.seconds(endpoint.sshdWaitSeconds)),
                "upstream_s": .string(Self.seconds(now.timeIntervalSince(upstreamStarted))),
            ])
        } catch {
            countRefusal(.engineError, user: user.value)
            workspaceFailure = "\(error)"
            workspaceFailedAt = Date()
            logger.error("workspace unavailable: \(error)")
        }
    }

    private static func seconds(_ interval: TimeInterval) -> String { String(format: "%.3f", interval) }

    /// Runs a blocking libssh call on the upstream session (requests whose reply the
    /// client is waiting for), restoring non-blocking mode afterwards.
    func withUpstreamBlocking<T>(_ body: () -> T) -> T {
        guard let upstream else { return body() }
        ssh_set_blocking(upstream.session, 1)
        defer { ssh_set_blocking(upstream.session, 0) }
        return body()
    }

    private func openSessionChannel() -> ssh_channel? {
        guard authenticatedUser != nil, admitsChannel(type: "session"), let channel = ssh_channel_new(session) else {
            return nil
        }
        var upChannel: ssh_channel?
        var failure = workspaceFailure
        if let upstream {
            upChannel = withUpstreamBlocking { upstream.openSessionChannel() }
            if upChannel == nil { failure = "the workspace refused a new session" }
        }
        bridges.append(ChannelBridge(connection: self, down: channel, up: upChannel, failureMessage: failure,
                                     agentForwarding: server.configuration.forwarding.contains(.agent)))
        return channel
    }

    /// Whether one more channel of `type` fits under max-channels-per-connection. A refusal
    /// is logged and audited; the caller answers the open with a failure, which OpenSSH
    /// reports as "open failed".
    func admitsChannel(type: String) -> Bool {
        // Looked up on every open, not only when the watch says so: a channel opened in the
        // seconds after a revocation must be refused too.
        if let reason = revokedBecause ?? revocationReason() {
            revokedBecause = reason
            logger.notice("channel refused", metadata: ["type": .string(type), "reason": .string(reason)])
            if let user = authenticatedUser {
                server.audit.record(.channelRefused(auditConnection, user: user.value, channelType: type,
                                                    reason: "access revoked: \(reason)"))
            }
            return false
        }
        let cap = server.configuration.maxChannelsPerConnection
        guard bridges.count + pendingReverseChannels.count >= cap else { return true }
        let reason = "\(cap) channels open on this connection"
        logger.notice("channel refused", metadata: ["type": .string(type), "limit": "max-channels-per-connection",
                                                    "reason": .string(reason)])
        if let user = authenticatedUser {
            server.audit.record(.channelRefused(auditConnection, user: user.value, channelType: type,
                                                limit: "max-channels-per-connection", limitValue: cap, reason: reason))
        }
        return false
    }

    // MARK: - Revocation

    /// Why the login no longer stands, or nil while it does (or cannot be looked up: a
    /// registry that cannot be read ends nobody's connection, and is retried).
    private func revocationReason() -> String? {
        guard let user = authenticatedUser, let login else { return nil }
        let standing: KeyStanding
        do {
            standing = try server.accounts.standing(user: user, type: login.type, base64: login.base64)
        } catch {
            logger.error("cannot check whether the login still stands: \(error)")
            revocationWatch.lookupFailed()
            return nil
        }
        switch standing {
        case .registered(let registration) where registration == login.registration:
            return nil
        case .registered, .userNotRegistered:
            // A new registration of the name is another person, whatever key they use.
            return "user \(user.value) was removed"
        case .keyNotRegistered:
            let fingerprint = Self.auditKey(type: login.type, base64: login.base64)?.fingerprint ?? login.type
            return "key \(fingerprint) was removed from user \(user.value)"
        }
    }

    /// True, once, when the registry says the login was revoked (see `RevocationWatch`;
    /// `lookNow` looks it up whatever the watch says): the client is told why in the
    /// disconnect message, and the revocation is logged and audited. The caller then ends
    /// the connection.
    private func noticeRevocation(lookNow: Bool) -> Bool {
        if revokedBecause == nil {
            guard lookNow || revocationWatch.isDue(count: { try server.revocations.current() }),
                  let reason = revocationReason() else { return false }
            revokedBecause = reason
        }
        guard let reason = revokedBecause, let user = authenticatedUser else { return false }
        logger.notice("access revoked; disconnecting", metadata: ["reason": .string(reason)])
        let key = login.flatMap { Self.auditKey(type: $0.type, base64: $0.base64) }
        server.audit.record(.accessRevoked(auditConnection, user: user.value, key: key, reason: reason))
        ssh_session_set_disconnect_message(session, "devenv-gw: access revoked: \(reason)")
        // Answer nothing more, and keep the socket open until the client has read the message.
        refusing = true
        waitForClientAfterDisconnect = true
        return true
    }

    // MARK: - Bridging

    private func bridgeUntilDone() {
        ssh_set_blocking(session, 0)
        ssh_set_counters(session, nil, received)
        // Silence counts from here: preparing the workspace may have taken a while.
        clientAlive = ClientAliveMonitor(interval: server.configuration.clientAliveInterval,
                                         countMax: server.configuration.clientAliveCountMax)
        while true {
            let rc = ssh_event_dopoll(event, 500)
            let clientConnected = ssh_is_connected(session) != 0
            let upstreamConnected = upstream?.isConnected ?? false
            // A lost workspace may be the revocation's doing (deluser stops it): say so then.
            let workspaceLost = upstream != nil && !upstreamConnected
            if !clientConnected || server.isStopping || clientStoppedAnswering()
                || noticeRevocation(lookNow: workspaceLost) {
                for bridge in bridges { bridge.clientLost() }
                break
            }
            if upstream != nil && !upstreamConnected {
                for bridge in bridges { bridge.upstreamLost() }
            }
            openPendingReverseChannels()
            var progress = true
            var movedAny = false
            while progress {
                progress = false
                for bridge in bridges where bridge.advance() { progress = true }
                movedAny = movedAny || progress
            }
            if rc == SSH_AGAIN && !movedAny {
                // A quiet poll: idle channels give their queue memory back.
                bridges.forEach { $0.trimBuffers() }
            }
            applyBackPressure()
            for bridge in takeBridges(where: \.isFinished) {
                logger.info("channel closed", metadata: [
                    "kind": .string(bridge.kind),
                    "bytes_in": .stringConvertible(bridge.bytesToWorkspace),
                    "bytes_out": .stringConvertible(bridge.bytesToClient),
                ])
                bridge.release()
                if workspaceFailure != nil { workspaceFailureDelivered = true }
            }
            if upstream != nil && !upstreamConnected && bridges.isEmpty {
                logger.info("workspace connection ended")
                break
            }
            // Nothing more can be done for a client whose workspace failed: end the connection
            // once it has been told why, or when it opened no session to be told on.
            if workspaceFailure != nil && bridges.isEmpty
                && (workspaceFailureDelivered
                    || Date().timeIntervalSince(workspaceFailedAt) >= server.configuration.authDeadline) {
                logger.info("ending the connection: the workspace is unavailable")
                break
            }
            if rc == SSH_ERROR && ssh_is_connected(session) == 0 { break }
        }
        // Let libssh flush what is still buffered for the client (closing messages).
        ssh_blocking_flush(session, 2000)
        if revokedBecause != nil {
            // The channels go first (their close messages are written now), then one poll,
            // so the disconnect message saying why is sent (see prepareToSendDisconnect).
            takeBridges { _ in true }.forEach { $0.release() }
            prepareToSendDisconnect()
        }
    }

    /// True when the client has sent nothing through `client-alive-count-max` keep-alives:
    /// it vanished without closing the connection. Sends the keep-alives on the way.
    private func clientStoppedAnswering() -> Bool {
        switch clientAlive.check(packetsReceived: received.pointee.in_packets, listening: !clientPaused) {
        case .none:
            return false
        case .sendKeepAlive:
            // libssh keeps one global request per session in flight and leaves the answer
            // to the last one recorded until the next call, which then only clears it. The
            // first call sends or clears; the second sends if the first only cleared, and
            // merely polls while a request is still unanswered. Neither call blocks here.
            ssh_send_keepalive(session)
            ssh_send_keepalive(session)
            return false
        case .giveUp:
            logger.notice("client stopped answering keep-alives; disconnecting", metadata: [
                "silent_seconds": .stringConvertible(Int(clientAlive.interval * Double(clientAlive.countMax + 1))),
            ])
            return true
        }
    }

    /// Stops reading a session while more than `pauseLimit` bytes received from it wait to be
    /// written, and reads it again below half that. Each channel's window already holds back
    /// its peer, but libssh grants a new window whenever the stream that just received has
    /// little buffered, even while the channel's other stream holds much, so this is the
    /// bound that always holds. Never both sessions at once: each needs the other read
    /// (window adjustments) to drain.
    private func applyBackPressure() {
        guard let event, let upstream else { return }
        let fromWorkspace = bridges.reduce(0) { $0 + $1.pendingCount(fromWorkspace: true) }
        let fromClient = bridges.reduce(0) { $0 + $1.pendingCount(fromWorkspace: false) }
        func pause(_ target: ssh_session, _ held: Int, _ paused: inout Bool, otherPaused: Bool) {
            if !paused && !otherPaused && held > Self.pauseLimit {
                ssh_event_remove_session(event, target)
                paused = true
            } else if paused && held <= Self.pauseLimit / 2 {
                ssh_event_add_session(event, target)
                paused = false
            }
        }
        pause(upstream.session, fromWorkspace, &upstreamPaused, otherPaused: clientPaused)
        pause(session, fromClient, &clientPaused, otherPaused: upstreamPaused)
    }

    /// Ends our side of `fd`, reads and drops what the peer still sends until it closes or
    /// `seconds` pass, then closes `fd`.
    private static func closeWhenPeerCloses(_ fd: Int32, within seconds: TimeInterval) {
        shutdown(fd, Int32(SHUT_WR))
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) >= 0 || errno == EINTR else { break }
            guard entry.revents != 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { break }
        }
        close(fd)
    }

    /// Removes the bridges that match from the list and returns them. Callers free them only
    /// afterwards: freeing a channel may flush and handle packets, whose callbacks may change
    /// `bridges`.
    private func takeBridges(where matches: (ChannelBridge) -> Bool) -> [ChannelBridge] {
        let taken = bridges.filter(matches)
        bridges.removeAll(where: matches)
        return taken
    }

    private func teardown() {
        takeBridges { _ in true }.forEach { $0.release() }
        for pending in pendingReverseChannels { ssh_channel_free(pending.upstreamChannel) }
        pendingReverseChannels.removeAll()
        if let event {
            if let upstream { ssh_event_remove_session(event, upstream.session) }
            ssh_event_remove_session(event, session)
            ssh_event_free(event)
        }
        upstream = nil
        // From here on the limiter can no longer reach the descriptor, which libssh closes.
        socket.release()
        // A second descriptor keeps the socket open while libssh sends the disconnect and closes its own.
        let kept = waitForClientAfterDisconnect ? fcntl(ssh_get_fd(session), F_DUPFD_CLOEXEC, 0) : -1
        ssh_disconnect(session)
        if kept >= 0 { Self.closeWhenPeerCloses(kept, within: 2) }
        ssh_free(session)
        if let user = authenticatedUser {
            logger.info("disconnected", metadata: ["user": .string(user.value)])
        }
    }
}

extension SessionKind {
    /// The metrics' kind of what an audited channel runs.
    init(_ channel: AuditChannel) {
        switch channel.kind {
        case .shell: self = .shell
        case .exec: self = .exec
        case .subsystem: self = channel.subsystem == "sftp" ? .sftp : .subsystem
        case .forwarding:
            switch channel.forwarding?.kind {
            case .agent?: self = .agent
            case .remoteConnection?: self = .forwardedTCPIP
            default: self = .directTCPIP
            }
        }
    }
}
