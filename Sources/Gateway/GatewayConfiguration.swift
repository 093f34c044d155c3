import Foundation

/// Everything `devenv-gw serve` can be told; each default is what a 500-user server wants.
public struct GatewayConfiguration: Sendable {
    /// Addresses to listen on, as `host:port`.
    public var listenAddresses: [String] = ["0.0.0.0:22"]
    /// Directory of the gateway's own host keys (generated on first start, never replaced).
    public var hostKeyDirectory: String
    /// Path of the key the gateway uses to log in to workspaces' sshd.
    public var upstreamKeyPath: String
    /// Time from TCP accept until the user must be authenticated.
    public var authDeadline: TimeInterval = 30
    /// Public-key attempts (probes of unregistered keys and signed attempts) before disconnect.
    public var maxAuthAttempts = 10
    /// Connections not yet authenticated, in total (with random early drop, as OpenSSH's
    /// MaxStartups) and from one source network (/24, /64). At a cap the most expendable
    /// pending connection of the busiest source makes room (see `PreAuthLimiter`), so a
    /// flood of idle sockets cannot lock registered users out.
    public var maxStartups = StartupLimits(start: 128, rate: 30, full: 256)
    public var maxUnauthenticatedPerSource = 64
    /// Connections at once, authenticated and not. Beyond it a new connection is told so
    /// and closed before any key exchange, so a flood costs no thread and no crypto.
    public var maxConnections = 1000
    /// Connections one user may hold at once (each ControlMaster counts once); room for a
    /// few terminals, an IDE and a file sync per developer.
    public var maxConnectionsPerUser = 10
    /// Channels (sessions and forwarded connections) open at once on one connection.
    public var maxChannelsPerConnection = 64
    /// Seconds of silence from an authenticated client after which the gateway asks it for a
    /// sign of life (`keepalive@openssh.com`), as OpenSSH's ClientAliveInterval; 0 never asks.
    public var clientAliveInterval: TimeInterval = 15
    /// Unanswered keep-alives after which the client is taken for gone and disconnected, as
    /// OpenSSH's ClientAliveCountMax: a vanished client then frees its thread and lets its
    /// workspace go idle.
    public var clientAliveCountMax = 3
    /// Whether clients may ask for zlib compression (OpenSSH's `Compression`). Off by default:
    /// each compressing connection costs zlib's buffers (256 KiB allocated, about 110 KiB
    /// resident, measured with 200 asyncssh sessions, which ask for it) and a compression pass
    /// over every byte, which on a server's own network buys little.
    public var allowsCompression = false
    /// Timeout for the upstream hop's blocking steps (connect, auth, channel requests).
    public var upstreamTimeout: TimeInterval = 20
    /// Which kinds of forwarding users may use; everything they forward happens inside
    /// their own workspace.
    public var forwarding: ForwardingPolicy = .all
    /// A workspace with no session for this long is stopped; nil never stops any.
    public var idleLimit: TimeInterval? = 3600
    /// Where the last refused logins are kept for `devenv-gw status`; nil keeps none.
    public var refusedLoginsPath: String?

    public init(hostKeyDirectory: String, upstreamKeyPath: String) {
        self.hostKeyDirectory = hostKeyDirectory
        self.upstreamKeyPath = upstreamKeyPath
    }

    /// Environment variables passed to the workspace, as OpenSSH's AcceptEnv defaults.
    static func isForwardedEnvironment(_ name: String) -> Bool {
        name == "LANG" || name == "TERM" || name.hasPrefix("LC_")
    }
}

/// OpenSSH's `MaxStartups start:rate:full` for connections that have not authenticated.
public struct StartupLimits: Equatable, Sendable, CustomStringConvertible {
    /// Pending connections from which new ones from busy addresses are dropped at random.
    public var start: Int
    /// The chance of that drop at `start`, in percent; it rises linearly to 100 at `full`.
    public var rate: Int
    /// The most pending connections held at once.
    public var full: Int

    public init(start: Int, rate: Int, full: Int) {
        self.start = start
        self.rate = rate
        self.full = full
    }

    /// Parses `START:RATE:FULL`, or a single number `FULL` (no early drop, as before).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        switch numbers.count == parts.count ? numbers.count : 0 {
        case 1: self.init(start: numbers[0], rate: 100, full: numbers[0])
        case 3: self.init(start: numbers[0], rate: numbers[1], full: numbers[2])
        default: throw GatewayError.configuration("use START:RATE:FULL (e.g. 128:30:256) or a number")
        }
        if let problem { throw GatewayError.configuration(problem) }
    }

    /// Why these limits cannot be used, or nil.
    public var problem: String? {
        guard (1...1_000_000).contains(full) else { return "full must be 1 to 1000000" }
        guard (1...full).contains(start) else { return "start must be 1 to full (\(full))" }
        guard (0...100).contains(rate) else { return "rate must be 0 to 100 (percent)" }
        return nil
    }

    /// `FULL` when there is no early drop, else `START:RATE:FULL`.
    public var description: String { start == full ? "\(full)" : "\(start):\(rate):\(full)" }
}

/// The kinds of forwarding a user may ask for.
public struct ForwardingPolicy: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `ssh -L` and `ssh -D`: direct-tcpip channels, connected from inside the workspace.
    public static let local = ForwardingPolicy(rawValue: 1)
    /// `ssh -R`: ports listened on inside the workspace, forwarded back to the client.
    public static let remote = ForwardingPolicy(rawValue: 2)
    /// `ssh -A`: the client's agent, reachable from the workspace's sessions.
    public static let agent = ForwardingPolicy(rawValue: 4)
    public static let all: ForwardingPolicy = [.local, .remote, .agent]

    static let names: [(String, ForwardingPolicy)] = [("local", .local), ("remote", .remote), ("agent", .agent)]

    /// Parses a comma-separated list of `local`, `remote`, `agent`, or `all` / `none`.
    public init(parsing text: String) throws {
        var policy: ForwardingPolicy = []
        for word in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !word.isEmpty {
            switch word {
            case "all": policy = .all
            case "none": policy = []
            default:
                guard let kind = Self.names.first(where: { $0.0 == word })?.1 else {
                    throw GatewayError.configuration("unknown forwarding kind '\(word)': use local, remote, agent, all or none")
                }
                policy.insert(kind)
            }
        }
        self = policy
    }

    public var description: String {
        let words = Self.names.filter { contains($0.1) }.map(\.0)
        return words.isEmpty ? "none" : words.joined(separator: ",")
    }
}

/// A listen address split into host and port.
struct ListenAddress: Equatable {
    let host: String
    let port: UInt16

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw GatewayError.configuration("invalid listen address '\(text)': use HOST:PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }
}

/// Failures that stop the gateway from starting.
public enum GatewayError: Error, CustomStringConvertible {
    case configuration(String)
    case hostKey(String)
    case listen(String)

    public var description: String {
        switch self {
        case .configuration(let message): return message
        case .hostKey(let message): return message
        case .listen(let message): return message
        }
    }
}
