import UserNames

/// What a workspace container is told about its user before its first start.
public struct WorkspaceIdentity: Sendable {
    public let user: UserName
    public let uid: Int
    /// The gateway's upstream public key, the only key the workspace's sshd accepts.
    public let gatewayPublicKey: String
    /// The workspace's own sshd host key (private, OpenSSH text), pinned by the gateway.
    public let hostKeyPEM: String

    public init(user: UserName, uid: Int, gatewayPublicKey: String, hostKeyPEM: String) {
        self.user = user
        self.uid = uid
        self.gatewayPublicKey = gatewayPublicKey
        self.hostKeyPEM = hostKeyPEM
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
