import ArgumentParser
import Audit
import DockerEngine
import Egress
import Foundation
import Gateway
import Logging
import MetricsEndpoint
import Registry
import SSHKeys
import UserNames
import Workspaces

/// `devenv-gw serve`: runs the SSH front door until SIGTERM or SIGINT.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the SSH gateway: authenticate users and proxy them into their workspaces."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var workspace: WorkspaceOptions

    @Option(name: .customLong("listen"),
            help: "Address to listen on, HOST:PORT (repeatable; config listen; default 0.0.0.0:22).")
    var listen: [String] = []

    @Option(help: "Directory of the gateway's host keys (config hostkeys; default STATE_DIR/hostkeys).")
    var hostkeys: String?

    @Option(help: "Seconds a connection has to authenticate (config auth-timeout; default 30).")
    var authTimeout: Double?

    @Option(help: "Authentication attempts allowed per connection (config max-auth-tries; default 10).")
    var maxAuthTries: Int?

    @Option(help: ArgumentHelp("Unauthenticated connections: START:RATE:FULL as OpenSSH's MaxStartups, or FULL "
                + "(config max-startups; default 128:30:256).", valueName: "start:rate:full"))
    var maxStartups: String?

    @Option(help: ArgumentHelp("Unauthenticated connections allowed per source network, /24 or /64; beyond, the "
                + "busiest source's are pushed out (config max-startups-per-source; default 64)."))
    var maxStartupsPerSource: Int?

    @Option(help: ArgumentHelp("Connections allowed at once, authenticated and not; beyond it new ones are told "
                + "to retry (config max-connections; default 1000)."))
    var maxConnections: Int?

    @Option(help: "Connections one user may hold at once (config max-connections-per-user; default 10).")
    var maxConnectionsPerUser: Int?

    @Option(help: ArgumentHelp("Channels (sessions, forwarded connections) open at once on one connection "
                + "(config max-channels-per-connection; default 64)."))
    var maxChannelsPerConnection: Int?

    @Option(help: ArgumentHelp("Seconds of client silence before a keep-alive is sent; 0 never sends "
                + "(config client-alive-interval; default 15)."))
    var clientAliveInterval: Double?

    @Option(help: ArgumentHelp("Unanswered keep-alives before the client is disconnected "
                + "(config client-alive-count-max; default 3)."))
    var clientAliveCountMax: Int?

    @Option(help: ArgumentHelp("Whether clients may use zlib compression: yes or no. Each compressing "
                + "connection costs about 110 KiB more memory and a pass over every byte (config compression; default no).",
                valueName: "yes|no"))
    var compression: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9122 "
                + "(config metrics-listen; default off).", valueName: "host:port"))
    var metricsListen: String?

    @Flag(help: "Print the settings serve would run with, as a config file, and exit.")
    var printConfig = false

    @Option(help: ArgumentHelp("Seconds without any session after which a workspace is stopped; 0 never stops "
                + "(config idle-timeout; default 3600)."))
    var idleTimeout: Double?

    @Option(help: ArgumentHelp("Forwarding users may use: a list of local, remote, agent; or all, none "
                + "(config forwarding; default all)."))
    var forwarding: String?

    @Option(help: ArgumentHelp("Destinations workspaces may not connect to: a list of IPv4 networks and 'host' "
                + "(every address of this host), or none (config egress-deny; default host,169.254.0.0/16).",
                valueName: "list"))
    var egressDeny: String?

    func run() throws {
        // Client-chosen text reaches this log: escaped, it cannot forge a line.
        var logger = Logger(label: "devenv-gw", factory: { EscapingLogHandler(label: $0) })
        logger.logLevel = .info
        let settings = try ServeSettings(self)
        if printConfig { return print(settings.configText, terminator: "") }
        // First, before anything counts (the metrics system is bootstrapped once, by the
        // endpoint) and so that an address in use fails the start before any other work.
        let started = Date()
        let metrics = try settings.metricsListen.map {
            try MetricsServer(address: $0, version: GatewayVersion.current, startTime: started)
        }
        let audit = try global.openAuditLog()
        let registry = try global.openRegistry()
        if let tls = try global.dockerTLS() {
            logger.info("tcp:// Docker engines are reached over TLS with the certificates in \(tls.directory)")
        }
        for endpoint in try global.plainTCPEngines() {
            logger.warning("""
                the Docker engine at \(endpoint) is reached over plain HTTP, unauthenticated and unencrypted: \
                whoever reaches that port controls the engine; start it with --tlsverify and set docker-tls-dir \
                (README, docs/scale-out.md)
                """)
        }
        let manager = try global.workspaceBackend(workspace.flags)
        if let swarm = manager as? SwarmWorkspaces {
            _ = try manager.prepareNetwork()
            try guardSwarmNodes(swarm, policy: settings.egress,
                                image: SwarmConfig(file: CurrentConfig.file).nodeGuardImage, logger: logger)
        } else {
            try guardEgress(settings.egress, manager: manager, logger: logger)
        }
        let configuration = settings.gateway
        logger.info("audit events go to \(audit.destinationDescription)")
        if let path = settings.configPath { logger.info("settings from \(path)") }
        // Each connection holds two or three descriptors; the usual soft limit of 1024 is
        // too few for 500 users.
        // One thread per connection would otherwise spread memory over up to 8 arenas per core.
        if let arenas = GlibcAllocator.limitArenas(to: max(2, ProcessInfo.processInfo.activeProcessorCount)) {
            logger.info("malloc arenas limited to \(arenas)")
        }
        if let files = FileDescriptorLimit.raiseSoftLimitToHard() {
            let raised = files.limit != files.previous ? " (raised from \(files.previous))" : ""
            logger.info("file descriptor limit \(files.limit)\(raised)")
        }

        let censusLogger = logger
        let census = metrics.map { _ in
            WorkspaceCensus(manager: manager) { censusLogger.warning("cannot count workspaces for the metrics: \($0)") }
        }
        if let metrics { logger.info("metrics at \(metrics.address.url)") }

        let server = try GatewayServer(configuration: configuration, accounts: RegistryAccounts(registry: registry),
                                       workspaces: manager, activity: global.activityLog(), audit: audit, logger: logger)
        let statusFile = GatewayStatusFile(stateDirectory: settings.stateDir)
        statusFile.write(GatewayStatusFile.Contents(
            pid: getpid(), version: GatewayVersion.current, started: started,
            listen: configuration.listenAddresses, metrics: metrics?.address.description))
        signal(SIGPIPE, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        server.start()
        census?.start()
        stop.wait()
        logger.info("shutting down")
        census?.stop()
        server.stop()
        metrics?.shutdown()
        statusFile.remove()
        sources.forEach { $0.cancel() }
    }
}

extension ServeCommand {
    /// Installs the rules that keep workspaces from the denied destinations before the
    /// first login, and keeps them while serving. Without iptables or the right to change
    /// the firewall the start fails (unless nothing is denied): workspaces would otherwise
    /// reach the host silently. An engine that does not answer yet only delays the rules:
    /// they are installed at the guard's next check once it answers.
    func guardEgress(_ policy: EgressPolicy, manager: any WorkspaceBackend, logger: Logger) throws {
        let firewall: EgressFirewall
        do {
            firewall = EgressFirewall(iptables: try IPTables.forDocker(), prefix: manager.settings.prefix)
        } catch {
            if policy.isOff {
                logger.info("egress-deny is none; no egress rules (\(error))")
                return
            }
            throw CLIError("cannot install the egress rules: \(error); run the gateway with CAP_NET_ADMIN and "
                           + "iptables, or set egress-deny = [] to let workspaces reach every address")
        }
        let rules = EgressRules(firewall: firewall, policy: policy, bridge: {
            guard let bridge = try manager.prepareNetwork() else {
                throw CLIError("the workspaces' network is not on this host")
            }
            return bridge
        })
        let egress = FirewallGuard(rules: [rules], log: { logger.notice("\($0)") })
        do {
            for applied in try egress.apply() { logger.info("egress rules: \(applied.summary)") }
        } catch let error as EgressFirewallError {
            throw CLIError("cannot install the egress rules: \(error); run the gateway with CAP_NET_ADMIN, "
                           + "or set egress-deny = [] to let workspaces reach every address")
        } catch {
            logger.warning("the egress rules wait for the Docker engine: \(error)")
        }
        egress.keep(every: 10)
    }
}

/// The workspace flags of `serve`: each the flag, else (for the image) DEVENV_GW_IMAGE,
/// else the config file, else the default, resolved by `GlobalOptions.workspaceSettings`.
struct WorkspaceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Workspace image for new containers (env DEVENV_GW_IMAGE, config image; "
                + "default devenv-workspace:latest)."))
    var image: String?

    @Option(help: "Memory limit of each workspace in MiB, no swap on top (config memory-mib; default 512).")
    var memoryMib: Int?

    @Option(help: "Maximum number of processes in each workspace (config pids-limit; default 1024).")
    var pidsLimit: Int?

    @Option(help: "Relative CPU weight of each workspace (config cpu-shares; default 1024).")
    var cpuShares: Int?

    var flags: WorkspaceFlags {
        WorkspaceFlags(image: image, memoryMib: memoryMib, pidsLimit: pidsLimit, cpuShares: cpuShares)
    }
}

/// The registry seen through what the gateway needs.
struct RegistryAccounts: GatewayAccounts {
    let registry: Registry

    func standing(user: UserName, type: String, base64: String) throws -> KeyStanding {
        guard let registration = try registry.registration(of: user) else { return .userNotRegistered }
        guard try registry.isKeyRegistered(base64: base64, type: type, for: user) else { return .keyNotRegistered }
        return .registered(registration: registration)
    }

    func workspaceAccount(for user: UserName) throws -> WorkspaceAccount? {
        guard let record = try registry.user(named: user), let registration = try registry.registration(of: user) else {
            return nil
        }
        return WorkspaceAccount(uid: record.uid, hostKey: try registry.workspaceHostKey(for: user),
                                registration: WorkspaceRegistration(id: registration, since: record.created))
    }

    func revocationCount() throws -> Int { try registry.revocationCount() }
}
