import DockerEngine
import Foundation
import UserNames

/// What a user is doing in their running workspace, read from the container's process list.
public struct WorkspaceActivity: Sendable, Equatable {
    /// sshd connection processes of the user (`sshd: alice@pts/0`, `sshd: alice@notty`).
    public let connections: Int
    /// Every process running with the user's uid (shells, editors, tmux, builds, …).
    public let processes: Int

    public var isIdle: Bool { connections == 0 && processes == 0 }

    /// Counts `user`'s sshd connections and other processes among a container's processes.
    init(of user: UserName, uid: Int, among all: [ContainerProcess]) {
        let own = all.filter { $0.uid == uid }
        connections = all.filter { $0.command.hasPrefix("sshd: \(user)@") }.count
        processes = own.count - connections
    }

    public init(connections: Int, processes: Int) {
        self.connections = connections
        self.processes = processes
    }

    public var description: String {
        let plural = { (count: Int, noun: String) in "\(count) \(noun)\(count == 1 ? "" : "s")" }
        return "\(plural(connections, "ssh connection")) and \(plural(processes, "process"))"
    }
}

/// The result of one upgrade that did not fail.
public enum UpgradeOutcome: Sendable, Equatable {
    /// The container was replaced; `running` says whether the new one runs (as the old did),
    /// `previousImage` what the old one was created from (for the audit trail).
    case upgraded(running: Bool, previousImage: String)
    /// Left as it was, for the reason given.
    case skipped(String)
}

extension WorkspaceManager {
    /// The user's processes in their running container; nil when it is not running.
    public func activity(of user: UserName, uid: Int) throws -> WorkspaceActivity? {
        try mapEngineErrors {
            let processes: [ContainerProcess]
            do {
                processes = try docker.containerProcesses(settings.containerName(for: user))
            } catch DockerError.notFound {
                return nil
            } catch DockerError.conflict {
                return nil  // not running
            }
            return WorkspaceActivity(of: user, uid: uid, among: processes)
        }
    }

    /// Replaces the user's container with one from `image`, keeping the home volume, the
    /// uid, the workspace host key (the identity is injected again) and the old container's
    /// limits. The new container is created under a temporary name and must come up (sshd
    /// answering) before the old one is touched; otherwise it is removed and the old one
    /// stays as it was. A stopped workspace gets a stopped new container. A running one
    /// with activity is skipped unless `endingSessions`, which stops the old container and
    /// so ends its sessions and processes.
    public func upgrade(_ identity: WorkspaceIdentity, to image: String, endingSessions: Bool) throws -> UpgradeOutcome {
        let user = identity.user
        return try locks.withLock(user, for: "being upgraded") {
            try mapEngineErrors {
                let imageID: String
                do { imageID = try docker.inspectImage(image).id } catch DockerError.notFound {
                    throw WorkspaceError.imageMissing(image)
                }
                let name = settings.containerName(for: user)
                let old: ContainerDetails
                do { old = try docker.inspectContainer(name) } catch DockerError.notFound {
                    return .skipped("no container; the next login creates one")
                }
                if old.config.labels?[Self.helperLabel] != nil { return .skipped("a restore is writing the home") }
                if old.imageID == imageID { return .skipped("already runs \(image)") }
                let wasRunning = old.state.running
                if let busy = try busyReason(user, uid: identity.uid, ending: endingSessions) { return .skipped(busy) }

                let fresh = try startReplacement(for: identity, image: image, limits: old.hostConfig, keepRunning: wasRunning)
                // Check again just before the switch: someone may have logged in meanwhile.
                if let busy = try busyReason(user, uid: identity.uid, ending: endingSessions) {
                    try? docker.removeContainer(fresh, force: true)
                    return .skipped(busy)
                }
                let aside = "\(name)-replaced-\(Self.randomSuffix())"
                try docker.renameContainer(old.id, to: aside)
                do {
                    try docker.renameContainer(fresh, to: name)
                } catch {
                    try? docker.removeContainer(fresh, force: true)
                    try? docker.renameContainer(old.id, to: name)
                    throw WorkspaceError.busy(user: user.value, detail: "a login created a workspace during the switch")
                }
                if wasRunning { try docker.stopContainer(old.id, timeout: 10) }
                try docker.removeContainer(old.id, force: true)
                return .upgraded(running: wasRunning, previousImage: old.config.image)
            }
        }
    }

    /// Why a running workspace must be left alone, or nil.
    private func busyReason(_ user: UserName, uid: Int, ending: Bool) throws -> String? {
        guard !ending, let activity = try activity(of: user, uid: uid), !activity.isIdle else { return nil }
        return "in use (\(activity.description)); --now ends them"
    }

    /// Creates the new container under a temporary name with the identity injected, starts
    /// it and waits for its sshd; stops it again unless `keepRunning`. Removes it and
    /// throws when it does not come up.
    private func startReplacement(for identity: WorkspaceIdentity, image: String, limits: HostConfig,
                                  keepRunning: Bool) throws -> String {
        var spec = containerSpec(for: identity.user, image: image, registration: identity.registration)
        spec.hostConfig.memory = limits.memory
        spec.hostConfig.memorySwap = limits.memorySwap
        spec.hostConfig.pidsLimit = limits.pidsLimit
        spec.hostConfig.cpuShares = limits.cpuShares
        let temporary = "\(settings.containerName(for: identity.user))-upgrade-\(Self.randomSuffix())"
        let id = try docker.createContainer(name: temporary, spec: spec)
        do {
            try docker.uploadArchive(container: id, path: "/", tar: identity.metadataArchive())
            try docker.startContainer(id)
            let details = try docker.inspectContainer(id)
            guard details.state.running, let address = details.ipAddress(on: settings.networkName) else {
                throw WorkspaceError.exitedAtStart(container: temporary, exitCode: details.state.exitCode)
            }
            try waitForSSHD(container: temporary, id: id, address: address)
            if !keepRunning { try docker.stopContainer(id, timeout: 10) }
            return id
        } catch {
            let log = (try? docker.containerLogs(id, tail: 5))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            try? docker.removeContainer(id, force: true)
            let reason: String
            switch error {
            case WorkspaceError.exitedAtStart(_, let code): reason = "it exited at start with code \(code)"
            case WorkspaceError.sshdNotReady: reason = "its sshd did not answer within \(Int(settings.sshdReadyTimeout)) s"
            default: reason = "\(error)"
            }
            throw WorkspaceError.replacementFailed(image: image, reason: reason, log: log)
        }
    }
}
