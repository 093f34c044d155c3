import ArgumentParser
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

    @Option(name: .customLong("listen"), help: "Address to listen on, HOST:PORT (repeatable).")
    var listen: [String] = []

    @Option(help: "Directory of the gateway's host keys (default: STATE_DIR/hostkeys).")
    var hostkeys: String?

    @Option(help: "Seconds a connection has to authenticate.")
    var authTimeout: Double = 30

    @Option(help: "Authentication attempts allowed per connection.")
    var maxAuthTries: Int = 10

    @Option(help: "Unauthenticated connections allowed in total; the oldest is dropped beyond.")
    var maxStartups: Int = 256

    @Option(help: "Unauthenticated connections allowed per source address; the oldest is dropped beyond.")
    var maxStartupsPerSource: Int = 64

    @Option(help: "Seconds without any session after which a workspace is stopped; 0 never stops.")
    var idleTimeout: Double = 3600

    @Option(help: "Forwarding users may use: a list of local, remote, agent; or all, none.")
    var forwarding: String = "all"

    func run() throws {
        var logger = Logger(label: "devenv-gw")
        logger.logLevel = .info
        let registry = try global.openRegistry()
        let docker = DockerClient()
        let manager = WorkspaceManager(docker: docker, settings: try workspace.settings(prefix: global.prefix))
        var configuration = GatewayConfiguration(
            hostKeyDirectory: hostkeys ?? (global.stateDir as NSString).appendingPathComponent("hostkeys"),
            upstreamKeyPath: (global.stateDir as NSString).appendingPathComponent("upstream_ed25519_key"))
        if !listen.isEmpty { configuration.listenAddresses = listen }
        configuration.authDeadline = authTimeout
        configuration.maxAuthAttempts = maxAuthTries
        configuration.maxUnauthenticated = maxStartups
        configuration.maxUnauthenticatedPerSource = maxStartupsPerSource
        configuration.idleLimit = idleTimeout > 0 ? idleTimeout : nil
        do {
            configuration.forwarding = try ForwardingPolicy(parsing: forwarding)
        } catch {
            throw ValidationError("--forwarding: \(error)")
        }

        let server = try GatewayServer(configuration: configuration, accounts: RegistryAccounts(registry: registry),
                                       workspaces: manager, activity: global.activityLog(), logger: logger)
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

/// Workspace settings shared by `serve` and the commands that create containers.
struct WorkspaceOptions: ParsableArguments {
    @Option(help: "Workspace image for new containers.")
    var image: String = ProcessInfo.processInfo.environment["DEVENV_GW_IMAGE"] ?? "devenv-workspace:latest"

    @Option(help: "Memory limit of each workspace in MiB (swap is not allowed on top).")
    var memoryMib: Int64 = 512

    @Option(help: "Maximum number of processes in each workspace.")
    var pidsLimit: Int64 = 1024

    @Option(help: "Relative CPU weight of each workspace.")
    var cpuShares: Int = 1024

    func settings(prefix: String) throws -> WorkspaceSettings {
        guard memoryMib >= 64, pidsLimit >= 32, cpuShares >= 2 else {
            throw ValidationError("limits too small: --memory-mib >= 64, --pids-limit >= 32, --cpu-shares >= 2")
        }
        return WorkspaceSettings(prefix: prefix, image: image, memoryBytes: memoryMib * 1024 * 1024,
                                 pidsLimit: pidsLimit, cpuShares: cpuShares)
    }
}

/// The registry seen through what the gateway needs.
struct RegistryAccounts: GatewayAccounts {
    let registry: Registry

    func isKeyRegistered(user: UserName, type: String, base64: String) -> Bool {
        (try? registry.isKeyRegistered(base64: base64, type: type, for: user)) ?? false
    }

    func workspaceAccount(for user: UserName) throws -> WorkspaceAccount? {
        guard let record = try registry.user(named: user) else { return nil }
        return WorkspaceAccount(uid: record.uid, hostKey: try registry.workspaceHostKey(for: user))
    }
}
