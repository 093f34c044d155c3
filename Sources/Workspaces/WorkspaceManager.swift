import DockerEngine
import Foundation
import GatewayMetrics
import UserNames

/// A running workspace and where its sshd listens.
public struct WorkspaceEndpoint: Sendable {
    public let containerID: String
    public let containerName: String
    public let address: String
    public let port: Int
    /// True when this call created the container.
    public let created: Bool
    /// True when this call started it.
    public let started: Bool
    /// Seconds this call spent on Engine API calls (inspect, create, start), and waiting for
    /// the workspace's sshd to answer after a create or start: where a cold login's time goes.
    public var engineSeconds: Double = 0
    public var sshdWaitSeconds: Double = 0
}

/// One user's workspace as `ps` shows it.
public struct WorkspaceStatus: Sendable, Codable {
    public let user: String
    public let container: String?
    /// `running`, `exited`, `created`, … or `absent` when only the volume exists.
    public let state: String
    public let image: String?
    public let volume: String?
    /// The swarm node the workspace is pinned to; nil on the engine backend.
    public var node: String? = nil
}

/// The engine backend: creates, starts, stops and lists per-user workspaces on one Docker
/// engine, each a named home volume plus a disposable container from the workspace image.
/// All calls block; run them on owned threads.
public final class WorkspaceManager: WorkspaceBackend, @unchecked Sendable {
    public let docker: DockerClient
    public var engine: DockerClient { docker }
    public let settings: WorkspaceSettings
    let locks: WorkspaceLocks
    private let networkLock = NSLock()
    private var networkReady = false

    public init(docker: DockerClient, settings: WorkspaceSettings) {
        self.docker = docker
        self.settings = settings
        locks = WorkspaceLocks(directory: settings.lockDirectory)
    }

    /// Returns a running workspace for the user with its sshd answering, creating the
    /// network, volume and container as needed. Concurrent calls for one user are serialised;
    /// while another operation (a restore, an upgrade) holds the workspace for longer than
    /// `settings.loginLockWait`, throws `WorkspaceError.locked` saying what it is.
    public func ensure(_ identity: WorkspaceIdentity) throws -> WorkspaceEndpoint {
        try locks.forLogin(of: identity.user, waitingAtMost: settings.loginLockWait) { try ensureLocked(identity) }
    }

    /// Stops the user's container if `isIdle` still holds once no login of theirs is in
    /// progress (it is asked under the same per-user lock that `ensure` takes).
    @discardableResult
    public func stopIfIdle(_ user: UserName, timeout: Int = 10, isIdle: () -> Bool) throws -> Bool {
        try locks.forStop(of: user, isIdle: isIdle) {
            do {
                return try docker.stopContainer(settings.containerName(for: user), timeout: timeout)
            } catch DockerError.notFound {
                return false
            }
        }
    }

    /// Starts the user's existing container again.
    public func start(_ user: UserName) throws {
        try mapEngineErrors { _ = try docker.startContainer(settings.containerName(for: user)) }
    }

    /// Every workspace of this instance: containers, and volumes whose container is gone.
    public func list() throws -> [WorkspaceStatus] {
        try mapEngineErrors {
            let instance = "\(WorkspaceLabel.instance)=\(settings.prefix)"
            let containers = try docker.listContainers(labels: [instance])
            let volumes = try docker.listVolumes(labels: [instance])
            var byUser: [String: WorkspaceStatus] = [:]
            for volume in volumes {
                guard let user = volume.labels?[WorkspaceLabel.user] else { continue }
                byUser[user] = WorkspaceStatus(user: user, container: nil, state: "absent", image: nil, volume: volume.name)
            }
            for container in containers {
                guard let user = container.labels?[WorkspaceLabel.user] else { continue }
                byUser[user] = WorkspaceStatus(user: user, container: container.name, state: container.state,
                                               image: container.image, volume: byUser[user]?.volume)
            }
            return byUser.values.sorted { $0.user < $1.user }
        }
    }

    // MARK: - Internals

    private func ensureLocked(_ identity: WorkspaceIdentity) throws -> WorkspaceEndpoint {
        let begun = Date()
        let user = identity.user
        let name = settings.containerName(for: user)
        var created = false
        var existing: ContainerDetails?
        do {
            existing = try docker.inspectContainer(name)
        } catch DockerError.notFound {
            existing = nil
        }
        if let stale = existing, identity.isEarlierOwners(stale) {
            // The name changed hands: the earlier owner's container (their processes, /tmp,
            // anything outside the home) never serves the new one. The home volume stays,
            // as it does for every registration of the name.
            try docker.removeContainer(stale.id, force: true)
            existing = nil
        }
        var details: ContainerDetails
        if let existing {
            details = existing
        } else {
            try createWorkspace(identity)
            created = true
            details = try docker.inspectContainer(name)
        }
        var started = false
        if !details.state.running {
            started = try docker.startContainer(details.id)
            details = try docker.inspectContainer(details.id)
            guard details.state.running else {
                throw WorkspaceError.exitedAtStart(container: name, exitCode: details.state.exitCode)
            }
        }
        guard let address = details.ipAddress(on: settings.networkName) else {
            throw WorkspaceError.engine(.badResponse("container \(name) has no address on network \(settings.networkName)"))
        }
        let engineDone = Date()
        if created || started {
            try waitForSSHD(container: name, id: details.id, address: address)
        }
        if created { GatewayMetric.workspacesCreated.counter().increment() }
        if started { GatewayMetric.workspacesStarted.counter().increment() }
        return WorkspaceEndpoint(containerID: details.id, containerName: name, address: address, port: 22,
                                 created: created, started: started,
                                 engineSeconds: engineDone.timeIntervalSince(begun),
                                 sshdWaitSeconds: Date().timeIntervalSince(engineDone))
    }

    /// Creates the network and volume if missing, then the container with the identity injected.
    private func createWorkspace(_ identity: WorkspaceIdentity) throws {
        let user = identity.user
        let name = settings.containerName(for: user)
        try ensureNetwork()
        let volume = settings.volumeName(for: user)
        do {
            _ = try docker.inspectVolume(volume)
        } catch DockerError.notFound {
            try docker.createVolume(name: volume, labels: settings.labels(for: user))
        }
        do {
            _ = try docker.inspectImage(settings.image)
        } catch DockerError.notFound {
            throw WorkspaceError.imageMissing(settings.image)
        }
        let spec = containerSpec(for: user, registration: identity.registration)
        let id: String
        do {
            id = try docker.createContainer(name: name, spec: spec)
        } catch DockerError.conflict {
            // Another gateway process created it first: it injects the identity itself.
            return
        }
        do {
            try docker.uploadArchive(container: id, path: "/", tar: identity.metadataArchive())
        } catch {
            // Without its identity the container's sshd cannot let the gateway in, and the
            // next login would find the container and only start it: remove it, so that the
            // next login creates it again. The home volume stays.
            try? docker.removeContainer(id, force: true)
            throw error
        }
    }

    /// The container a user gets: their volume as home, limits, and only sshd's capabilities.
    public func containerSpec(for user: UserName, image: String? = nil,
                              registration: WorkspaceRegistration? = nil) -> ContainerSpec {
        let host = HostConfig(
            memory: settings.memoryBytes,
            memorySwap: settings.memoryBytes,
            pidsLimit: settings.pidsLimit,
            cpuShares: settings.cpuShares,
            capDrop: ["ALL"],
            capAdd: WorkspaceSettings.sshdCapabilities,
            securityOpt: ["no-new-privileges"],
            mounts: [Mount(volume: settings.volumeName(for: user), at: settings.homeDirectory(for: user))],
            networkMode: settings.networkName
        )
        return ContainerSpec(image: image ?? settings.image, hostname: settings.hostname(for: user),
                             labels: settings.labels(for: user, registration: registration?.id), hostConfig: host,
                             networkingConfig: NetworkingConfig(network: settings.networkName))
    }

    /// Creates the workspace network unless it exists. `serve` calls it at start, so the
    /// egress rules for its bridge are in place before the first workspace joins it.
    public func ensureNetwork() throws {
        networkLock.lock()
        defer { networkLock.unlock() }
        if networkReady { return }
        try mapEngineErrors {
            do {
                _ = try docker.inspectNetwork(settings.networkName)
            } catch DockerError.notFound {
                do {
                    try docker.createNetwork(name: settings.networkName,
                                             options: ["com.docker.network.bridge.enable_icc": "false"],
                                             labels: [WorkspaceLabel.instance: settings.prefix])
                } catch DockerError.conflict {
                    // Created meanwhile by another process.
                }
            }
        }
        networkReady = true
    }

    /// Creates the workspace network if missing and returns its bridge on this host.
    public func prepareNetwork() throws -> String? {
        try ensureNetwork()
        return try networkInterface()
    }

    /// The host interface of the workspace network (which may have been recreated since
    /// the last call: it is looked up each time).
    public func networkInterface() throws -> String {
        try mapEngineErrors { try docker.inspectNetwork(settings.networkName).bridgeInterface }
    }

    /// Waits until the container's sshd answers; fails within half a second when the
    /// container exits.
    func waitForSSHD(container: String, id: String, address: String) throws {
        try SSHBannerProbe.waitUntilAnswering(host: address, timeout: settings.sshdReadyTimeout, workspace: container) {
            let state = try docker.inspectContainer(id).state
            guard state.running else { throw WorkspaceError.exitedAtStart(container: container, exitCode: state.exitCode) }
        }
    }

    func mapEngineErrors<T>(_ body: () throws -> T) throws -> T { try Workspaces.mapEngineErrors(body) }
}

/// Runs `body`, turning the engine's errors into `WorkspaceError.engine`.
func mapEngineErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as DockerError {
        throw WorkspaceError.engine(error)
    }
}
