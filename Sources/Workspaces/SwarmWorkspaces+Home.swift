import DockerEngine
import Foundation
import UserNames

/// Homes, removal and upgrades on a swarm. A home volume lives on one node, so every home
/// operation runs today's engine code (archive API, helper containers) against the engine
/// of that node: the manager's API does not serve another node's archive.
extension SwarmWorkspaces {
    @discardableResult
    public func readHome(of user: UserName, into sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        guard let node = try homeNode(of: user) else { return false }
        return try nodeManager(node).readHome(of: user, into: sink)
    }

    public func homeHasData(_ user: UserName) throws -> Bool {
        guard let node = try homeNode(of: user) else { return false }
        return try nodeManager(node).homeHasData(user)
    }

    /// Removes the user's service, then replaces the home on the node that holds it (a new
    /// user: the node a first login would get). The next login creates a service there.
    public func replaceHome(of user: UserName, beforeWrite: () throws -> Void,
                            from source: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        try locks.withLock(user, for: "being restored") {
            let node = try mapEngineErrors { () -> DockerClient in
                if let node = try homeNode(of: user) {
                    try removeService(of: user, on: node)
                    return node
                }
                return try nodeEngine(hostname: try nodeForNewWorkspace(of: user).hostname)
            }
            try nodeManager(node).replaceHome(of: user, beforeWrite: beforeWrite, from: source)
        }
    }

    @discardableResult
    public func removeContainer(of user: UserName) throws -> Bool {
        try locks.withLock(user, for: "being removed") {
            try mapEngineErrors {
                guard try service(of: user) != nil else { return false }
                try removeService(of: user, on: try homeNode(of: user))
                return true
            }
        }
    }

    @discardableResult
    public func removeHomeVolume(of user: UserName) throws -> Bool {
        try locks.withLock(user, for: "being removed") {
            try mapEngineErrors {
                guard let node = try homeNode(of: user) else {
                    if try service(of: user) != nil { try removeService(of: user, on: nil) }
                    return false
                }
                try removeService(of: user, on: node)
                do {
                    try node.removeVolume(settings.volumeName(for: user))
                    return true
                } catch DockerError.notFound {
                    return false
                }
            }
        }
    }

    /// Moves the service to `image` (a service update: constraint, volume and limits stay)
    /// once the image is on the workspace's node; a running workspace must come up again
    /// on the new image, or the service is set back to the old one.
    public func upgrade(_ identity: WorkspaceIdentity, to image: String, endingSessions: Bool) throws -> UpgradeOutcome {
        let user = identity.user
        return try locks.withLock(user, for: "being upgraded") {
            try mapEngineErrors {
                guard let service = try service(of: user) else { return .skipped("no service; the next login creates one") }
                let node = try nodeEngine(for: service)
                let imageID: String
                do { imageID = try node.inspectImage(image).id } catch DockerError.notFound {
                    throw WorkspaceError.imageMissing(image)
                }
                if service.labels[SwarmLabel.imageID] == imageID { return .skipped("already runs \(image)") }
                if !endingSessions, let activity = try activity(of: user, uid: identity.uid), !activity.isIdle {
                    return .skipped("in use (\(activity.description)); --now ends them")
                }
                let running = (service.replicas ?? 0) > 0
                try setImage(of: service.name, to: image, id: imageID)
                if running {
                    do {
                        // Running is not enough: the new task's sshd must answer, as the
                        // engine backend asks of a replacement before it switches.
                        let task = try waitForTask(of: service.name, image: image)
                        guard let container = task.containerID else {
                            throw WorkspaceError.engine(.badResponse("the task of \(service.name) has no container"))
                        }
                        let address = try address(of: task, service: service.name, details: node.inspectContainer(container))
                        try waitForSSHD(of: service.name, task: task, address: address)
                    } catch {
                        var reason = "\(error)"
                        do {
                            try setImageBack(of: service.name, to: service.image, id: service.labels[SwarmLabel.imageID])
                        } catch let rollback {
                            reason += "; setting the service back to \(service.image) failed too: \(rollback)"
                        }
                        throw WorkspaceError.replacementFailed(image: image, reason: reason, log: "")
                    }
                }
                return .upgraded(running: running, previousImage: service.image)
            }
        }
    }

    // MARK: - Internals

    /// The engine of the node that holds (or will hold) the user's home: the node the
    /// service is pinned to, else the node where the volume is; nil when neither exists.
    func homeNode(of user: UserName) throws -> DockerClient? {
        try mapEngineErrors {
            if let service = try service(of: user) { return try nodeEngine(for: service) }
            return try nodeHoldingVolume(of: user).map(nodeEngine(hostname:))
        }
    }

    /// Removes the user's service and its identity secret, and waits until the node has
    /// removed its containers, so the home volume is free.
    func removeService(of user: UserName, on node: DockerClient?) throws {
        let name = settings.containerName(for: user)
        let secret = try service(of: user)?.labels[SwarmLabel.identitySecret]
        try removeServiceAndWait(name)
        if let node {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline,
                  !(try node.listContainers(labels: ["com.docker.swarm.service.name=\(name)"])).isEmpty {
                usleep(100_000)
            }
        }
        guard let secret, let id = try engine.secretID(named: secret) else { return }
        // The manager refuses (409) while tasks of the removed service still refer to it.
        let deadline = Date().addingTimeInterval(15)
        while true {
            do {
                return try engine.removeSecret(id)
            } catch DockerError.notFound {
                return
            } catch DockerError.conflict where Date() < deadline {
                usleep(200_000)
            }
        }
    }

    /// `setImage` while the swarm is still updating the service for the failed image: each
    /// of its status changes bumps the service's version, and an update read at an older one
    /// is refused ("update out of sequence"), so it is read and sent again a few times.
    private func setImageBack(of service: String, to image: String, id: String?) throws {
        var attempt = 1
        while true {
            do {
                return try setImage(of: service, to: image, id: id)
            } catch let error as DockerError {
                guard attempt < 10 else { throw error }
                attempt += 1
                usleep(300_000)
            }
        }
    }

    private func setImage(of service: String, to image: String, id: String?) throws {
        try engine.updateService(service) { spec in
            var template = spec["TaskTemplate"] as? [String: Any] ?? [:]
            var container = template["ContainerSpec"] as? [String: Any] ?? [:]
            container["Image"] = image
            template["ContainerSpec"] = container
            template["ForceUpdate"] = ((template["ForceUpdate"] as? Int) ?? 0) + 1
            spec["TaskTemplate"] = template
            var labels = spec["Labels"] as? [String: String] ?? [:]
            labels[SwarmLabel.imageID] = id
            spec["Labels"] = labels
        }
    }
}
