import ArgumentParser
import Audit
import DockerEngine
import Egress
import Foundation
import Gateway
import MetricsEndpoint
import TOMLKit
import UserNames

/// The keys of the config file: the long flags of `serve`, spelled the same.
enum ConfigKey: String, CaseIterable {
    case stateDir = "state-dir"
    case prefix
    case audit
    case listen
    case hostkeys
    case authTimeout = "auth-timeout"
    case maxAuthTries = "max-auth-tries"
    case maxStartups = "max-startups"
    case maxStartupsPerSource = "max-startups-per-source"
    case maxConnections = "max-connections"
    case maxConnectionsPerUser = "max-connections-per-user"
    case maxChannelsPerConnection = "max-channels-per-connection"
    case clientAliveInterval = "client-alive-interval"
    case clientAliveCountMax = "client-alive-count-max"
    case compression
    case idleTimeout = "idle-timeout"
    case forwarding
    case image
    case memoryMib = "memory-mib"
    case pidsLimit = "pids-limit"
    case cpuShares = "cpu-shares"
    case egressDeny = "egress-deny"
    case metricsListen = "metrics-listen"
    /// Where workspaces run: `engine` (the one Docker engine DOCKER_HOST names) or `swarm`.
    case backend
    /// The swarm manager's engine (`unix://…` or `tcp://…`); default DOCKER_HOST.
    case swarmManager = "swarm-manager"
    /// The swarm-scoped network workspaces join (docs/scale-out.md).
    case swarmNetwork = "swarm-network"
    /// Each node's own engine, `"HOSTNAME=unix://…"`: homes, processes and swap limits.
    case swarmNodeEngines = "swarm-node-engines"
    /// The image each node's firewall guard runs (the gateway's image), or `none`.
    case swarmNodeGuard = "swarm-node-guard"
    /// The directory with `ca.pem`, `cert.pem` and `key.pem` for every `tcp://` engine
    /// (`EngineTLSConfig`).
    case dockerTLSDir = "docker-tls-dir"

    /// What a key's value must be.
    enum Kind {
        case string, integer, seconds, addresses
        /// An array of strings, or one string with entries separated by commas.
        case list
        /// An integer, or a `"START:RATE:FULL"` string.
        case startups

        var name: String {
            switch self {
            case .string: return "a string"
            case .integer: return "an integer"
            case .seconds: return "a number of seconds"
            case .addresses: return "an array of \"HOST:PORT\" strings"
            case .list: return "an array of strings, or \"none\""
            case .startups: return "an integer or a \"START:RATE:FULL\" string"
            }
        }
    }

    var kind: Kind {
        switch self {
        case .stateDir, .prefix, .audit, .hostkeys, .image, .forwarding, .compression, .metricsListen, .backend,
             .swarmManager, .swarmNetwork, .swarmNodeGuard, .dockerTLSDir: return .string
        case .listen: return .addresses
        case .egressDeny, .swarmNodeEngines: return .list
        case .authTimeout, .idleTimeout, .clientAliveInterval: return .seconds
        case .maxStartups: return .startups
        case .maxAuthTries, .maxStartupsPerSource, .maxConnections, .maxConnectionsPerUser,
             .maxChannelsPerConnection, .clientAliveCountMax, .memoryMib, .pidsLimit, .cpuShares: return .integer
        }
    }

    /// Why a value of the right type is still refused, or nil. Flags and the file share
    /// these rules.
    func problem(with value: ConfigValue) -> String? {
        switch (self, value) {
        case (.prefix, .string(let prefix)):
            return GlobalOptions.isValidPrefix(prefix) ? nil
                : "use a lowercase letter, then up to 15 lowercase letters, digits or '-'"
        case (.audit, .string(let text)):
            return AuditLog.Destination(rawValue: text) != nil ? nil : "use stderr, journald or auto"
        case (.stateDir, .string(let text)), (.hostkeys, .string(let text)), (.image, .string(let text)):
            return text.isEmpty ? "must not be empty" : nil
        case (.listen, .strings(let addresses)):
            if addresses.isEmpty { return "give at least one address" }
            return addresses.lazy.compactMap(Self.addressProblem).first
        case (.authTimeout, .number(let seconds)):
            return seconds > 0 && seconds <= 3600 ? nil : "must be more than 0 and at most 3600"
        case (.idleTimeout, .number(let seconds)):
            return seconds >= 0 && seconds <= 366 * 86400 ? nil : "must be 0 (never) to 31622400"
        case (.forwarding, .string(let text)):
            return Self.refusal { _ = try ForwardingPolicy(parsing: text) }
        case (.maxAuthTries, .integer(let count)):
            return (1...1000).contains(count) ? nil : "must be 1 to 1000"
        case (.maxStartups, .integer(let count)), (.maxStartupsPerSource, .integer(let count)),
             (.maxConnections, .integer(let count)), (.maxConnectionsPerUser, .integer(let count)):
            return count >= 1 && count <= 1_000_000 ? nil : "must be 1 to 1000000"
        case (.maxChannelsPerConnection, .integer(let count)):
            return count >= 1 && count <= 100_000 ? nil : "must be 1 to 100000"
        case (.maxStartups, .string(let text)):
            return Self.refusal { _ = try StartupLimits(parsing: text) }
        case (.clientAliveInterval, .number(let seconds)):
            return seconds >= 0 && seconds <= 86400 ? nil : "must be 0 (never) to 86400"
        case (.clientAliveCountMax, .integer(let count)):
            return (1...1000).contains(count) ? nil : "must be 1 to 1000"
        case (.backend, .string(let text)):
            return ["engine", "swarm"].contains(text) ? nil : "use engine or swarm"
        case (.swarmManager, .string(let text)), (.swarmNetwork, .string(let text)), (.swarmNodeGuard, .string(let text)):
            return text.isEmpty ? "must not be empty" : nil
        case (.dockerTLSDir, .string(let directory)):
            if directory.isEmpty { return "must not be empty" }
            return Self.refusal { _ = try DockerTLS(directory: directory) }
        case (.swarmNodeEngines, .strings(let entries)):
            return entries.first { SwarmConfig.nodeEngine($0) == nil }
                .map { "\(UserName.quoted($0)) is not HOSTNAME=unix://PATH or HOSTNAME=tcp://HOST:PORT" }
        case (.compression, .string(let text)):
            return ["yes", "no"].contains(text) ? nil : "use yes or no"
        case (.metricsListen, .string(let text)):
            // Empty: no metrics endpoint.
            return text.isEmpty ? nil : Self.refusal { _ = try MetricsListenAddress(parsing: text) }
        case (.egressDeny, .strings(let entries)):
            return Self.refusal { _ = try EgressPolicy(parsing: entries) }
        case (.memoryMib, .integer(let mib)):
            return mib >= 64 && mib <= 16 * 1024 * 1024 ? nil : "must be at least 64"
        case (.pidsLimit, .integer(let count)):
            return count >= 32 ? nil : "must be at least 32"
        case (.cpuShares, .integer(let shares)):
            return shares >= 2 && shares <= 262_144 ? nil : "must be 2 to 262144"
        default:
            return "must be \(kind.name)"
        }
    }

    /// Why a value's own parser refuses it, or nil when it parses.
    private static func refusal(_ parse: () throws -> Void) -> String? {
        do {
            try parse()
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// `HOST:PORT`, `:PORT` or `[IPv6]:PORT` with a port from 1 to 65535.
    private static func addressProblem(_ address: String) -> String? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (1...65535).contains(port)
        else { return "\(displayText(address)) is not HOST:PORT with a port from 1 to 65535" }
        return nil
    }

    /// Checks a flag's value with the file's rules; a refusal is a usage error.
    func checkFlag(_ value: ConfigValue) throws {
        if let problem = problem(with: value) {
            throw ValidationError("--\(rawValue): \(problem)")
        }
    }
}

/// A value from the file (or a flag, to check it), once its type is right.
enum ConfigValue: Equatable {
    case string(String)
    case integer(Int)
    case number(Double)
    case strings([String])
}

/// A bad config file: which file, which key, and why.
struct ConfigError: Error, CustomStringConvertible {
    let path: String
    let key: String?
    let reason: String

    var description: String {
        "\(displayText(path)): " + (key.map { "\(displayText($0)): " } ?? "") + displayText(reason)
    }
}

/// The config file, `/etc/devenv-gw/config.toml` unless `--config` or DEVENV_GW_CONFIG
/// names another. Every key is checked when the file is read, so a bad value fails the
/// command at once with the file, the key and the reason, whichever command it is.
struct ConfigFile {
    static let defaultPath = "/etc/devenv-gw/config.toml"

    /// The file read, or nil when there was none.
    let path: String?
    private let values: [ConfigKey: ConfigValue]

    static let empty = ConfigFile(path: nil, values: [:])

    private init(path: String?, values: [ConfigKey: ConfigValue]) {
        self.path = path
        self.values = values
    }

    /// Reads `explicitPath`, or the default file if it exists. A missing default file is
    /// an empty configuration; a missing explicit file is an error.
    static func load(explicitPath: String?) throws -> ConfigFile {
        let path = explicitPath ?? defaultPath
        guard let data = FileManager.default.contents(atPath: path) else {
            if explicitPath == nil && !FileManager.default.fileExists(atPath: path) { return .empty }
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
            throw ConfigError(path: path, key: nil, reason: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(path: path, key: nil, reason: "not UTF-8 text")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(path: path, key: nil,
                              reason: "line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        }
        var values: [ConfigKey: ConfigValue] = [:]
        for (name, node) in table {
            guard let key = ConfigKey(rawValue: name) else {
                let suggestion = ConfigKey(rawValue: name.replacingOccurrences(of: "_", with: "-").lowercased())
                throw ConfigError(path: path, key: name, reason: "unknown key"
                                  + (suggestion.map { " (did you mean \($0.rawValue)?)" } ?? ""))
            }
            guard let value = typed(node, as: key.kind) else {
                throw ConfigError(path: path, key: name, reason: "must be \(key.kind.name), not \(describe(node))")
            }
            if let problem = key.problem(with: value) {
                throw ConfigError(path: path, key: name, reason: problem)
            }
            values[key] = value
        }
        return ConfigFile(path: path, values: values)
    }

    func string(_ key: ConfigKey) -> String? {
        if case .string(let value)? = values[key] { return value }
        return nil
    }

    func integer(_ key: ConfigKey) -> Int? {
        if case .integer(let value)? = values[key] { return value }
        return nil
    }

    func number(_ key: ConfigKey) -> Double? {
        if case .number(let value)? = values[key] { return value }
        return nil
    }

    func strings(_ key: ConfigKey) -> [String]? {
        if case .strings(let value)? = values[key] { return value }
        return nil
    }

    private static func typed(_ node: TOMLValueConvertible, as kind: ConfigKey.Kind) -> ConfigValue? {
        switch kind {
        case .string:
            return node.string.map(ConfigValue.string)
        case .integer:
            return node.int.map(ConfigValue.integer)
        case .seconds:
            return (node.double ?? node.int.map(Double.init)).map(ConfigValue.number)
        case .startups:
            return node.int.map(ConfigValue.integer) ?? node.string.map(ConfigValue.string)
        case .list:
            if let single = node.string {
                return .strings(single.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
            }
            return strings(node)
        case .addresses:
            // One address may be given as a plain string.
            if let single = node.string { return .strings([single]) }
            return strings(node)
        }
    }

    /// An array of strings, or nil when the node is anything else.
    private static func strings(_ node: TOMLValueConvertible) -> ConfigValue? {
        guard let array = node.array else { return nil }
        var texts: [String] = []
        for element in array {
            guard let text = element.string else { return nil }
            texts.append(text)
        }
        return .strings(texts)
    }

    private static func describe(_ node: TOMLValueConvertible) -> String {
        switch node.type {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .array: return "an array" + (node.array.map { $0.isEmpty ? "" : " of \(describeElements($0))" } ?? "")
        case .table: return "a table"
        default: return "a \(node.type)"
        }
    }

    private static func describeElements(_ array: TOMLArray) -> String {
        let types = Set(array.map(\.type))
        return types.count == 1 ? "\(types.first!)s" : "mixed values"
    }
}

/// Holds the config file for this run of the command line: read once, when the options
/// are validated, then consulted by every setting that was not given as a flag.
enum CurrentConfig {
    nonisolated(unsafe) private(set) static var file = ConfigFile.empty
    nonisolated(unsafe) private static var loadedPath: String??

    /// Reads the file unless this path was read already.
    static func load(explicitPath: String?) throws {
        if let loadedPath, loadedPath == explicitPath { return }
        file = try ConfigFile.load(explicitPath: explicitPath)
        loadedPath = .some(explicitPath)
    }
}
