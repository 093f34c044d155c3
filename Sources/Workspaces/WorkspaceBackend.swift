import DockerEngine
import Foundation
import UserNames

/// Where workspaces run: one Docker engine (`WorkspaceManager`) or a Docker Swarm
/// (`SwarmWorkspaces`). The gateway and every admin command go through this seam, so
/// they do not care which one the config chose.
///
/// Every call blocks (Engine API calls over libcurl); run them on threads you own, never
/// on Swift's cooperative pool. Operations on one user are serialised by the backend,
/// across processes of the instance, through its per-user locks.
public protocol WorkspaceBackend: AnyObject, Sendable {
    /// How workspaces are made: names, image, limits.
    var settings: WorkspaceSettings { get }
    /// The engine this backend asks (for a swarm: the manager), for `status`.
    var engine: DockerClient { get }

    /// Returns a running workspace for the user with its sshd answering, creating what is
    /// missing. Throws `WorkspaceError.locked` when another operation holds the workspace
    /// longer than `settings.loginLockWait`.
    func ensure(_ identity: WorkspaceIdentity) throws -> WorkspaceEndpoint
    /// Stops the user's workspace if `isIdle` still holds under the user's lock; false when
    /// nothing was running.
    @discardableResult
    func stopIfIdle(_ user: UserName, timeout: Int, isIdle: () -> Bool) throws -> Bool
    /// Starts the user's existing workspace again (after a backup stopped it).
    func start(_ user: UserName) throws
    /// Every workspace of this instance, with or without a container.
    func list() throws -> [WorkspaceStatus]
    /// What exists of the user's workspace.
    func resources(of user: UserName) throws -> WorkspaceResources

    /// Streams the user's home as a tar (entries `<user>/…`) into `sink`; false when the
    /// user has no home volume.
    @discardableResult
    func readHome(of user: UserName, into sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Bool
    /// True when the user's home volume holds anything.
    func homeHasData(_ user: UserName) throws -> Bool
    /// Replaces the user's home with the tar `source` supplies; the next login gets a new
    /// container. `beforeWrite` runs once nothing can start the workspace meanwhile.
    func replaceHome(of user: UserName, beforeWrite: () throws -> Void,
                     from source: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws
    /// Runs `body` holding the user's workspace lock, so no login or other operation touches
    /// the workspace meanwhile; the backend's own operations called from `body` on this
    /// thread run under the same hold.
    func exclusively<T>(_ user: UserName, for purpose: String, _ body: () throws -> T) throws -> T
    /// Removes the user's container (service); the home volume stays. False when there was none.
    @discardableResult
    func removeContainer(of user: UserName) throws -> Bool
    /// Removes the user's container and home volume; false when there was no volume.
    @discardableResult
    func removeHomeVolume(of user: UserName) throws -> Bool

    /// The user's processes in their running workspace; nil when it is not running.
    func activity(of user: UserName, uid: Int) throws -> WorkspaceActivity?
    /// Moves the user's workspace to `image`, keeping home, identity and limits.
    func upgrade(_ identity: WorkspaceIdentity, to image: String, endingSessions: Bool) throws -> UpgradeOutcome

    /// Creates the network workspaces join if missing and returns the interface on this
    /// host that the egress rules guard; nil when workspaces do not run on this host.
    func prepareNetwork() throws -> String?
}

extension WorkspaceBackend {
    /// Stops the user's workspace; false when nothing was running.
    @discardableResult
    public func stop(_ user: UserName, timeout: Int = 10) throws -> Bool {
        try stopIfIdle(user, timeout: timeout) { true }
    }
}

/// What exists of one user's workspace, whichever backend holds it.
public struct WorkspaceResources: Sendable {
    /// True when the user has a container (or, on a swarm, a service).
    public let hasContainer: Bool
    public let isRunning: Bool
    public let volumeExists: Bool
    /// The image the container was created from, when there is one.
    public let image: String?

    public init(hasContainer: Bool, isRunning: Bool, volumeExists: Bool, image: String?) {
        self.hasContainer = hasContainer
        self.isRunning = isRunning
        self.volumeExists = volumeExists
        self.image = image
    }
}
