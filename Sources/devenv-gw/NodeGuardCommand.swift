import ArgumentParser
import Egress
import Foundation

/// `devenv-gw node-guard`: the firewall of one Swarm node, run there by the gateway (a
/// container of the gateway's image on the node's engine, host network, CAP_NET_ADMIN).
/// It installs and keeps two chains for the workspace bridge: only the gateway may open
/// connections into it, and workspaces may not open connections to the denied
/// destinations (`egress-deny`; `host` is this node's own addresses here, and the gateway
/// passes its own and every node's addresses as networks).
struct NodeGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node-guard",
        abstract: "Keep a swarm node's workspace firewall (started on each node by serve with backend = \"swarm\").")

    /// Printed once the rules are first in place; the gateway waits for it.
    static let readyLine = "node-guard: rules in place"

    @Option(help: "The instance prefix; names the chains DEVENV-IN-<prefix> and DEVENV-EG-<prefix>.")
    var prefix: String

    @Option(help: "The workspace network's bridge interface on this node.")
    var bridge: String

    @Option(help: ArgumentHelp("Addresses the gateway connects from, separated by commas; only they may open "
                               + "connections into the bridge."))
    var allowFrom: String

    @Option(help: ArgumentHelp("What workspaces may not connect to: host (this node's addresses) and IPv4 "
                               + "networks, separated by commas, or none."))
    var egressDeny: String

    @Option(help: "Seconds between checks of the rules.")
    var interval: Double = 10

    func validate() throws {
        guard Self.isPlainName(prefix, maxLength: 16) else {
            throw ValidationError("--prefix must be 1 to 16 letters, digits, '-' or '_'")
        }
        guard Self.isPlainName(bridge, maxLength: 15) else {
            throw ValidationError("--bridge must be an interface name: 1 to 15 letters, digits, '-', '_' or '.'")
        }
        guard interval >= 1 else { throw ValidationError("--interval must be at least 1 second") }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        // PID 1 of a container ignores SIGTERM unless it handles it; the rules stay behind
        // on purpose (a stopped guard leaves the node closed, not open).
        signal(SIGTERM) { _ in _exit(0) }
        let policy: EgressPolicy
        let allowed: [IPv4Network]
        do {
            policy = try EgressPolicy(parsing: egressDeny)
            allowed = try allowFrom.split(separator: ",").map { try IPv4Network(parsing: String($0)) }
        } catch {
            throw CLIError("\(error)")
        }
        guard !allowed.isEmpty else { throw CLIError("--allow-from names no address: the gateway could reach no workspace") }
        let iptables = try IPTables.forDocker()
        let bridge = self.bridge
        let guardian = FirewallGuard(rules: [
            InboundFirewall(iptables: iptables, prefix: prefix, bridge: bridge, allowedSources: allowed),
            EgressRules(firewall: EgressFirewall(iptables: iptables, prefix: prefix), policy: policy, bridge: { bridge }),
        ], log: { print("node-guard: \($0)") })
        for applied in try guardian.apply() { print("node-guard: \(applied.summary)") }
        print(Self.readyLine)
        while true {
            Thread.sleep(forTimeInterval: interval)
            guardian.check()
        }
    }

    static func isPlainName(_ text: String, maxLength: Int) -> Bool {
        !text.isEmpty && text.count <= maxLength
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }
}
