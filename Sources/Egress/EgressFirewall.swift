import Foundation

/// The rules that keep workspaces from the denied destinations: a chain of the instance's
/// own, `DEVENV-EG-<prefix>`, that drops new connections from the workspace bridge to each
/// denied network, jumped to from INPUT (packets for the host's own addresses never pass
/// FORWARD) and from Docker's DOCKER-USER (packets routed on, e.g. to a cloud's metadata
/// service at 169.254.169.254).
///
/// Applying is idempotent: the chain is rewritten only when its rules differ from the
/// wanted ones, and each built-in chain keeps exactly one jump, for the current bridge.
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
        ["-N \(chain)", "-A \(chain) -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
            + networks.map { "-A \(chain) -d \($0) -j DROP" }
    }

    /// Installs or repairs the rules for traffic entering from `bridge` (the workspace
    /// network's interface). Returns true when anything had to change.
    @discardableResult
    public func apply(bridge: String, denying networks: [IPv4Network]) throws -> Bool {
        var changed = false
        let wanted = chainRules(denying: networks)
        let current = (try? iptables.run(["-S", chain])).map(Self.lines)
        if current != wanted {
            if current == nil { try iptables.run(["-N", chain]) } else { try iptables.run(["-F", chain]) }
            for rule in wanted.dropFirst() { try iptables.run(Self.arguments(rule)) }
            changed = true
        }
        for entry in Self.entryChains {
            let jump = "-A \(entry) -i \(bridge) -j \(chain)"
            let jumps = Self.lines(try iptables.run(["-S", entry])).filter { $0.hasSuffix(" -j \(chain)") }
            let copies = jumps.filter { $0 == jump }.count
            // Jumps for an earlier bridge (the network was recreated) and extra copies go.
            let unwanted = jumps.filter { $0 != jump } + Array(repeating: jump, count: max(copies - 1, 0))
            for stale in unwanted {
                try iptables.run(["-D"] + Self.arguments(stale).dropFirst())
                changed = true
            }
            if copies == 0 {
                try iptables.run(["-I", entry, "1", "-i", bridge, "-j", chain])
                changed = true
            }
        }
        return changed
    }

    private static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A listed rule as arguments. Rules are made only of interface and chain names, CIDRs
    /// and fixed words, none of which holds a space.
    private static func arguments(_ rule: String) -> [String] {
        rule.split(separator: " ").map(String.init)
    }
}

/// The firewall could not be read or changed.
public struct EgressFirewallError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
