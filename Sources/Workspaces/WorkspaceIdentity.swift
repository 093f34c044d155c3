import DockerEngine
import Foundation
import UserNames

/// What a workspace container is told about its user before its first start.
public struct WorkspaceIdentity: Sendable {
    public let user: UserName
    public let uid: Int
    /// The gateway's upstream public key, the only key the workspace's sshd accepts.
    public let gatewayPublicKey: String
    /// The workspace's own sshd host key (private, OpenSSH text), pinned by the gateway.
    public let hostKeyPEM: String
    /// This registration of the user name. The container is labelled with it, and one made
    /// for another registration belongs to an earlier owner of the name; nil when unknown
    /// (then any container of the name is taken as theirs).
    public let registration: WorkspaceRegistration?

    public init(user: UserName, uid: Int, gatewayPublicKey: String, hostKeyPEM: String,
                registration: WorkspaceRegistration? = nil) {
        self.user = user
        self.uid = uid
        self.gatewayPublicKey = gatewayPublicKey
        self.hostKeyPEM = hostKeyPEM
        self.registration = registration
    }

    /// True when `container` was made for an earlier owner of the name: labelled with another
    /// registration, or, made before registrations were labelled, created before this one.
    func isEarlierOwners(_ container: ContainerDetails) -> Bool {
        guard let registration else { return false }
        if let label = container.config.labels?[WorkspaceLabel.registration] { return label != registration.id }
        guard let created = container.createdDate else { return false }
        // Whole seconds on both sides: a container made in the second of the registration is theirs.
        return created.timeIntervalSince1970.rounded(.down) < registration.since.timeIntervalSince1970.rounded(.down)
    }

    /// The `/etc/devenv` files of the workspace image contract (workspace/README.md), as a tar for `/`.
    func metadataArchive() -> [UInt8] {
        var tar = TarWriter()
        tar.addDirectory("etc/devenv", mode: 0o755)
        tar.addFile("etc/devenv/user", contents: user.value + "\n", mode: 0o644)
        tar.addFile("etc/devenv/uid", contents: "\(uid)\n", mode: 0o644)
        tar.addFile("etc/devenv/authorized_keys", contents: gatewayPublicKey + "\n", mode: 0o644)
        tar.addFile("etc/devenv/ssh_host_ed25519_key", contents: hostKeyPEM.hasSuffix("\n") ? hostKeyPEM : hostKeyPEM + "\n",
                    mode: 0o600)
        return tar.finished()
    }
}

/// One registration of a user name: every `adduser` of the name makes a new one.
public struct WorkspaceRegistration: Sendable, Equatable {
    /// The registry's id for it.
    public let id: String
    /// When the name was registered.
    public let since: Date

    public init(id: String, since: Date) {
        self.id = id
        self.since = since
    }
}
