import ArgumentParser
import Audit
import Egress
import Foundation
import Gateway
import MetricsEndpoint
import Workspaces

/// Every `serve` setting, resolved once: the flag, else its environment variable (where
/// it has one), else the config file's key of the same name, else the default. Flags are
/// checked with the file's rules; a bad flag is a usage error, a bad file value was
/// refused when the file was read.
struct ServeSettings {
    var stateDir: String
    var prefix: String
    var audit: AuditLog.Destination
    var gateway: GatewayConfiguration
    var workspace: WorkspaceSettings
    /// What workspaces may not connect to (`egress-deny`).
    var egress: EgressPolicy
    /// The config file the settings came from, if any.
    var configPath: String?
    /// Where `/metrics` is served (`metrics-listen`); nil serves none.
    var metricsListen: MetricsListenAddress?
    /// The TLS directory for `tcp://` engines (`docker-tls-dir` or Docker's variables); nil for none.
    var dockerTLSDirectory: String?

    init(_ command: ServeCommand, file: ConfigFile = CurrentConfig.file) throws {
        stateDir = command.global.stateDir
        prefix = command.global.prefix
        audit = command.global.audit
        configPath = file.path
        dockerTLSDirectory = EngineTLSConfig.directory(file: file)?.path
        workspace = try command.global.workspaceSettings(command.workspace.flags, file: file)

        if !command.listen.isEmpty { try ConfigKey.listen.checkFlag(.strings(command.listen)) }
        if let hostkeys = command.hostkeys { try ConfigKey.hostkeys.checkFlag(.string(hostkeys)) }
        if let seconds = command.authTimeout { try ConfigKey.authTimeout.checkFlag(.number(seconds)) }
        if let seconds = command.idleTimeout { try ConfigKey.idleTimeout.checkFlag(.number(seconds)) }
        if let kinds = command.forwarding { try ConfigKey.forwarding.checkFlag(.string(kinds)) }
        if let list = command.egressDeny { try ConfigKey.egressDeny.checkFlag(.strings(Self.listEntries(list))) }
        if let limits = command.maxStartups { try ConfigKey.maxStartups.checkFlag(Self.startupsValue(limits)) }
        if let seconds = command.clientAliveInterval { try ConfigKey.clientAliveInterval.checkFlag(.number(seconds)) }
        if let answer = command.compression { try ConfigKey.compression.checkFlag(.string(answer)) }
        if let address = command.metricsListen { try ConfigKey.metricsListen.checkFlag(.string(address)) }
        for (key, value) in [(ConfigKey.maxAuthTries, command.maxAuthTries),
                             (.maxStartupsPerSource, command.maxStartupsPerSource),
                             (.maxConnections, command.maxConnections),
                             (.maxConnectionsPerUser, command.maxConnectionsPerUser),
                             (.maxChannelsPerConnection, command.maxChannelsPerConnection),
                             (.clientAliveCountMax, command.clientAliveCountMax)] {
            if let value { try key.checkFlag(.integer(value)) }
        }

        let state = stateDir as NSString
        var gateway = GatewayConfiguration(
            hostKeyDirectory: command.hostkeys ?? file.string(.hostkeys) ?? state.appendingPathComponent("hostkeys"),
            upstreamKeyPath: state.appendingPathComponent("upstream_ed25519_key"))
        gateway.listenAddresses = command.listen.isEmpty ? file.strings(.listen) ?? gateway.listenAddresses : command.listen
        gateway.authDeadline = command.authTimeout ?? file.number(.authTimeout) ?? gateway.authDeadline
        gateway.maxAuthAttempts = command.maxAuthTries ?? file.integer(.maxAuthTries) ?? gateway.maxAuthAttempts
        // Checked above or when the file was read.
        if let limits = command.maxStartups ?? file.integer(.maxStartups).map(String.init) ?? file.string(.maxStartups) {
            gateway.maxStartups = try StartupLimits(parsing: limits)
        }
        gateway.maxUnauthenticatedPerSource = command.maxStartupsPerSource ?? file.integer(.maxStartupsPerSource)
            ?? gateway.maxUnauthenticatedPerSource
        gateway.maxConnections = command.maxConnections ?? file.integer(.maxConnections) ?? gateway.maxConnections
        gateway.maxConnectionsPerUser = command.maxConnectionsPerUser ?? file.integer(.maxConnectionsPerUser)
            ?? gateway.maxConnectionsPerUser
        gateway.maxChannelsPerConnection = command.maxChannelsPerConnection ?? file.integer(.maxChannelsPerConnection)
            ?? gateway.maxChannelsPerConnection
        gateway.clientAliveInterval = command.clientAliveInterval ?? file.number(.clientAliveInterval)
            ?? gateway.clientAliveInterval
        gateway.clientAliveCountMax = command.clientAliveCountMax ?? file.integer(.clientAliveCountMax)
            ?? gateway.clientAliveCountMax
        if let answer = command.compression ?? file.string(.compression) { gateway.allowsCompression = answer == "yes" }
        if let seconds = command.idleTimeout ?? file.number(.idleTimeout) { gateway.idleLimit = seconds > 0 ? seconds : nil }
        // Checked above or when the file was read.
        if let kinds = command.forwarding ?? file.string(.forwarding) { gateway.forwarding = try ForwardingPolicy(parsing: kinds) }
        gateway.refusedLoginsPath = state.appendingPathComponent(GatewayStatusFile.refusedLoginsName)
        self.gateway = gateway
        // Checked above or when the file was read; empty means off.
        if let text = command.metricsListen ?? file.string(.metricsListen), !text.isEmpty {
            metricsListen = try MetricsListenAddress(parsing: text)
        }
        // Checked above or when the file was read.
        let entries = command.egressDeny.map(Self.listEntries) ?? file.strings(.egressDeny)
        egress = try entries.map { try EgressPolicy(parsing: $0) } ?? .default
    }

    /// The entries of a `--egress-deny` flag, separated by commas, as the file holds them.
    private static func listEntries(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    /// A `--max-startups` flag as the file would hold it: a number is an integer.
    private static func startupsValue(_ text: String) -> ConfigValue {
        Int(text).map(ConfigValue.integer) ?? .string(text)
    }
}

extension ServeSettings {
    /// The settings as a config file that gives exactly them (`serve --print-config`).
    var configText: String {
        var values: [(ConfigKey, String)] = [
            (.stateDir, quoted(stateDir)),
            (.prefix, quoted(prefix)),
            (.audit, quoted(audit.rawValue)),
            (.listen, "[" + gateway.listenAddresses.map(quoted).joined(separator: ", ") + "]"),
            (.hostkeys, quoted(gateway.hostKeyDirectory)),
            (.authTimeout, "\(gateway.authDeadline)"),
            (.maxAuthTries, "\(gateway.maxAuthAttempts)"),
            (.maxStartups, gateway.maxStartups.start == gateway.maxStartups.full
                ? "\(gateway.maxStartups.full)" : quoted(gateway.maxStartups.description)),
            (.maxStartupsPerSource, "\(gateway.maxUnauthenticatedPerSource)"),
            (.maxConnections, "\(gateway.maxConnections)"),
            (.maxConnectionsPerUser, "\(gateway.maxConnectionsPerUser)"),
            (.maxChannelsPerConnection, "\(gateway.maxChannelsPerConnection)"),
            (.clientAliveInterval, "\(gateway.clientAliveInterval)"),
            (.clientAliveCountMax, "\(gateway.clientAliveCountMax)"),
            (.compression, quoted(gateway.allowsCompression ? "yes" : "no")),
            (.idleTimeout, "\(gateway.idleLimit ?? 0)"),
            (.forwarding, quoted(gateway.forwarding.description)),
            (.image, quoted(workspace.image)),
            (.memoryMib, "\(workspace.memoryBytes / (1024 * 1024))"),
            (.pidsLimit, "\(workspace.pidsLimit)"),
            (.cpuShares, "\(workspace.cpuShares)"),
            (.egressDeny, "[" + egress.destinations.map { quoted($0.description) }.joined(separator: ", ") + "]"),
            (.metricsListen, quoted(metricsListen?.description ?? "")),
        ]
        // The engine backend's settings print as they always did; a swarm adds its own.
        if CurrentConfig.file.string(.backend) == "swarm" {
            let swarm = SwarmConfig(file: CurrentConfig.file)
            values += [(.backend, quoted("swarm")), (.swarmNetwork, quoted(swarm.network)),
                       (.swarmNodeEngines, "[" + swarm.nodeEngines.sorted { $0.key < $1.key }
                            .map { quoted("\($0.key)=\($0.value)") }.joined(separator: ", ") + "]"),
                       (.swarmNodeGuard, quoted(swarm.nodeGuardImage ?? "none"))]
            if let manager = swarm.manager { values.append((.swarmManager, quoted(manager))) }
        }
        if let dockerTLSDirectory { values.append((.dockerTLSDir, quoted(dockerTLSDirectory))) }
        let header = "# devenv-gw serve settings" + (configPath.map { " (config file \(displayText($0)))" } ?? "")
        return ([header] + values.map { "\($0.0.rawValue) = \($0.1)" }).joined(separator: "\n") + "\n"
    }

    /// A TOML basic string: JSON's string escapes are TOML's too.
    private func quoted(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        // A string always encodes.
        return (try? encoder.encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
