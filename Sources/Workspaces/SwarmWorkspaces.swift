import DockerEngine
import Foundation
import GatewayMetrics
import UserNames

/// The Swarm backend: each user's workspace is a replicated service with 0 or 1
/// replicas, pinned (`node.id==…`) to the node that holds its home volume, on a
/// swarm-scoped bridge network the gateway reaches by routing (docs/scale-out.md).
///
/// The manager places, starts and restarts workspaces. What the manager's API cannot do,
/// the engine of the workspace's node does: the home archive (backup, restore), the
/// container's processes (upgrade's busy check) and the swap limit a service spec cannot
/// carry. All calls block; run them on owned threads.
public final class SwarmWorkspaces: WorkspaceBackend, @unchecked Sendable {
    public let settings: WorkspaceSettings
    /// The manager's engine.
    public let engine: DockerClient
    /// The swarm-scoped network workspaces join; the gateway must reach its addresses.
    public let network: String
    /// Each node's own engine, by node hostname.
    let nodeEngines: [String: DockerClient]
    let locks: WorkspaceLocks
    /// Held while a new workspace's node is chosen and its service created.
    private let placement = NSLock()
    /// The nodes whose guard has its rules in place (`ensureNodeGuards`); nil while this
    /// process runs no guards, when every ready node takes workspaces.
    private var guardedNodes: Set<String>?
    private let guardedNodesLock = NSLock()

    /// Name of the file, under `/run/secrets`, that carries the identity tar.
    static let identityFile = "devenv-identity"
    /// The image contract's entrypoint (workspace/README.md).
    static let entrypoint = "/usr/local/sbin/devenv-entrypoint"

    public init(manager: DockerClient, nodeEngines: [String: DockerClient], network: String, settings: WorkspaceSettings) {
        engine = manager
        self.nodeEngines = nodeEngines
        self.network = network
        self.settings = settings
        locks = WorkspaceLocks(directory: settings.lockDirectory)
    }

    // MARK: - Logins and idle stops

    public func ensure(_ identity: WorkspaceIdentity) throws -> WorkspaceEndpoint {
        try locks.forLogin(of: identity.user, waitingAtMost: settings.loginLockWait) { try ensureLocked(identity) }
    }

    @discardableResult
    public func stopIfIdle(_ user: UserName, timeout: Int, isIdle: () -> Bool) throws -> Bool {
        try locks.forStop(of: user, isIdle: isIdle) { try scaleDown(user, waitingAtMost: TimeInterval(timeout) + 20) }
    }

    public func start(_ user: UserName) throws {
        try mapEngineErrors { try engine.scaleService(settings.containerName(for: user), to: 1) }
    }

    public func exclusively<T>(_ user: UserName, for purpose: String, _ body: () throws -> T) throws -> T {
        try locks.withLock(user, for: purpose, body)
    }

    public func prepareNetwork() throws -> String? {
        try mapEngineErrors {
            do {
                _ = try engine.inspectNetwork(network)
            } catch DockerError.notFound {
                throw WorkspaceError.engine(.badResponse(
                    "the swarm has no network \(network); create it on a manager (docs/scale-out.md, \"Network isolation\")"))
            }
        }
        return nil
    }

    // MARK: - Listing

    public func list() throws -> [WorkspaceStatus] {
        try mapEngineErrors {
            let instance = "\(WorkspaceLabel.instance)=\(settings.prefix)"
            let services = try engine.listServices(labels: [instance])
            let running = try runningTasksByService()
            let nodes = Dictionary(uniqueKeysWithValues: try engine.listNodes().map { ($0.id, $0) })
            var byUser: [String: WorkspaceStatus] = [:]
            for (hostname, node) in nodeEngines {
                for volume in (try? node.listVolumes(labels: [instance])) ?? [] {
                    guard let user = volume.labels?[WorkspaceLabel.user] else { continue }
                    byUser[user] = WorkspaceStatus(user: user, container: nil, state: "absent", image: nil,
                                                   volume: volume.name, node: hostname)
                }
            }
            for service in services {
                guard let user = service.labels[WorkspaceLabel.user] else { continue }
                let task = running[service.id]
                let pinned = pinnedNodeID(service).flatMap { nodes[$0] }
                var state = task?.state == "running" ? "running" : (service.replicas ?? 0) > 0 ? "starting" : "stopped"
                if let pinned, !pinned.takesWorkspaces { state = Self.nodeUnavailableState }
                let node = task?.nodeID.flatMap { nodes[$0]?.hostname } ?? pinned?.hostname
                byUser[user] = WorkspaceStatus(user: user, container: service.name, state: state, image: service.image,
                                               volume: settings.volumeName(for: try UserName(user)), node: node)
            }
            return byUser.values.sorted { $0.user < $1.user }
        }
    }

    /// The swarm's nodes with the number of this instance's workspaces on each, running and
    /// in all (a stopped workspace stays pinned to its node).
    public func nodes() throws -> [SwarmNodeUsage] {
        try mapEngineErrors {
            let services = try engine.listServices(labels: ["\(WorkspaceLabel.instance)=\(settings.prefix)"])
            let running = try runningTasksByService()
            return try engine.listNodes().map { node in
                let pinned = services.filter { pinnedNodeID($0) == node.id }
                return SwarmNodeUsage(node: node, workspaces: pinned.count,
                                      running: pinned.filter { running[$0.id]?.state == "running" }.count,
                                      guardState: nodeGuardState(on: node.hostname))
            }.sorted { $0.node.hostname < $1.node.hostname }
        }
    }

    public func resources(of user: UserName) throws -> WorkspaceResources {
        try mapEngineErrors {
            guard let service = try service(of: user) else {
                return WorkspaceResources(hasContainer: false, isRunning: false,
                                          volumeExists: try nodeHoldingVolume(of: user) != nil, image: nil)
            }
            let running = try runningTask(of: service.name) != nil
            let volume = try nodeManager(for: service).volumeExists(for: user)
            return WorkspaceResources(hasContainer: true, isRunning: running, volumeExists: volume, image: service.image)
        }
    }

    public func activity(of user: UserName, uid: Int) throws -> WorkspaceActivity? {
        try mapEngineErrors {
            guard let service = try service(of: user), let task = try runningTask(of: service.name),
                  let container = task.containerID else { return nil }
            let processes: [ContainerProcess]
            do {
                processes = try nodeEngine(for: service).containerProcesses(container)
            } catch DockerError.notFound {
                return nil
            } catch DockerError.conflict {
                return nil
            }
            return WorkspaceActivity(of: user, uid: uid, among: processes)
        }
    }

    /// `ps`'s state of a workspace whose node is down, drained or paused.
    public static let nodeUnavailableState = "node-unavailable"

    /// The node the service is pinned to (nil when none is named or known); throws
    /// `.nodeUnavailable` when that node is not ready and active.
    @discardableResult
    func requireNodeAvailable(for service: ServiceDetails) throws -> NodeDetails? {
        guard let id = pinnedNodeID(service), let node = try engine.listNodes().first(where: { $0.id == id }) else { return nil }
        guard node.takesWorkspaces else {
            throw WorkspaceError.nodeUnavailable(
                workspace: service.name, node: node.hostname,
                state: node.state == "ready" ? node.availability : node.state)
        }
        return node
    }

    func setGuardedNodes(_ nodes: Set<String>) {
        guardedNodesLock.withLock { guardedNodes = nodes }
    }

    // MARK: - Internals

    private func ensureLocked(_ identity: WorkspaceIdentity) throws -> WorkspaceEndpoint {
        let begun = Date()
        let user = identity.user
        let name = settings.containerName(for: user)
        var existing = try service(of: user)
        if let stale = existing, let registration = identity.registration,
           stale.labels[WorkspaceLabel.registration] != registration.id {
            // The name changed hands: a new service (and identity secret) on the same home
            // volume and node.
            try removeService(of: user, on: try nodeEngine(for: stale))
            existing = nil
        }
        // The node of the workspace's home, known from here on: asked of the manager once.
        var home: NodeDetails?
        if let service = existing {
            // Pinned to its home's node: while that node is away the swarm would only keep
            // the task pending until the login gives up; say so at once.
            home = try requireNodeAvailable(for: service)
        }
        var created = false
        var started = false
        if existing == nil {
            // Choosing and creating under one lock: first logins arriving together (each
            // under its own user's lock) would otherwise all see the same counts and pick
            // the same node.
            home = try placement.withLock {
                let node = try nodeForNewWorkspace(of: user)
                try createService(for: identity, on: node)
                return node
            }
            created = true
        } else if existing?.replicas == 0 {
            try engine.scaleService(name, to: 1)
            started = true
        }
        let task = try waitForTask(of: name)
        let node = try home.map { try nodeEngine(hostname: $0.hostname) } ?? nodeEngine(for: engine.inspectService(name))
        guard let container = task.containerID else {
            throw WorkspaceError.engine(.badResponse("the task of \(name) has no container"))
        }
        let details = try node.inspectContainer(container)
        let address = try address(of: task, service: name, details: details)
        // A service spec cannot say "no swap" on Docker 20.10: the node's engine can. Checked
        // at every login, since the swarm restarts a crashed task with the spec's limits.
        if details.hostConfig.memorySwap != settings.memoryBytes {
            try node.updateContainerMemory(container, memory: settings.memoryBytes, memorySwap: settings.memoryBytes)
        }
        let engineDone = Date()
        if created || started {
            try waitForSSHD(of: name, task: task, address: address)
        }
        if created { GatewayMetric.workspacesCreated.counter().increment() }
        if created || started { GatewayMetric.workspacesStarted.counter().increment() }
        return WorkspaceEndpoint(containerID: task.containerID ?? task.id, containerName: name, address: address, port: 22,
                                 created: created, started: created || started,
                                 engineSeconds: engineDone.timeIntervalSince(begun),
                                 sshdWaitSeconds: Date().timeIntervalSince(engineDone))
    }

    /// The node a workspace without a service goes to: the one holding its home volume
    /// (volumes do not move), else the active node with the fewest running workspaces,
    /// then the most memory, then the name. A workspace counts as running from the moment
    /// its service asks for a replica: its task may not exist yet.
    func nodeForNewWorkspace(of user: UserName) throws -> NodeDetails {
        let nodes = try engine.listNodes()
        if let hostname = try nodeHoldingVolume(of: user) {
            guard let node = nodes.first(where: { $0.hostname == hostname }) else {
                throw WorkspaceError.engine(.badResponse("the home of \(user) is on \(hostname), which is not in the swarm"))
            }
            return node
        }
        let wanted = try engine.listServices(labels: ["\(WorkspaceLabel.instance)=\(settings.prefix)"])
            .filter { ($0.replicas ?? 0) > 0 }
        let counts = Dictionary(grouping: wanted.compactMap(pinnedNodeID), by: { $0 }).mapValues(\.count)
        let guarded = guardedNodesLock.withLock { guardedNodes }
        let candidates = nodes.filter { $0.takesWorkspaces && guarded?.contains($0.hostname) ?? true }.sorted {
            let (a, b) = (counts[$0.id] ?? 0, counts[$1.id] ?? 0)
            if a != b { return a < b }
            if $0.memoryBytes != $1.memoryBytes { return $0.memoryBytes > $1.memoryBytes }
            return $0.hostname < $1.hostname
        }
        guard let node = candidates.first else {
            throw WorkspaceError.engine(.badResponse("no swarm node is ready and active"
                                                     + (guarded == nil ? "" : " with its node guard in place")))
        }
        return node
    }

    private func createService(for identity: WorkspaceIdentity, on node: NodeDetails, image: String? = nil) throws {
        let user = identity.user
        let secret = try identitySecret(identity)
        // Swarm runs this instead of the image's entrypoint: it refuses a node without
        // no-new-privileges (the spec cannot ask for it; the node's daemon.json must), then
        // unpacks the identity files the engine backend would have uploaded.
        let script = """
            grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status || { echo 'devenv: this node runs containers \
            without no-new-privileges; set "no-new-privileges": true in its /etc/docker/daemon.json' >&2; exit 1; }
            tar -xf /run/secrets/\(Self.identityFile) -C / && exec \(Self.entrypoint)
            """
        var labels = settings.labels(for: user, registration: identity.registration?.id)
        let container = ServiceContainerSpec(
            image: image ?? settings.image, hostname: settings.hostname(for: user), labels: labels,
            command: ["/bin/sh", "-c", script],
            capabilityAdd: WorkspaceSettings.sshdCapabilities, capabilityDrop: ["ALL"],
            mounts: [ServiceMount(volume: settings.volumeName(for: user), at: settings.homeDirectory(for: user),
                                  labels: settings.labels(for: user))],
            secrets: [SecretReference(secretID: secret.id, secretName: secret.name, file: Self.identityFile, mode: 0o400)])
        labels[SwarmLabel.identitySecret] = secret.name
        labels[SwarmLabel.imageID] = try? nodeEngine(hostname: node.hostname).inspectImage(image ?? settings.image).id
        let spec = ServiceSpec(
            name: settings.containerName(for: user), labels: labels,
            taskTemplate: .init(containerSpec: container, memoryBytes: settings.memoryBytes, pids: settings.pidsLimit,
                                constraints: ["node.id==\(node.id)"], networks: [network]),
            replicas: 1)
        do {
            try engine.createService(spec)
        } catch DockerError.conflict {
            // Another gateway process created it first.
        }
    }

    /// The secret holding the identity tar, named after its contents so a changed identity
    /// (a new host key, another uid) gets a new one.
    private func identitySecret(_ identity: WorkspaceIdentity) throws -> (id: String, name: String) {
        let fingerprint = Self.fnv1a([identity.user.value, "\(identity.uid)", identity.gatewayPublicKey, identity.hostKeyPEM])
        let name = "\(settings.containerName(for: identity.user))-identity-\(String(fingerprint, radix: 16))"
        if let id = try engine.secretID(named: name) { return (id, name) }
        do {
            return (try engine.createSecret(name: name, data: identity.metadataArchive(),
                                            labels: settings.labels(for: identity.user)), name)
        } catch DockerError.conflict {
            guard let id = try engine.secretID(named: name) else { throw DockerError.notFound("secret \(name)") }
            return (id, name)
        }
    }

    static func fnv1a(_ parts: [String]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in parts.joined(separator: "\u{0}").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// Waits until the service has a running task; fails early when its tasks fail.
    func waitForTask(of service: String, image: String? = nil) throws -> TaskDetails {
        let deadline = Date().addingTimeInterval(settings.sshdReadyTimeout)
        // Failures from before this wait (the swarm keeps a few) do not count.
        var earlierFailures: Int?
        var failures = 0
        var lastError = ""
        while Date() < deadline {
            let tasks = try engine.listTasks(service: service)
            if let task = tasks.first(where: { $0.desiredState == "running" && $0.state == "running"
                && (image == nil || $0.image == image || $0.image?.hasPrefix(image! + "@") == true) }) { return task }
            let failed = tasks.filter { ["failed", "rejected"].contains($0.state) }
            let earlier = earlierFailures ?? failed.count
            earlierFailures = earlier
            if failed.count - earlier > failures {
                failures = failed.count - earlier
                lastError = failed.last?.error ?? lastError
                // A task that fails three times will not come up: say why instead of waiting.
                if failures >= 3 {
                    throw WorkspaceError.engine(.badResponse("the workspace \(service) does not start: \(lastError)"
                                                             + Self.repairHint(for: lastError)))
                }
            }
            usleep(100_000)
        }
        throw WorkspaceError.engine(.badResponse("the workspace \(service) has no running task after "
                                                 + "\(Int(settings.sshdReadyTimeout)) s" + (lastError.isEmpty ? "" : ": \(lastError)")))
    }

    /// What to do about a task error that only the node's admin can mend.
    static func repairHint(for error: String) -> String {
        // moby#37087: an engine that was away, or killed, with tasks on a swarm-scoped
        // bridge keeps a stale network and rejects every new task on it.
        guard error.hasPrefix("network "), error.hasSuffix(" exists") else { return "" }
        return " (the node's engine kept a stale workspace network: restart it with its local network store "
            + "cleared, docs/scale-out.md, \"A node that goes away\")"
    }

    /// Waits until the task's sshd answers; fails within half a second once the task
    /// stops running (its container exited at start), asking the manager twice a second.
    func waitForSSHD(of service: String, task: TaskDetails, address: String) throws {
        try SSHBannerProbe.waitUntilAnswering(host: address, timeout: settings.sshdReadyTimeout, workspace: service) {
            let now = try engine.listTasks(service: service).first { $0.id == task.id }
            guard now?.state == "running" else {
                throw WorkspaceError.engine(.badResponse("the workspace \(service) stopped at start"
                                                         + (now?.error.map { ": \($0)" } ?? "")))
            }
        }
    }

    /// The task's address on the workspace network. A swarm-scoped bridge's addresses come
    /// from each node's own address management: the manager's task does not know them,
    /// the node's container does.
    func address(of task: TaskDetails, service: String, details: ContainerDetails) throws -> String {
        guard let address = task.addresses[network] ?? details.ipAddress(on: network) else {
            throw WorkspaceError.engine(.badResponse("the workspace \(service) has no address on network \(network)"))
        }
        return address
    }

    /// Scales the user's service to zero and waits until its task has stopped; false when
    /// there was no service or it was already at zero.
    private func scaleDown(_ user: UserName, waitingAtMost wait: TimeInterval) throws -> Bool {
        guard let service = try service(of: user), (service.replicas ?? 0) > 0 else { return false }
        try engine.scaleService(service.name, to: 0)
        let deadline = Date().addingTimeInterval(wait)
        while Date() < deadline {
            let tasks = try engine.listTasks(service: service.name)
            if !tasks.contains(where: { ["running", "starting", "preparing", "assigned", "accepted", "ready", "pending", "new"]
                    .contains($0.state) }) { return true }
            usleep(100_000)
        }
        return true
    }

    func service(of user: UserName) throws -> ServiceDetails? {
        do {
            let service = try engine.inspectService(settings.containerName(for: user))
            // Only a service this instance made counts.
            return service.labels[WorkspaceLabel.instance] == settings.prefix ? service : nil
        } catch DockerError.notFound {
            return nil
        }
    }

    private func runningTask(of service: String) throws -> TaskDetails? {
        try engine.listTasks(service: service).first { $0.desiredState == "running" && $0.state == "running" }
    }

    private func runningTasksByService() throws -> [String: TaskDetails] {
        let tasks = try engine.listRunningTasks(labels: ["\(WorkspaceLabel.instance)=\(settings.prefix)"])
        var byService: [String: TaskDetails] = [:]
        for task in tasks where byService[task.serviceID]?.state != "running" { byService[task.serviceID] = task }
        return byService
    }

    func pinnedNodeID(_ service: ServiceDetails) -> String? {
        service.constraints.lazy.compactMap { constraint -> String? in
            let parts = constraint.replacingOccurrences(of: " ", with: "").components(separatedBy: "==")
            return parts.count == 2 && parts[0] == "node.id" ? parts[1] : nil
        }.first
    }

    /// The hostname of the node whose engine holds the user's home volume, or nil.
    func nodeHoldingVolume(of user: UserName) throws -> String? {
        for (hostname, node) in nodeEngines.sorted(by: { $0.key < $1.key }) {
            do {
                _ = try node.inspectVolume(settings.volumeName(for: user))
                return hostname
            } catch DockerError.notFound {
                continue
            } catch DockerError.unreachable(let endpoint, let reason) {
                // A node that is away may hold the home: a new one elsewhere would split it.
                if let away = try engine.listNodes().first(where: { $0.hostname == hostname && $0.state != "ready" }) {
                    throw WorkspaceError.homeUnknown(user: user.value, node: hostname, state: away.state)
                }
                throw DockerError.unreachable(endpoint: endpoint, reason: reason)
            }
        }
        return nil
    }

    /// The engine of the node a service is pinned to.
    func nodeEngine(for service: ServiceDetails) throws -> DockerClient {
        guard let id = pinnedNodeID(service) else {
            throw WorkspaceError.engine(.badResponse("the service \(service.name) is not pinned to a node"))
        }
        let hostname = try engine.listNodes().first { $0.id == id }?.hostname ?? id
        return try nodeEngine(hostname: hostname)
    }

    func nodeEngine(hostname: String) throws -> DockerClient {
        guard let node = nodeEngines[hostname] else {
            throw WorkspaceError.engine(.badResponse(
                "no engine configured for swarm node \(hostname) (swarm-node-engines in the config file)"))
        }
        return node
    }

    /// Today's home code (archive, helper containers), run against one node's engine.
    /// Its locks are in-process only: the caller holds this backend's lock on the user.
    func nodeManager(for service: ServiceDetails) throws -> WorkspaceManager {
        nodeManager(try nodeEngine(for: service))
    }

    func nodeManager(_ node: DockerClient) -> WorkspaceManager {
        var local = settings
        local.lockDirectory = nil
        return WorkspaceManager(docker: node, settings: local)
    }

    /// Removes the service and waits until its containers are gone from the node, so the
    /// home volume is free (a removed service's containers go a moment later).
    func removeServiceAndWait(_ name: String) throws {
        do {
            try engine.removeService(name)
        } catch DockerError.notFound {
            return
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? engine.listTasks(service: name).isEmpty) ?? true { break }
            usleep(100_000)
        }
    }

    func mapEngineErrors<T>(_ body: () throws -> T) throws -> T { try Workspaces.mapEngineErrors(body) }
}

/// One node and this instance's workspaces on it (`devenv-gw nodes`).
public struct SwarmNodeUsage: Sendable {
    public let node: NodeDetails
    /// Workspaces pinned to the node, running or not.
    public let workspaces: Int
    public let running: Int
    /// The node's firewall guard: `running`, `absent`, the container's state, or
    /// `unknown` when the node's engine does not answer.
    public let guardState: String
}

/// Label keys only the Swarm backend sets.
public enum SwarmLabel {
    /// The name of the secret that carries the service's identity files.
    public static let identitySecret = "devenv.identity-secret"
    /// The ID of the image the service runs, as its node knows it (upgrade compares it).
    public static let imageID = "devenv.image-id"
}
