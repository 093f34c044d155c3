import Foundation

/// Who may open connections into the workspace bridge: only the gateway. On one host the
/// bridge's inter-container switch is enough; across Swarm nodes a workspace's packets
/// reach another node's bridge routed (masqueraded as their node), which no engine option
/// stops. So each node drops new connections into its bridge from anyone but the
/// gateway's addresses, in a chain of the instance's own, `DEVENV-IN-<prefix>`, jumped to
/// from Docker's DOCKER-USER.
public struct InboundFirewall: GuardedRules {
    public let iptables: IPTables
    public let chain: String
    public let bridge: String
    /// The addresses the gateway's connections to workspaces come from.
    public let allowedSources: [IPv4Network]

    public init(iptables: IPTables, prefix: String, bridge: String, allowedSources: [IPv4Network]) {
        self.iptables = iptables
        chain = "DEVENV-IN-\(prefix)"
        self.bridge = bridge
        self.allowedSources = allowedSources
    }

    /// The chain and its jump. Replies and packets of connections already open pass: the
    /// chain only judges new ones.
    var firewallChain: FirewallChain {
        FirewallChain(
            name: chain,
            rules: allowedSources.map { "-A \(chain) -s \($0) -j RETURN" }
                + ["-A \(chain) -m conntrack --ctstate NEW -j DROP"],
            jumps: [FirewallChain.Jump(from: EgressFirewall.dockerUserChain, matching: ["-o", bridge])])
    }

    public func apply() throws -> (summary: String, changed: Bool) {
        let changed = try firewallChain.apply(with: iptables)
        let who = allowedSources.isEmpty ? "nobody" : allowedSources.map(\.description).joined(separator: " ")
        return ("\(chain) lets only \(who) open connections into \(bridge)", changed)
    }
}
