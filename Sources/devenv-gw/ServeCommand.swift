import ArgumentParser
import Audit
import DockerEngine
import Foundation
import Gateway
import Logging
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

    @Flag(help: "Print the settings serve would run with, as a config file, and exit.")
    var printConfig = false

    @Option(help: ArgumentHelp("Seconds without any session after which a workspace is stopped; 0 never stops "
                + "(config idle-timeout; default 3600)."))
    var idleTimeout: Double?

    @Option(help: ArgumentHelp("Forwarding users may use: a list of local, remote, agent; or all, none "
                + "(config forwarding; default all)."))
    var forwarding: String?

    func run() throws {
        var logger = Logger(label: "devenv-gw")
        logger.logLevel = .info
        let settings = try ServeSettings(self)
        if printConfig { return print(settings.configText, terminator: "") }
        let audit = try global.openAuditLog()
        let registry = try global.openRegistry()
        let docker = DockerClient()
        let manager = WorkspaceManager(docker: docker, settings: settings.workspace)
        let configuration = settings.gateway
        logger.info("audit events go to \(audit.destinationDescription)")
        if let path = settings.configPath { logger.info("settings from \(path)") }
        // Each connection holds two or three descriptors; the usual soft limit of 1024 is
        // too few for 500 users.
        if let files = FileDescriptorLimit.raiseSoftLimitToHard() {
            let raised = files.limit != files.previous ? " (raised from \(files.previous))" : ""
            logger.info("file descriptor limit \(files.limit)\(raised)")
        }

        let server = try GatewayServer(configuration: configuration, accounts: RegistryAccounts(registry: registry),
                                       workspaces: manager, activity: global.activityLog(), audit: audit, logger: logger)
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
        stop.wait()
        logger.info("shutting down")
        server.stop()
        sources.forEach { $0.cancel() }
    }
}

/// Workspace settings shared by `serve` and the commands that create containers: each the
/// flag, else (for the image) DEVENV_GW_IMAGE, else the config file, else the default.
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

    func settings(prefix: String, file: ConfigFile = CurrentConfig.file) throws -> WorkspaceSettings {
        if let image { try ConfigKey.image.checkFlag(.string(image)) }
        for (key, value) in [(ConfigKey.memoryMib, memoryMib), (.pidsLimit, pidsLimit), (.cpuShares, cpuShares)] {
            if let value { try key.checkFlag(.integer(value)) }
        }
        let defaults = WorkspaceSettings(prefix: prefix)
        return WorkspaceSettings(
            prefix: prefix,
            image: image ?? GlobalOptions.environment("DEVENV_GW_IMAGE") ?? file.string(.image) ?? defaults.image,
            memoryBytes: (memoryMib ?? file.integer(.memoryMib)).map { Int64($0) * 1024 * 1024 } ?? defaults.memoryBytes,
            pidsLimit: (pidsLimit ?? file.integer(.pidsLimit)).map(Int64.init) ?? defaults.pidsLimit,
            cpuShares: cpuShares ?? file.integer(.cpuShares) ?? defaults.cpuShares)
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
