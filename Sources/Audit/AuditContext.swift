import Foundation

/// One client connection to the gateway. Its session id is on every event the connection
/// causes: authentication, channels, forwarding and the workspace it started.
public struct AuditConnection: Sendable, Equatable {
    public var sessionID: String
    public var sourceAddress: String
    public var sourcePort: Int

    public init(sessionID: String = AuditConnection.newSessionID(), sourceAddress: String, sourcePort: Int) {
        self.sessionID = sessionID
        self.sourceAddress = sourceAddress
        self.sourcePort = sourcePort
    }

    /// A fresh session id: 16 random hex digits (64 bits).
    public static func newSessionID() -> String {
        String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
    }
}

/// A public key as the audit trail names it.
public struct AuditKey: Sendable, Equatable {
    /// The key type, e.g. `ssh-ed25519`.
    public var type: String
    /// `SHA256:…` as OpenSSH prints it.
    public var fingerprint: String
    public var comment: String

    public init(type: String, fingerprint: String, comment: String = "") {
        self.type = type
        self.fingerprint = fingerprint
        self.comment = comment
    }
}

/// What a channel does: the DEVENV_CHANNEL_KIND values.
public enum AuditChannelKind: String, Sendable {
    case shell, exec, subsystem, forwarding
}

/// One channel of a connection (a "session" in SSH terms).
public struct AuditChannel: Sendable, Equatable {
    /// The channel's number within its connection.
    public var id: Int
    public var kind: AuditChannelKind
    /// The command of an exec channel, as the client sent it.
    public var command: String?
    /// The subsystem name, e.g. `sftp`.
    public var subsystem: String?
    /// The terminal type of a pty request, as the client sent it.
    public var term: String?
    /// What a forwarding channel connects.
    public var forwarding: AuditForwarding?

    public init(id: Int, kind: AuditChannelKind, command: String? = nil, subsystem: String? = nil,
                term: String? = nil, forwarding: AuditForwarding? = nil) {
        self.id = id
        self.kind = kind
        self.command = command
        self.subsystem = subsystem
        self.term = term
        self.forwarding = forwarding
    }
}

/// A forwarding request or channel: the DEVENV_FORWARD_* fields.
public struct AuditForwarding: Sendable, Equatable {
    /// The SSH request or channel type.
    public enum Kind: String, Sendable {
        /// `ssh -L`: a `direct-tcpip` channel to host:port.
        case local = "direct-tcpip"
        /// `ssh -R`: a `tcpip-forward` request to listen on host:port.
        case remote = "tcpip-forward"
        /// A connection arriving at a remote forward (`forwarded-tcpip`).
        case remoteConnection = "forwarded-tcpip"
        /// `ssh -L` to a socket path: `direct-streamlocal@openssh.com`.
        case localSocket = "direct-streamlocal"
        /// `ssh -R` of a socket path: `streamlocal-forward@openssh.com`.
        case remoteSocket = "streamlocal-forward"
        /// Agent forwarding (`auth-agent-req@openssh.com`, `auth-agent@openssh.com`).
        case agent = "auth-agent"
        case x11 = "x11"
    }

    public var kind: Kind
    /// Target host (local) or bind address (remote).
    public var host: String?
    public var port: Int?
    /// Socket path for the streamlocal kinds.
    public var path: String?
    /// Where a `direct-tcpip` channel says it comes from.
    public var originHost: String?
    public var originPort: Int?

    public init(kind: Kind, host: String? = nil, port: Int? = nil, path: String? = nil,
                originHost: String? = nil, originPort: Int? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.path = path
        self.originHost = originHost
        self.originPort = originPort
    }
}

/// A user's workspace: the container and, where it matters, its image and home volume.
public struct AuditWorkspace: Sendable, Equatable {
    public var user: String
    public var container: String
    public var image: String?
    public var volume: String?

    public init(user: String, container: String, image: String? = nil, volume: String? = nil) {
        self.user = user
        self.container = container
        self.image = image
        self.volume = volume
    }
}

/// The operating-system user who ran an admin command.
public struct AuditAdmin: Sendable, Equatable {
    public var uid: UInt32
    /// The account name, when the passwd database knows the uid.
    public var name: String?
    /// `SUDO_USER` when the command ran under sudo (informational: sudo sets it, the
    /// caller's environment could too; journald's own `_UID` field is the trusted one).
    public var sudoUser: String?

    public init(uid: UInt32, name: String?, sudoUser: String? = nil) {
        self.uid = uid
        self.name = name
        self.sudoUser = sudoUser
    }

    /// The user this process runs as (`getuid()`), named from the passwd database.
    public static var current: AuditAdmin {
        let uid = getuid()
        var name: String?
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let pwName = entry.pw_name {
            name = String(cString: pwName)
        }
        let sudo = ProcessInfo.processInfo.environment["SUDO_USER"].flatMap { $0.isEmpty ? nil : $0 }
        return AuditAdmin(uid: uid, name: name, sudoUser: sudo)
    }

    /// "root (uid 0)", "uid 1234", "root (uid 0) via sudo by alice".
    var displayName: String {
        var text = name.map { "\(AuditEvent.escaped($0)) (uid \(uid))" } ?? "uid \(uid)"
        if let sudoUser { text += " via sudo by \(AuditEvent.escaped(sudoUser))" }
        return text
    }
}
