import Foundation
import UserNames

/// How workspaces are made: names, image, limits. Every field has the product's default.
public struct WorkspaceSettings: Sendable {
    /// Prefix of every container, volume and network name, so two gateways can share an engine.
    public var prefix: String
    /// The workspace image new containers are created from.
    public var image: String
    public var memoryBytes: Int64
    public var pidsLimit: Int64
    public var cpuShares: Int
    /// How long a started workspace may take until its sshd answers.
    public var sshdReadyTimeout: TimeInterval
    /// Where the per-user lock files live, shared by every process of this instance (the
    /// state directory's `locks`); nil locks within this process only.
    public var lockDirectory: String?
    /// How long a login waits for another operation on the same workspace (a restore, an
    /// upgrade) before it is told the workspace is busy.
    public var loginLockWait: TimeInterval = 15

    /// Exactly what Debian's sshd needs to run sessions (see design notes); everything else is dropped.
    public static let sshdCapabilities = ["SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "KILL", "AUDIT_WRITE"]

    public init(prefix: String = "devenv", image: String = "devenv-workspace:latest",
                memoryBytes: Int64 = 512 * 1024 * 1024, pidsLimit: Int64 = 1024, cpuShares: Int = 1024,
                sshdReadyTimeout: TimeInterval = 20) {
        self.prefix = prefix
        self.image = image
        self.memoryBytes = memoryBytes
        self.pidsLimit = pidsLimit
        self.cpuShares = cpuShares
        self.sshdReadyTimeout = sshdReadyTimeout
    }

    /// The bridge network all workspaces join, with inter-container traffic disabled.
    public var networkName: String { prefix }
    public func containerName(for user: UserName) -> String { "\(prefix)-\(user)" }
    public func volumeName(for user: UserName) -> String { "\(prefix)-\(user)-home" }
    public func hostname(for user: UserName) -> String { "\(prefix)-\(user)" }
    public func homeDirectory(for user: UserName) -> String { "/home/\(user)" }

    /// Labels put on every container and volume of `user`; containers also carry the
    /// registration they were made for.
    public func labels(for user: UserName, registration: String? = nil) -> [String: String] {
        var labels = [WorkspaceLabel.user: user.value, WorkspaceLabel.instance: prefix]
        if let registration { labels[WorkspaceLabel.registration] = registration }
        return labels
    }
}

/// Label keys the gateway sets on what it creates.
public enum WorkspaceLabel {
    public static let user = "devenv.user"
    public static let instance = "devenv.instance"
    /// The registration of the user name a container was made for (see `WorkspaceIdentity`).
    public static let registration = "devenv.registration"
}
