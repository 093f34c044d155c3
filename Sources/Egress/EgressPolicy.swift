import Foundation

/// What workspaces may not connect to: the `egress-deny` setting.
public struct EgressPolicy: Equatable, Sendable, CustomStringConvertible {
    /// One entry of the list.
    public enum Destination: Equatable, Sendable, CustomStringConvertible {
        /// Every address of the gateway host itself (`host`), read when the rules are made,
        /// so an address the host gains later is covered at the next check.
        case hostAddresses
        case network(IPv4Network)

        public var description: String {
            switch self {
            case .hostAddresses: return EgressPolicy.hostKeyword
            case .network(let network): return network.description
            }
        }
    }

    public static let hostKeyword = "host"
    public static let noneKeyword = "none"

    public var destinations: [Destination]

    /// The host's own addresses and link-local 169.254.0.0/16, where clouds serve instance
    /// metadata and credentials.
    public static let `default` = EgressPolicy(destinations: [
        .hostAddresses, .network(IPv4Network(address: 0xa9fe_0000, prefixLength: 16)),
    ])

    public init(destinations: [Destination]) {
        self.destinations = destinations
    }

    /// Parses a list of entries, each `host` or an IPv4 network; `["none"]` and `[]` deny
    /// nothing (the firewall is off).
    public init(parsing entries: [String]) throws {
        let trimmed = entries.map { $0.trimmingCharacters(in: .whitespaces) }
        if trimmed == [Self.noneKeyword] {
            destinations = []
            return
        }
        destinations = try trimmed.map { entry in
            if entry == Self.noneKeyword { throw EgressPolicyError("none cannot be combined with other entries") }
            return entry == Self.hostKeyword ? .hostAddresses : .network(try IPv4Network(parsing: entry))
        }
    }

    /// Parses the flag's form: entries separated by commas, or `none`.
    public init(parsing list: String) throws {
        try self.init(parsing: list.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
    }

    public var isOff: Bool { destinations.isEmpty }

    public var description: String {
        isOff ? Self.noneKeyword : destinations.map(\.description).joined(separator: ",")
    }

    /// The networks to drop, `host` expanded to `hostAddresses`, without repeats.
    public func deniedNetworks(hostAddresses: [UInt32]) -> [IPv4Network] {
        var result: [IPv4Network] = []
        for destination in destinations {
            let networks: [IPv4Network]
            switch destination {
            case .hostAddresses: networks = hostAddresses.map { IPv4Network(address: $0, prefixLength: 32) }
            case .network(let network): networks = [network]
            }
            for network in networks where !result.contains(network) { result.append(network) }
        }
        return result
    }
}

/// An `egress-deny` value that cannot be used, and why.
public struct EgressPolicyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
