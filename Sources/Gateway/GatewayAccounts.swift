import SSHKeys
import UserNames

/// What the gateway needs to know about users; the registry provides it.
public protocol GatewayAccounts: Sendable {
    /// True when the key (type and base64 blob) is registered to `user` right now.
    func isKeyRegistered(user: UserName, type: String, base64: String) -> Bool
    /// The user's uid and workspace host key, or nil when the user is not registered.
    func workspaceAccount(for user: UserName) throws -> WorkspaceAccount?
}

/// A registered user's facts needed to bring up and reach their workspace.
public struct WorkspaceAccount: Sendable {
    public let uid: Int
    public let hostKey: PrivateKey

    public init(uid: Int, hostKey: PrivateKey) {
        self.uid = uid
        self.hostKey = hostKey
    }
}
