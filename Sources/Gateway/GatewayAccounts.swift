import SSHKeys
import UserNames
import Workspaces

/// What the gateway needs to know about users; the registry provides it.
public protocol GatewayAccounts: Sendable {
    /// Whether the key (type and base64 blob) may log in as `user` right now, and under
    /// which registration of the name. Throws when the answer cannot be read.
    func standing(user: UserName, type: String, base64: String) throws -> KeyStanding
    /// The user's uid, workspace host key and registration, or nil when the user is not registered.
    func workspaceAccount(for user: UserName) throws -> WorkspaceAccount?
    /// A number that moves whenever a user or key is removed, by any process sharing the
    /// registry. Open connections re-check their login only when it moved.
    func revocationCount() throws -> Int
}

/// Where a key stands with a user name.
public enum KeyStanding: Sendable, Equatable {
    /// Registered to the user; `registration` names the current registration of the name.
    case registered(registration: String)
    /// The name is not registered (removed, or never was).
    case userNotRegistered
    /// The name is registered, but this key is not among its keys.
    case keyNotRegistered
}

/// A registered user's facts needed to bring up and reach their workspace.
public struct WorkspaceAccount: Sendable {
    public let uid: Int
    public let hostKey: PrivateKey
    /// This registration of the name: a workspace made for another one belongs to an
    /// earlier owner of the name.
    public let registration: WorkspaceRegistration

    public init(uid: Int, hostKey: PrivateKey, registration: WorkspaceRegistration) {
        self.uid = uid
        self.hostKey = hostKey
        self.registration = registration
    }
}
