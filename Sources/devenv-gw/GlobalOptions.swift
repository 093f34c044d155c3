import ArgumentParser
import Audit
import DockerEngine
import Foundation
import Workspaces
import Registry
import UserNames

/// Options every command takes: where the state lives, which instance this is, the config
/// file and where audit events go. Each setting is the flag, else its environment
/// variable, else the config file's key, else the default.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "Directory holding the registry and the gateway's state "
            + "(env DEVENV_GW_STATE_DIR, config state-dir; default /var/lib/devenv-gw).",
        valueName: "dir"))
    var stateDirFlag: String?

    @Option(name: .customLong("prefix"), help: ArgumentHelp(
        "Prefix of the container, volume and network names on the Docker engine that DOCKER_HOST names "
            + "(env DEVENV_GW_PREFIX, config prefix; default devenv): a lowercase letter, then up to 15 "
            + "lowercase letters, digits or '-'.",
        valueName: "prefix"))
    var prefixFlag: String?

    @Option(name: .customLong("config"), help: ArgumentHelp(
        "Config file (env DEVENV_GW_CONFIG; default \(ConfigFile.defaultPath), when it exists).",
        valueName: "file"))
    var configFlag: String?

    @Option(name: .customLong("audit"), help: ArgumentHelp(
        "Where audit events go: journald, stderr (JSON lines) or auto, journald when its socket exists "
            + "(env DEVENV_GW_AUDIT, config audit; default auto).",
        valueName: "stderr|journald|auto"))
    var auditFlag: String?

    var stateDir: String {
        stateDirFlag ?? Self.environment("DEVENV_GW_STATE_DIR") ?? CurrentConfig.file.string(.stateDir)
            ?? "/var/lib/devenv-gw"
    }

    var prefix: String {
        prefixFlag ?? Self.environment("DEVENV_GW_PREFIX") ?? CurrentConfig.file.string(.prefix) ?? "devenv"
    }

    var audit: AuditLog.Destination {
        (auditFlag ?? Self.environment("DEVENV_GW_AUDIT")).flatMap(AuditLog.Destination.init(rawValue:))
            ?? CurrentConfig.file.string(.audit).flatMap(AuditLog.Destination.init(rawValue:)) ?? .auto
    }

    func validate() throws {
        // The file first: its values were checked as it was read.
        try CurrentConfig.load(explicitPath: configFlag ?? Self.environment("DEVENV_GW_CONFIG"))
        guard Self.isValidPrefix(prefix) else {
            throw ValidationError("invalid prefix \(UserName.quoted(prefix)): "
                                  + "use a lowercase letter, then up to 15 lowercase letters, digits or '-'")
        }
        guard !stateDir.isEmpty else { throw ValidationError("the state directory is empty") }
        if let given = auditFlag ?? Self.environment("DEVENV_GW_AUDIT"), AuditLog.Destination(rawValue: given) == nil {
            throw ValidationError("invalid audit destination \(UserName.quoted(given)): use stderr, journald or auto")
        }
        // Before any command changes anything: a bad TLS directory is refused here.
        _ = try dockerTLS()
    }

    /// `^[a-z][a-z0-9-]{0,15}$`, checked on bytes so no Unicode lookalike passes.
    static func isValidPrefix(_ prefix: String) -> Bool {
        let bytes = Array(prefix.utf8)
        func isLower(_ b: UInt8) -> Bool { b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        guard let first = bytes.first, isLower(first), bytes.count <= 16 else { return false }
        return bytes.dropFirst().allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "-") }
    }

    /// The key the gateway logs in to workspaces with (`serve` creates it at the same path).
    var upstreamKeyPath: String { (stateDir as NSString).appendingPathComponent("upstream_ed25519_key") }

    func openRegistry() throws -> Registry {
        try Registry(stateDirectory: stateDir)
    }

    /// The audit log `--audit` chooses. Admin commands open it before changing anything, so
    /// no change goes unrecorded.
    func openAuditLog() throws -> AuditLog {
        do {
            return try AuditLog(audit)
        } catch {
            throw CLIError("cannot write the audit trail: \(error)")
        }
    }

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name]
    }

    /// Where every process of this instance keeps the per-user workspace locks.
    var lockDirectory: String { (stateDir as NSString).appendingPathComponent("locks") }

    /// The workspace settings of this instance, resolved the same way for every command:
    /// prefix and lock directory from these options; the image from the flag, else
    /// DEVENV_GW_IMAGE, else the config file's `image`, else the default; each limit from
    /// its flag, else the file, else the default. A bad flag is a usage error.
    func workspaceSettings(_ flags: WorkspaceFlags = WorkspaceFlags(),
                           file: ConfigFile = CurrentConfig.file) throws -> WorkspaceSettings {
        if let image = flags.image { try ConfigKey.image.checkFlag(.string(image)) }
        for (key, value) in [(ConfigKey.memoryMib, flags.memoryMib), (.pidsLimit, flags.pidsLimit),
                             (.cpuShares, flags.cpuShares)] {
            if let value { try key.checkFlag(.integer(value)) }
        }
        let defaults = WorkspaceSettings(prefix: prefix)
        var settings = WorkspaceSettings(
            prefix: prefix,
            image: flags.image ?? Self.environment("DEVENV_GW_IMAGE") ?? file.string(.image) ?? defaults.image,
            memoryBytes: (flags.memoryMib ?? file.integer(.memoryMib)).map { Int64($0) * 1024 * 1024 } ?? defaults.memoryBytes,
            pidsLimit: (flags.pidsLimit ?? file.integer(.pidsLimit)).map(Int64.init) ?? defaults.pidsLimit,
            cpuShares: flags.cpuShares ?? file.integer(.cpuShares) ?? defaults.cpuShares)
        settings.lockDirectory = lockDirectory
        return settings
    }

    /// The one place the workspace backend is made, so `serve` and every admin command
    /// work on workspaces with the same backend and settings (config `backend`).
    func workspaceBackend(_ flags: WorkspaceFlags = WorkspaceFlags()) throws -> any WorkspaceBackend {
        let settings = try workspaceSettings(flags)
        switch CurrentConfig.file.string(.backend) ?? "engine" {
        case "swarm":
            return SwarmConfig(file: CurrentConfig.file).backend(settings: settings, tls: try dockerTLS())
        default:
            return WorkspaceManager(docker: try dockerClient(), settings: settings)
        }
    }

    /// The TLS directory for `tcp://` engines, or nil (`EngineTLSConfig`).
    func dockerTLS() throws -> DockerTLS? {
        try EngineTLSConfig.load()
    }

    /// A client for the engine DOCKER_HOST names, over TLS when it is `tcp://` and a TLS
    /// directory is configured.
    func dockerClient(requestTimeout: TimeInterval = 60) throws -> DockerClient {
        DockerClient(tls: try dockerTLS(), requestTimeout: requestTimeout)
    }

    /// The engines of the configured backend that would be reached over plain HTTP:
    /// `tcp://` with no TLS directory.
    func plainTCPEngines() throws -> [String] {
        var hosts: [String?] = [nil]  // nil: DOCKER_HOST
        if CurrentConfig.file.string(.backend) == "swarm" {
            let swarm = SwarmConfig(file: CurrentConfig.file)
            hosts = [swarm.manager] + swarm.nodeEngines.keys.sorted().map { swarm.nodeEngines[$0] }
        }
        let tls = try dockerTLS()
        return hosts.map { DockerClient(host: $0, tls: tls) }.filter(\.isPlainTCP).map(\.endpoint)
    }

    /// When each user last used their workspace, as the gateway records it.
    func activityLog() -> WorkspaceActivityLog {
        WorkspaceActivityLog(directory: (stateDir as NSString).appendingPathComponent("activity"))
    }
}

/// The workspace flags a command was given, nil where it was not; `GlobalOptions` fills
/// in the rest.
struct WorkspaceFlags {
    var image: String?
    var memoryMib: Int?
    var pidsLimit: Int?
    var cpuShares: Int?
}
