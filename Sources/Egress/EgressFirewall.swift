import Foundation

/// The rules that keep workspaces from the denied destinations: a chain of the instance's
/// own, `DEVENV-EG-<prefix>`, that drops new connections from the workspace bridge to each
/// denied network, jumped to from INPUT (packets for the host's own addresses never pass
/// FORWARD) and from Docker's DOCKER-USER (packets routed on, e.g. to a cloud's metadata
/// service at 169.254.169.254).
public struct EgressFirewall: Sendable {
    public static let dockerUserChain = "DOCKER-USER"
    /// Where the jumps go: INPUT for the host's own addresses, DOCKER-USER for the rest.
    static let entryChains = ["INPUT", dockerUserChain]

    public let iptables: IPTables
    /// The chain of this instance. Chain names are at most 28 characters; a prefix is at
    /// most 16, so the fixed part is kept short.
    public let chain: String

    public init(iptables: IPTables, prefix: String) {
        self.iptables = iptables
        chain = "DEVENV-EG-\(prefix)"
    }

    /// The chain's rules, as `iptables -S` lists them. Replies to connections the host
    /// opened (the gateway's own connections to each workspace's sshd) pass first.
    public func chainRules(denying networks: [IPv4Network]) -> [String] {
        ["-N \(chain)"] + firewallChain(bridge: "", denying: networks).rules
    }

    func firewallChain(bridge: String, denying networks: [IPv4Network]) -> FirewallChain {
        FirewallChain(
            name: chain,
            rules: ["-A \(chain) -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
                + networks.map { "-A \(chain) -d \($0) -j DROP" },
            jumps: Self.entryChains.map { FirewallChain.Jump(from: $0, matching: ["-i", bridge]) })
    }

    /// Installs or repairs the rules for traffic entering from `bridge` (the workspace
    /// network's interface). Returns true when anything had to change.
    @discardableResult
    public func apply(bridge: String, denying networks: [IPv4Network]) throws -> Bool {
        try firewallChain(bridge: bridge, denying: networks).apply(with: iptables)
    }
}

/// The firewall could not be read or changed.
public struct EgressFirewallError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
