import DockerEngine
import Foundation
import Tar
import UserNames

/// Reading, replacing and removing users' home volumes through the Engine's archive API,
/// with the user's own container or, when there is none, a temporary helper container that
/// mounts the volume and is never started.
extension WorkspaceManager {
    /// Label of helper containers (never started; they only give the archive API a mount).
    public static let helperLabel = "devenv.role"

    public func resources(of user: UserName) throws -> WorkspaceResources {
        try mapEngineErrors {
            let container: ContainerDetails?
            do { container = try docker.inspectContainer(settings.containerName(for: user)) } catch DockerError.notFound { container = nil }
            return WorkspaceResources(hasContainer: container != nil, isRunning: container?.state.running ?? false,
                                      volumeExists: try volumeExists(for: user), image: container?.config.image)
        }
    }

    /// Streams the user's home as the engine's tar (entries `<user>/…`, owners numeric) into
    /// `sink`, from their container (running or not) or a helper. False, with nothing
    /// streamed, when the user has no home volume.
    @discardableResult
    public func readHome(of user: UserName, into sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        try mapEngineErrors {
            guard try volumeExists(for: user) else { return false }
            let path = settings.homeDirectory(for: user)
            do {
                try docker.downloadArchive(container: settings.containerName(for: user), path: path, into: sink)
            } catch DockerError.notFound {
                // No container (or it went away meanwhile): read through a helper.
                try withHelper(for: user, name: "\(settings.containerName(for: user))-read-\(Self.randomSuffix())") {
                    try docker.downloadArchive(container: $0, path: path, into: sink)
                }
            }
            return true
        }
    }

    /// True when the user's home volume exists and holds anything at all (a home filled
    /// from the skeleton counts). Reads only the first entries of the home.
    public func homeHasData(_ user: UserName) throws -> Bool {
        final class Probe: TarParserDelegate {
            var entries = 0
            func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws {
                entries += 1
                if entries > 1 { throw Found() }
            }
            func content(_ bytes: UnsafeRawBufferPointer) throws {}
            func entryEnded(padding: UnsafeRawBufferPointer) throws {}
            func archiveEnded() throws {}
        }
        struct Found: Error {}
        let probe = Probe()
        let parser = TarParser(delegate: probe)
        do {
            try readHome(of: user) { try parser.feed($0) }
        } catch let error as WorkspaceError {
            // The probe aborts the transfer once a second entry (anything in the home) shows up.
            guard probe.entries > 1 else { throw error }
        }
        return probe.entries > 1
    }

    /// Replaces the user's home with the tar that `source` supplies (entries `<user>/…`):
    /// their container is removed, the home volume removed and created empty, and the tar
    /// written into it. While it is written, a helper container holds the user's container
    /// name, so a login cannot start a workspace on a half-written home (the helper cannot
    /// be started). The next login creates a new container.
    /// `beforeWrite` runs once the helper holds the name (e.g. to register the user).
    public func replaceHome(of user: UserName, beforeWrite: () throws -> Void,
                            from source: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        try locks.withLock(user, for: "being restored") {
            try mapEngineErrors {
                try removeContainerLocked(of: user)
                let volume = settings.volumeName(for: user)
                if try volumeExists(for: user) { try docker.removeVolume(volume) }
                try docker.createVolume(name: volume, labels: settings.labels(for: user))
                do {
                    try withHelper(for: user, name: settings.containerName(for: user)) { helper in
                        try beforeWrite()
                        try docker.uploadArchive(container: helper, path: "/home", from: source)
                    }
                } catch DockerError.conflict(let message) where message.contains("already in use") {
                    throw WorkspaceError.busy(user: user.value, detail: "a login created a workspace meanwhile")
                }
            }
        }
    }

    /// Runs `body` holding the user's workspace lock, so no login starts the workspace and
    /// no other operation touches it meanwhile; the manager's own operations called from
    /// `body` on this thread run under the same hold.
    public func exclusively<T>(_ user: UserName, for purpose: String, _ body: () throws -> T) throws -> T {
        try locks.withLock(user, for: purpose, body)
    }

    /// Stops and removes the user's container; false when there was none. The volume stays.
    @discardableResult
    public func removeContainer(of user: UserName) throws -> Bool {
        try locks.withLock(user, for: "being removed") { try mapEngineErrors { try removeContainerLocked(of: user) } }
    }

    /// Removes the user's home volume (after their container); false when there was none.
    @discardableResult
    public func removeHomeVolume(of user: UserName) throws -> Bool {
        try locks.withLock(user, for: "being removed") {
            try mapEngineErrors {
                try removeContainerLocked(of: user)
                do {
                    try docker.removeVolume(settings.volumeName(for: user))
                    return true
                } catch DockerError.notFound {
                    return false
                }
            }
        }
    }

    // MARK: - Internals

    func volumeExists(for user: UserName) throws -> Bool {
        do {
            _ = try docker.inspectVolume(settings.volumeName(for: user))
            return true
        } catch DockerError.notFound {
            return false
        }
    }

    /// Stops the container (its sshd ends the sessions cleanly), then removes it.
    @discardableResult
    private func removeContainerLocked(of user: UserName) throws -> Bool {
        let name = settings.containerName(for: user)
        do {
            try docker.stopContainer(name, timeout: 10)
            try docker.removeContainer(name, force: true)
            return true
        } catch DockerError.notFound {
            return false
        }
    }

    /// Runs `body` with a created, never started container named `name` that mounts the
    /// user's home volume, and removes it afterwards. Its entrypoint does not exist, so the
    /// engine refuses to start it, and the error names the reason.
    private func withHelper<T>(for user: UserName, name: String, _ body: (String) throws -> T) throws -> T {
        do {
            _ = try docker.inspectImage(settings.image)
        } catch DockerError.notFound {
            throw WorkspaceError.imageMissing(settings.image)
        }
        let spec = ContainerSpec(
            image: settings.image, labels: [WorkspaceLabel.instance: settings.prefix, Self.helperLabel: "helper"],
            entrypoint: ["/devenv-gw-helper-for-a-backup-or-restore"],
            hostConfig: HostConfig(capDrop: ["ALL"], securityOpt: ["no-new-privileges"],
                                   mounts: [Mount(volume: settings.volumeName(for: user), at: settings.homeDirectory(for: user))],
                                   networkMode: "none"))
        let id = try docker.createContainer(name: name, spec: spec)
        defer { try? docker.removeContainer(id, force: true) }
        return try body(id)
    }

    static func randomSuffix() -> String {
        String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }
}
