import DockerEngine
import Foundation

/// What every node's guard enforces (`devenv-gw node-guard`, docs/scale-out.md): only
/// the gateway may open connections into the node's workspace bridge, and workspaces may
/// not open connections to `egressDeny`.
public struct NodeGuardPlan: Sendable, Equatable {
    /// The image with the devenv-gw binary and iptables: the gateway's own image.
    public var image: String
    /// The addresses the gateway's connections to workspaces come from.
    public var allowedSources: [String]
    /// `host` (the node's own addresses) and IPv4 networks; empty denies nothing.
    public var egressDeny: [String]
    /// Seconds between the guard's checks of its rules.
    public var interval: Int

    public init(image: String, allowedSources: [String], egressDeny: [String], interval: Int = 10) {
        self.image = image
        self.allowedSources = allowedSources
        self.egressDeny = egressDeny
        self.interval = interval
    }

    /// The guard's arguments for a node whose workspace bridge is `bridge`.
    func arguments(prefix: String, bridge: String) -> [String] {
        ["node-guard", "--prefix", prefix, "--bridge", bridge, "--allow-from", allowedSources.joined(separator: ","),
         "--egress-deny", egressDeny.isEmpty ? "none" : egressDeny.joined(separator: ","), "--interval", "\(interval)"]
    }
}

/// One node's guard, as `ensureNodeGuards` left it.
public struct NodeGuardState: Sendable {
    public let node: String
    /// True when the container was (re)created for the current plan.
    public let replaced: Bool
    /// The guard's own account of its rules (its log up to the ready line).
    public let rules: [String]
}

/// The guard's container on each node, run through the node's own engine: the swarm has
/// no way to start a host-network container with a capability and tell when its work is
/// done (a global service with a health check on the host network fails on Docker 20.10
/// with "network sandbox does not exist").
extension SwarmWorkspaces {
    /// Printed by the guard once its rules are first in place (`NodeGuardCommand.readyLine`).
    public static let nodeGuardReadyLine = "node-guard: rules in place"
    static let nodeGuardLabel = "devenv.node-guard"

    public var nodeGuardName: String { "\(settings.prefix)-node-guard" }

    /// Starts or replaces the guard on every ready node so that it runs `plan`, and waits
    /// until each says its rules are in place. Nodes whose guard is in place are the only
    /// ones new workspaces go to from then on. Throws, naming the node, when a guard cannot
    /// start or fails (its last log lines say why).
    @discardableResult
    public func ensureNodeGuards(_ plan: NodeGuardPlan, timeout: TimeInterval = 60) throws -> [NodeGuardState] {
        try mapEngineErrors {
            let swarmNetwork = try engine.inspectNetwork(network)
            var states: [NodeGuardState] = []
            var failures: [Error] = []
            for node in try engine.listNodes().sorted(by: { $0.hostname < $1.hostname }) where node.state == "ready" {
                do {
                    let nodeEngine = try self.nodeEngine(hostname: node.hostname)
                    let bridge = try bridgeInterface(of: swarmNetwork, on: nodeEngine)
                    states.append(try ensureNodeGuard(plan, bridge: bridge, node: node.hostname, on: nodeEngine,
                                                      timeout: timeout))
                } catch {
                    failures.append(error)
                }
            }
            setGuardedNodes(Set(states.map(\.node)))
            if let failure = failures.first { throw failure }
            return states
        }
    }

    /// The state of the guard's container on a node (`nodes` shows it).
    func nodeGuardState(on hostname: String) -> String {
        guard let nodeEngine = nodeEngines[hostname] else { return "unknown" }
        do {
            return try nodeEngine.inspectContainer(nodeGuardName).state.status
        } catch DockerError.notFound {
            return "absent"
        } catch {
            return "unknown"
        }
    }

    /// Removes the guard containers of this instance from every configured node. Their
    /// rules stay: a node without its guard stays closed, not open.
    public func removeNodeGuards() throws {
        for (_, nodeEngine) in nodeEngines.sorted(by: { $0.key < $1.key }) {
            do {
                try nodeEngine.removeContainer(nodeGuardName, force: true)
            } catch DockerError.notFound {
                continue
            }
        }
    }

    private func ensureNodeGuard(_ plan: NodeGuardPlan, bridge: String, node: String, on nodeEngine: DockerClient,
                                 timeout: TimeInterval) throws -> NodeGuardState {
        let arguments = plan.arguments(prefix: settings.prefix, bridge: bridge)
        let fingerprint = ([plan.image] + arguments).joined(separator: " ")
        var replaced = false
        let existing: ContainerDetails?
        do {
            existing = try nodeEngine.inspectContainer(nodeGuardName)
        } catch DockerError.notFound {
            existing = nil
        }
        if let existing, existing.config.labels?[Self.nodeGuardLabel] == fingerprint, existing.state.running {
            // Running the current plan.
        } else {
            if existing != nil { try nodeEngine.removeContainer(nodeGuardName, force: true) }
            let spec = ContainerSpec(
                // Not labelled as one of the instance's workspaces: nothing that lists those
                // (or waits for them to go) should see it.
                image: plan.image, labels: [Self.nodeGuardLabel: fingerprint],
                cmd: arguments, entrypoint: ["devenv-gw"],
                hostConfig: HostConfig(
                    pidsLimit: 64, capDrop: ["ALL"], capAdd: ["NET_ADMIN", "NET_RAW"],
                    securityOpt: ["no-new-privileges"], networkMode: "host", restartPolicy: .init("always")))
            let id: String
            do {
                id = try nodeEngine.createContainer(name: nodeGuardName, spec: spec)
            } catch DockerError.notFound {
                throw WorkspaceError.engine(.badResponse(
                    "the node guard's image \(plan.image) is not on \(node); load the gateway's image on every node "
                    + "(docs/scale-out.md, \"Firewall on the nodes\")"))
            }
            _ = try nodeEngine.startContainer(id)
            replaced = true
        }
        return NodeGuardState(node: node, replaced: replaced,
                              rules: try waitUntilGuarding(node: node, on: nodeEngine, timeout: timeout))
    }

    /// The guard's log up to its ready line, once it is there.
    private func waitUntilGuarding(node: String, on nodeEngine: DockerClient, timeout: TimeInterval) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        var log = ""
        while true {
            let details = try nodeEngine.inspectContainer(nodeGuardName)
            log = try nodeEngine.containerLogs(nodeGuardName, tail: 10_000)
            let lines = log.split(separator: "\n").map(String.init)
            if details.state.running, let ready = lines.lastIndex(of: Self.nodeGuardReadyLine) {
                let prefix = "node-guard: "
                return lines[..<ready].suffix(2).map { $0.hasPrefix(prefix) ? String($0.dropFirst(prefix.count)) : $0 }
            }
            if !details.state.running && details.state.exitCode != 0 || Date() >= deadline {
                let last = lines.suffix(3).joined(separator: " | ")
                throw WorkspaceError.engine(.badResponse(
                    "the node guard on \(node) has not put its rules in place"
                    + (details.state.running ? " after \(Int(timeout)) s" : " (it exited with \(details.state.exitCode))")
                    + (last.isEmpty ? "" : ": \(last)")))
            }
            usleep(200_000)
        }
    }

    /// The workspace network's bridge on one node: the name its config-only network gives,
    /// else the engine's own, `br-` and the first 12 digits of the swarm network's id.
    private func bridgeInterface(of swarmNetwork: NetworkDetails, on nodeEngine: DockerClient) throws -> String {
        guard let configName = swarmNetwork.configFrom?.network else { return "br-" + swarmNetwork.id.prefix(12) }
        let config = try nodeEngine.inspectNetwork(configName)
        if let name = config.options?["com.docker.network.bridge.name"], !name.isEmpty { return name }
        return "br-" + swarmNetwork.id.prefix(12)
    }
}
