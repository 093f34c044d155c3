import Egress
import Foundation
import Logging
import Workspaces

extension ServeCommand {
    /// Starts each swarm node's firewall guard before the first login and keeps them
    /// running the current plan (a node that joins later, an address that changes, a
    /// guard someone removed) every 30 s. The start fails when a guard cannot put its rules
    /// in place: workspaces would otherwise reach each other across nodes, or the denied
    /// destinations, silently.
    func guardSwarmNodes(_ swarm: SwarmWorkspaces, policy: EgressPolicy, image: String?, logger: Logger) throws {
        guard let image else {
            guard policy.isOff else {
                throw CLIError("swarm-node-guard = \"none\" leaves the nodes' firewall to you, and egress-deny is "
                               + "enforced only by the node guard: set egress-deny = [] as well, or set swarm-node-guard "
                               + "to the gateway's image (docs/scale-out.md, \"Firewall on the nodes\")")
            }
            logger.warning("""
                swarm-node-guard is none: unless the nodes are firewalled, a workspace reaches other nodes' workspaces \
                (docs/scale-out.md, "Firewall on the nodes")
                """)
            return
        }
        let plan = { try NodeGuardPlan(image: image, policy: policy, nodes: swarm.engine.listNodes().compactMap(\.address)) }
        do {
            for state in try swarm.ensureNodeGuards(try plan()) {
                logger.info("node guard on \(state.node): \(state.rules.joined(separator: "; "))")
            }
        } catch {
            throw CLIError("the swarm nodes' firewall is not in place: \(error)")
        }
        let thread = Thread {
            var lastProblem: String?
            while true {
                Thread.sleep(forTimeInterval: 30)
                do {
                    for state in try swarm.ensureNodeGuards(try plan()) where state.replaced {
                        logger.notice("node guard on \(state.node) started: \(state.rules.joined(separator: "; "))")
                    }
                    lastProblem = nil
                } catch {
                    let problem = "\(error)"
                    if problem != lastProblem { logger.error("node guards: \(problem); new workspaces avoid such nodes") }
                    lastProblem = problem
                }
            }
        }
        thread.name = "node-guards"
        thread.start()
    }
}

extension NodeGuardPlan {
    /// The plan for `policy`: the gateway's connections come from its address toward each
    /// node, and `host` covers, besides each node's own addresses, the gateway's host and
    /// every node (a workspace reaches another node's addresses routed, not on its own).
    init(image: String, policy: EgressPolicy, nodes nodeAddresses: [String]) throws {
        let nodes = try nodeAddresses.map { try IPv4Network(parsing: $0) }
        var sources: [String] = []
        for node in nodes {
            guard let source = HostAddresses.source(toward: node.address) else {
                throw CLIError("this host has no route to the swarm node at \(node)")
            }
            let address = IPv4Network(address: source, prefixLength: 32).description
            if !sources.contains(address) { sources.append(address) }
        }
        var deny: [String] = []
        for destination in policy.destinations {
            switch destination {
            case .hostAddresses:
                deny.append(EgressPolicy.hostKeyword)
                deny += HostAddresses.ipv4().map { IPv4Network(address: $0, prefixLength: 32).description }
                deny += nodes.map(\.description)
            case .network(let network):
                deny.append(network.description)
            }
        }
        var unique: [String] = []
        for entry in deny where !unique.contains(entry) { unique.append(entry) }
        self.init(image: image, allowedSources: sources, egressDeny: unique)
    }
}
