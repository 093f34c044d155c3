import Audit
import CLibSSH
import Foundation
import GatewayMetrics
import Logging
import SSHKeys
import Workspaces

/// The SSH front door: accepts connections, authenticates users against the registry and
/// bridges each session to the user's own workspace.
///
/// One thread accepts on every listening socket; each connection then runs on a thread of
/// its own, so blocking libssh and libcurl calls never touch Swift's cooperative pool and a
/// slow client or workspace holds up nobody else.
public final class GatewayServer: @unchecked Sendable {
    public let configuration: GatewayConfiguration
    let accounts: GatewayAccounts
    /// The registry's revocation count, shared by every connection's watch.
    let revocations: SharedRevocationCount
    let workspaces: any WorkspaceBackend
    let logger: Logger
    let upstreamKey: PrivateKey
    let preAuth: PreAuthLimiter
    /// Drops and evictions under a flood, logged at most once a second with a count.
    private let preAuthLog: ThrottledLog
    let activity: WorkspaceActivityLog
    let audit: AuditLog
    private let reaper: IdleWorkspaceReaper?
    private let bind: ssh_bind
    private var listeners: [Int32] = []
    private let stateLock = NSLock()
    private var stopping = false
    private var acceptThread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    /// Open connections, in total and per user (max-connections, max-connections-per-user).
    let connections: ConnectionCounter
    /// Connections refused at accept, until the client has read why.
    private let refused = RefusedSockets()
    /// The last refused logins, for `devenv-gw status`.
    let refusedLogins: RefusedLoginLog?

    /// Loads (or on first start creates) the host keys and upstream key, and opens the listeners.
    public init(configuration: GatewayConfiguration, accounts: GatewayAccounts, workspaces: any WorkspaceBackend,
                activity: WorkspaceActivityLog, audit: AuditLog = .discarding(), logger: Logger) throws {
        ssh_init()
        self.configuration = configuration
        self.accounts = accounts
        revocations = SharedRevocationCount(maxAge: 1) { try accounts.revocationCount() }
        self.workspaces = workspaces
        self.activity = activity
        self.audit = audit
        self.logger = logger
        reaper = configuration.idleLimit.map {
            IdleWorkspaceReaper(limit: $0, activity: activity, workspaces: workspaces, audit: audit, logger: logger)
        }
        connections = ConnectionCounter(maxTotal: configuration.maxConnections,
                                        maxPerUser: configuration.maxConnectionsPerUser)
        refusedLogins = configuration.refusedLoginsPath.map(RefusedLoginLog.init)
        preAuthLog = ThrottledLog(logger: logger)
        preAuth = PreAuthLimiter(limits: configuration.maxStartups,
                                 maxPerNetwork: configuration.maxUnauthenticatedPerSource)
        let hostKeyPaths = try Self.prepareHostKeys(in: configuration.hostKeyDirectory, logger: logger)
        do {
            upstreamKey = try PrivateKey.loadOrCreate(path: configuration.upstreamKeyPath, kind: .ed25519).key
        } catch {
            throw GatewayError.hostKey("\(error)")
        }
        guard let bind = ssh_bind_new() else { throw GatewayError.listen("ssh_bind_new failed") }
        self.bind = bind
        var noConfig = false
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &noConfig)
        // Without this list libssh accepts a user's SHA-1 `ssh-rsa` signature from any client
        // that sends one, although server-sig-algs does not offer it.
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES,
                                   Self.acceptedSignatureAlgorithms.joined(separator: ",")) == SSH_OK else {
            ssh_bind_free(bind)
            throw GatewayError.listen("libssh refuses the list of accepted signature algorithms")
        }
        for path in hostKeyPaths {
            guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, path) == SSH_OK else {
                ssh_bind_free(bind)
                throw GatewayError.hostKey("libssh cannot use host key \(path)")
            }
        }
        do {
            for text in configuration.listenAddresses {
                listeners.append(try Self.listen(on: ListenAddress(text)))
            }
        } catch {
            listeners.forEach { close($0) }
            ssh_bind_free(bind)
            throw error
        }
    }

    deinit {
        listeners.forEach { close($0) }
        ssh_bind_free(bind)
    }

    /// The signature algorithms a user may log in with: RSA only with SHA-2 (never SHA-1
    /// `ssh-rsa`), Ed25519, ECDSA and their security-key (`sk-`) forms. Certificates are not
    /// registered (`SSHKeys` refuses them), so none are listed.
    static let acceptedSignatureAlgorithms = [
        "ssh-ed25519", "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp256",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512", "rsa-sha2-256",
    ]

    /// The ports actually bound (useful when listening on port 0).
    public var boundPorts: [Int] {
        listeners.map { fd in
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }

    var isStopping: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return stopping
    }

    /// Starts accepting in the background.
    public func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "devenv-gw accept"
        acceptThread = thread
        thread.start()
        reaper?.start()
        ScrapeHooks.add { [connections] in
            let counts = connections.counts
            GatewayMetric.connectionsOpen.gauge("pre_auth").record(counts.total - counts.authenticated)
            GatewayMetric.connectionsOpen.gauge("authenticated").record(counts.authenticated)
        }
        logger.info("listening", metadata: ["addresses": .string(configuration.listenAddresses.joined(separator: ","))])
    }

    /// Stops accepting, ends every connection and returns once they are gone (or after `timeout`).
    public func stop(timeout: TimeInterval = 10) {
        stateLock.lock()
        stopping = true
        stateLock.unlock()
        reaper?.stop()
        _ = finished.wait(timeout: .now() + 2)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if connections.count == 0 { break }
            usleep(50_000)
        }
        refusedLogins?.flush()
        logger.info("stopped")
    }

    // MARK: - Accepting

    private func acceptLoop() {
        defer {
            refused.closeAll()
            finished.signal()
        }
        var backoff = AcceptBackoff()
        while !isStopping {
            var pollSet = (listeners + refused.descriptors).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pollSet, nfds_t(pollSet.count), 250)
            refused.closeExpired()
            guard ready > 0 else { continue }
            for entry in pollSet.dropFirst(listeners.count) where entry.revents != 0 {
                refused.serviceReadable(entry.fd)
            }
            for entry in pollSet.prefix(listeners.count) where entry.revents & Int16(POLLIN) != 0 {
                if let error = acceptOne(from: entry.fd) {
                    // Out of descriptors (or kernel memory): the connection stays queued and
                    // the listener stays readable, so retrying at once would spin.
                    let delay = backoff.next()
                    logger.error("accept failed, retrying in \(Int(delay * 1000)) ms: \(String(cString: strerror(error)))")
                    usleep(UInt32(delay * 1_000_000))
                    break
                }
                backoff.reset()
            }
        }
    }

    /// Accepts one connection from `listener` and starts it, or refuses it at a cap.
    /// Returns errno when accept failed for lack of resources.
    private func acceptOne(from listener: Int32) -> Int32? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) }
        }
        guard fd >= 0 else {
            let error = errno
            return [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error) ? error : nil
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let peer = Self.describe(address)
        if let fds = FileDescriptorLimit.exhaustion() {
            // Kept sockets would eat the reserve itself, so only a few are kept.
            refuse(fd, peer: peer, limit: "file-descriptors", value: fds.limit,
                   reason: "\(fds.open) of \(fds.limit) file descriptors in use",
                   lingerLimit: FileDescriptorLimit.reserve(for: fds.limit) / 4)
            return nil
        }
        guard connections.admit() else {
            refuse(fd, peer: peer, limit: "max-connections", value: connections.maxTotal,
                   reason: "\(connections.maxTotal) connections open")
            return nil
        }
        // Decided before any thread or libssh work, so a dropped connection costs next to nothing.
        let socket = ConnectionSocket(fd: fd)
        let admission = preAuth.admit(from: PreAuthSource(address: peer.host), connection: socket)
        if let evicted = admission.evicted {
            GatewayMetric.preAuthEvicted.counter().increment()
            preAuthLog.note("pushed out a pending connection from \(evicted)")
        }
        guard let token = admission.token else {
            GatewayMetric.preAuthDropped.counter().increment()
            connections.release()
            preAuthLog.note("dropped a new connection from \(peer.host) (max-startups)")
            close(fd)
            return nil
        }
        guard let thread = ConnectionThread.spawn(name: "devenv-gw conn") else {
            preAuth.remove(token)
            connections.release()
            refuse(fd, peer: peer, limit: "threads", value: connections.count, reason: "cannot start a thread")
            return nil
        }
        // Undoes what was taken for this connection, when libssh fails it before it runs.
        func abandon(_ session: ssh_session?, ownsSocket: Bool) -> Int32? {
            thread.cancel()
            preAuth.remove(token)
            connections.release()
            if let session { ssh_free(session) }
            if !ownsSocket { close(fd) }
            return nil
        }
        guard let session = ssh_new() else { return abandon(nil, ownsSocket: false) }
        guard ssh_bind_accept_fd(bind, session, fd) == SSH_OK else {
            logger.error("cannot accept: \(String(cString: ssh_get_error(UnsafeMutableRawPointer(bind))))")
            // libssh may have taken the socket before it failed; then freeing the session closes it.
            return abandon(session, ownsSocket: ssh_get_fd(session) == fd)
        }
        var timeout = Int(configuration.authDeadline.rounded(.up))
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        // Read when the key exchange starts (server_set_kex). "none", not "no": libssh takes
        // "no" for "none,zlib@openssh.com", which still lets the client choose zlib.
        if !configuration.allowsCompression && ssh_options_set(session, SSH_OPTIONS_COMPRESSION, "none") != SSH_OK {
            logger.error("cannot turn compression off: \(String(cString: ssh_get_error(UnsafeMutableRawPointer(session))))")
            return abandon(session, ownsSocket: true)
        }
        // An evicted pre-auth connection is shut down through its own socket object; its
        // thread sees the error and ends.
        let connection = ClientConnection(server: self, session: session, socket: socket,
                                          peerHost: peer.host, peerPort: peer.port)
        thread.run { [self] in
            connection.run(preAuthToken: token)
            connections.release()
            // The connection's libssh sessions and buffers are freed by now; without this
            // glibc keeps most of those pages (measured with bench/scale.sh).
            GlibcAllocator.releaseFreeMemory()
        }
        return nil
    }

    /// Refuses a connection at a cap before any key exchange: the client is told, and the
    /// refusal is logged and audited.
    private func refuse(_ fd: Int32, peer: (host: String, port: Int), limit: String, value: Int, reason: String,
                        lingerLimit: Int = RefusedSockets.maxLingering) {
        refused.refuse(fd, text: Self.busyText, lingerLimit: lingerLimit)
        GatewayMetric.connectionsRefused.counter(limit.replacingOccurrences(of: "-", with: "_")).increment()
        logger.notice("connection refused", metadata: [
            "peer": .string("\(peer.host):\(peer.port)"), "limit": .string(limit), "reason": .string(reason),
        ])
        audit.record(.connectionRefused(AuditConnection(sourceAddress: peer.host, sourcePort: peer.port),
                                        limit: limit, limitValue: value, reason: reason))
    }

    /// What a client refused at the gateway's own caps is told.
    static let busyText = "devenv-gw: the gateway is at its connection limit; try again later"

    private static func describe(_ storage: sockaddr_storage) -> (host: String, port: Int) {
        var storage = storage
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if storage.ss_family == sa_family_t(AF_INET) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &host, socklen_t(host.count))
                    return (String(cString: host), Int(UInt16(bigEndian: sin.pointee.sin_port)))
                }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                var addr = sin6.pointee.sin6_addr
                inet_ntop(AF_INET6, &addr, &host, socklen_t(host.count))
                return (String(cString: host), Int(UInt16(bigEndian: sin6.pointee.sin6_port)))
            }
        }
    }

    private static func listen(on address: ListenAddress) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &result) == 0, let info = result else {
            throw GatewayError.listen("cannot listen on \(address.host):\(address.port): not a numeric address")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw GatewayError.listen("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, Glibc.listen(fd, 1024) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw GatewayError.listen("cannot listen on \(address.host):\(address.port): \(reason)")
        }
        return fd
    }

    // MARK: - Host keys

    /// Ensures the Ed25519 and RSA host keys exist (mode 0600); never replaces a present one.
    static func prepareHostKeys(in directory: String, logger: Logger) throws -> [String] {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw GatewayError.hostKey("cannot create host key directory \(directory): \(error.localizedDescription)")
        }
        var paths: [String] = []
        for (file, kind) in [("ssh_host_ed25519_key", PrivateKey.Kind.ed25519), ("ssh_host_rsa_key", .rsa3072)] {
            let path = (directory as NSString).appendingPathComponent(file)
            do {
                let (key, created) = try PrivateKey.loadOrCreate(path: path, kind: kind)
                if created { logger.notice("generated host key \(path) \(key.publicKey.fingerprint)") }
            } catch {
                throw GatewayError.hostKey("host key \(path) is unusable (\(error)); fix or remove it by hand")
            }
            paths.append(path)
        }
        return paths
    }
}
