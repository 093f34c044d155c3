import Foundation

/// Where the metrics endpoint listens: a numeric IPv4 or IPv6 address (`[::1]:9122`) and a port.
public struct MetricsListenAddress: Equatable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    /// Parses `HOST:PORT`; refuses names, a missing host and ports outside 1-65535 with
    /// the reason.
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw MetricsEndpointError.invalidAddress("'\(text)' is not HOST:PORT (e.g. 127.0.0.1:9122)")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw MetricsEndpointError.invalidAddress("'\(text)': the port must be 1 to 65535")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr()
        var v6 = in6_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else {
            throw MetricsEndpointError.invalidAddress("'\(text)': the host must be a numeric IPv4 or IPv6 address")
        }
        self.host = host
        self.port = port
    }

    /// `HOST:PORT`, with brackets around an IPv6 host.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The scrape URL.
    public var url: String { "http://\(description)/metrics" }
}

/// Failures of the metrics endpoint, said so that an admin can act on them.
public enum MetricsEndpointError: Error, CustomStringConvertible {
    case invalidAddress(String)
    case cannotListen(String)

    public var description: String {
        switch self {
        case .invalidAddress(let message): return message
        case .cannotListen(let message): return message
        }
    }
}
