import Audit
import CLibSSH
import Foundation
import Logging

/// A channel the workspace opened towards the gateway, waiting for its twin to the client.
struct PendingReverseChannel {
    enum Kind {
        /// `auth-agent@openssh.com`: a process in the workspace talks to the client's agent.
        case agent
        /// `forwarded-tcpip`: a connection to a port the client asked to forward with `-R`.
        case forwardedTCPIP(address: String, port: Int32, originator: String, originatorPort: Int32)
    }

    let upstreamChannel: ssh_channel
    let kind: Kind
}

/// Port and agent forwarding. Every forwarded connection starts or ends inside the user's
/// own workspace: `-L`/`-D` connect from its sshd, `-R` listens in it, the agent is
/// offered to its sessions. The gateway itself never connects anywhere on a user's behalf.
extension ClientConnection {
    // MARK: - Message handlers

    func installDownstreamMessageHandler() {
        ssh_set_message_callback(session, { _, message, userdata in
            guard let message, let userdata else { return 1 }
            return Unmanaged<ClientConnection>.fromOpaque(userdata).takeUnretainedValue().handleClientMessage(message)
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    func installUpstreamMessageHandler(_ upstreamSession: ssh_session) {
        ssh_set_message_callback(upstreamSession, { _, message, userdata in
            guard let message, let userdata else { return 1 }
            return Unmanaged<ClientConnection>.fromOpaque(userdata).takeUnretainedValue().handleWorkspaceMessage(message)
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Client requests libssh does not handle itself. Returns 0 when answered here,
    /// 1 for libssh's default answer (a refusal).
    private func handleClientMessage(_ message: ssh_message) -> Int32 {
        if refusing { return 0 }  // no answer: see prepareToSendDisconnect
        let type = ssh_message_type(message), subtype = ssh_message_subtype(message)
        switch (type, subtype) {
        case (Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue), Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue)):
            return openDirectTCPIP(message)
        case (Int32(SSH_REQUEST_GLOBAL.rawValue), Int32(SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue)):
            return listenForward(message)
        case (Int32(SSH_REQUEST_GLOBAL.rawValue), Int32(SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue)):
            return cancelForward(message)
        case (Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue), _):
            logger.notice("channel refused", metadata: ["type": .stringConvertible(subtype)])
            return 1
        default:
            // Keep-alives and unknown requests get libssh's failure reply, which clients
            // take as "alive"; nothing here waits for them.
            return 1
        }
    }

    /// Requests from the workspace's sshd towards the gateway as its client.
    private func handleWorkspaceMessage(_ message: ssh_message) -> Int32 {
        guard ssh_message_type(message) == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue),
              ssh_message_subtype(message) == Int32(SSH_CHANNEL_FORWARDED_TCPIP.rawValue),
              server.configuration.forwarding.contains(.remote) else {
            return 1  // e.g. sshd's keep-alive: a failure reply proves we are alive
        }
        guard admitsChannel(type: "forwarded-tcpip") else { return 1 }
        let kind = PendingReverseChannel.Kind.forwardedTCPIP(
            address: text(ssh_message_channel_request_open_destination(message)),
            port: ssh_message_channel_request_open_destination_port(message),
            originator: text(ssh_message_channel_request_open_originator(message)),
            originatorPort: ssh_message_channel_request_open_originator_port(message))
        // Accept now (the message is gone after this callback); the client side is opened
        // from the bridge loop, and the workspace's connection is closed if that fails.
        guard let channel = ssh_message_channel_request_open_reply_accept(message) else { return 0 }
        pendingReverseChannels.append(PendingReverseChannel(upstreamChannel: channel, kind: kind))
        return 0
    }

    /// The workspace's sshd opens an agent channel for a process that uses SSH_AUTH_SOCK.
    func acceptAgentChannelFromWorkspace() -> ssh_channel? {
        guard server.configuration.forwarding.contains(.agent), let upstream,
              admitsChannel(type: "auth-agent@openssh.com"),
              let channel = ssh_channel_new(upstream.session) else { return nil }
        pendingReverseChannels.append(PendingReverseChannel(upstreamChannel: channel, kind: .agent))
        return channel
    }

    // MARK: - Local forwarding (-L, -D)

    private func openDirectTCPIP(_ message: ssh_message) -> Int32 {
        let host = text(ssh_message_channel_request_open_destination(message))
        let port = ssh_message_channel_request_open_destination_port(message)
        let kind = "direct-tcpip \(host):\(port)"
        let originator = text(ssh_message_channel_request_open_originator(message))
        let originatorPort = ssh_message_channel_request_open_originator_port(message)
        let forwarding = AuditForwarding(kind: .local, host: host, port: Int(port), originHost: originator,
                                         originPort: Int(originatorPort))
        guard server.configuration.forwarding.contains(.local) else {
            logger.notice("forwarding refused by policy", metadata: ["kind": .string(kind)])
            recordForwarding(forwarding, refusedBecause: "refused by policy")
            return 1
        }
        guard admitsChannel(type: "direct-tcpip"), let upstream, let upChannel = ssh_channel_new(upstream.session) else {
            return 1
        }
        // The connection is made by the workspace's sshd, from inside the workspace. Its
        // answer may take long (a filtered address), so the open completes without blocking
        // and the client's channel is closed if it fails.
        let open = { ssh_channel_open_forward(upChannel, host, port, originator.isEmpty ? "127.0.0.1" : originator,
                                              originatorPort) }
        guard open() != SSH_ERROR, let downChannel = ssh_message_channel_request_open_reply_accept(message) else {
            closeAndFree(upChannel)
            logger.info("forwarding failed in the workspace", metadata: ["kind": .string(kind)])
            recordForwarding(forwarding, refusedBecause: "the workspace could not open it")
            return 1
        }
        let bridge = ChannelBridge(connection: self, down: downChannel, up: upChannel, failureMessage: nil, kind: kind,
                                   auditChannel: recordChannelStart(AuditChannel(id: 0, kind: .forwarding,
                                                                                 forwarding: forwarding)))
        bridge.awaitUpstreamOpen(open)
        bridges.append(bridge)
        return 0
    }

    // MARK: - Remote forwarding (-R)

    private func listenForward(_ message: ssh_message) -> Int32 {
        let address = text(ssh_message_global_request_address(message))
        let port = ssh_message_global_request_port(message)
        let forwarding = AuditForwarding(kind: .remote, host: address, port: Int(port))
        guard server.configuration.forwarding.contains(.remote), let upstream else {
            logger.notice("forwarding refused by policy", metadata: ["kind": .string("tcpip-forward \(address):\(port)")])
            recordForwarding(forwarding, refusedBecause: "refused by policy")
            return 1
        }
        var bound: Int32 = 0
        // The workspace's sshd listens, inside the workspace (its GatewayPorts is off).
        let rc = withUpstreamBlocking { ssh_channel_listen_forward(upstream.session, address, port, &bound) }
        guard rc == SSH_OK else {
            logger.info("remote forwarding refused by the workspace", metadata: ["port": .stringConvertible(port)])
            recordForwarding(forwarding, refusedBecause: "the workspace could not listen")
            return 1
        }
        recordForwarding(AuditForwarding(kind: .remote, host: address, port: Int(port == 0 ? bound : port)))
        ssh_message_global_request_reply_success(message, UInt16(truncatingIfNeeded: port == 0 ? bound : port))
        logger.info("forwarding opened", metadata: ["kind": .string("tcpip-forward \(address):\(port == 0 ? bound : port)")])
        return 0
    }

    private func cancelForward(_ message: ssh_message) -> Int32 {
        guard let upstream else { return 1 }
        let address = text(ssh_message_global_request_address(message))
        let port = ssh_message_global_request_port(message)
        let rc = withUpstreamBlocking { ssh_channel_cancel_forward(upstream.session, address, port) }
        guard rc == SSH_OK else { return 1 }
        ssh_message_global_request_reply_success(message, 0)
        logger.info("forwarding cancelled", metadata: ["kind": .string("tcpip-forward \(address):\(port)")])
        return 0
    }

    // MARK: - Reverse channels

    /// Opens the client side of channels the workspace opened. Runs in the bridge loop,
    /// never inside a libssh callback, because it blocks on the client session.
    func openPendingReverseChannels() {
        while !pendingReverseChannels.isEmpty {
            let pending = pendingReverseChannels.removeFirst()
            guard let downChannel = ssh_channel_new(session) else {
                closeAndFree(pending.upstreamChannel)
                continue
            }
            ssh_set_blocking(session, 1)
            let rc: Int32
            let kind: String
            let forwarding: AuditForwarding
            switch pending.kind {
            case .agent:
                kind = "auth-agent"
                forwarding = AuditForwarding(kind: .agent)
                rc = ssh_channel_open_auth_agent(downChannel)
            case .forwardedTCPIP(let address, let port, let originator, let originatorPort):
                kind = "forwarded-tcpip \(address):\(port)"
                forwarding = AuditForwarding(kind: .remoteConnection, host: address, port: Int(port),
                                             originHost: originator, originPort: Int(originatorPort))
                rc = ssh_channel_open_reverse_forward(downChannel, address, port, originator, originatorPort)
            }
            ssh_set_blocking(session, 0)
            guard rc == SSH_OK else {
                logger.info("client refused a forwarded channel", metadata: ["kind": .string(kind)])
                ssh_channel_free(downChannel)
                closeAndFree(pending.upstreamChannel)
                continue
            }
            let bridge = ChannelBridge(connection: self, down: downChannel, up: pending.upstreamChannel,
                                       failureMessage: nil, kind: kind,
                                       auditChannel: recordChannelStart(AuditChannel(id: 0, kind: .forwarding,
                                                                                     forwarding: forwarding)))
            bridge.adoptEarlierUpstreamState()
            bridges.append(bridge)
        }
    }

    /// Records a forwarding that was opened, or refused with `reason`.
    func recordForwarding(_ forwarding: AuditForwarding, refusedBecause reason: String? = nil) {
        guard let user = authenticatedUserName else { return }
        if let reason {
            server.audit.record(.forwardingRefused(auditConnection, user: user, forwarding: forwarding, reason: reason))
        } else {
            server.audit.record(.forwardingOpened(auditConnection, user: user, forwarding: forwarding))
        }
    }

    private func closeAndFree(_ channel: ssh_channel) {
        ssh_channel_close(channel)
        ssh_channel_free(channel)
    }

    private func text(_ pointer: UnsafePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }
}
