import Foundation
import SSHKeys
import UserNames

/// A registered user.
public struct User: Sendable, Equatable {
    /// The canonical user name (it passed `UserName` validation when registered).
    public let name: String
    /// The user's uid (and gid) inside their workspace: distinct per user, stable for ever.
    public let uid: Int
    public let created: Date
    /// How many public keys the user has; with none they cannot log in.
    public let keyCount: Int
}

/// A public key registered to a user.
public struct RegisteredKey: Sendable, Equatable {
    public let key: PublicKey
    public let added: Date
}

/// A user as exported for a backup and imported by a restore: everything the registry
/// holds about them, in text forms that survive a round trip through JSON.
public struct UserRecord: Codable, Sendable, Equatable {
    public var name: String
    public var uid: Int
    public var created: Date
    /// Public keys in `authorized_keys` form: `type base64 [comment]`.
    public var keys: [String]
    /// The workspace sshd host key in OpenSSH private key form.
    public var hostKey: String

    public init(name: String, uid: Int, created: Date, keys: [String], hostKey: String) {
        self.name = name
        self.uid = uid
        self.created = created
        self.keys = keys
        self.hostKey = hostKey
    }
}

/// Why the registry refused a request. A refused change leaves the registry as it was.
public enum RegistryError: Error, Equatable, CustomStringConvertible {
    case userExists(String)
    case noSuchUser(String)
    case reservedName(String)
    case noKeys
    case keyRegisteredToOtherUser(fingerprint: String, owner: String)
    case keyAlreadyRegistered(fingerprint: String, user: String)
    case noSuchKey(fingerprint: String, user: String)
    /// A restore asked for a uid that belongs to another name (registered now or before).
    case uidInUse(uid: Int, owner: String, registered: Bool)
    case invalidRecord(String)
    /// The database could not be read or written; SQLite's message.
    case storage(String)

    public var description: String {
        switch self {
        case .userExists(let name):
            return "user \(name) already exists"
        case .noSuchUser(let name):
            return "no such user: \(UserName.quoted(name))"
        case .reservedName(let name):
            return "\(name) is the name of a system account in the workspace image; choose another name"
        case .noKeys:
            return "no public key given"
        case .keyRegisteredToOtherUser(let fingerprint, let owner):
            return "key \(fingerprint) is already registered to user \(owner)"
        case .keyAlreadyRegistered(let fingerprint, let user):
            return "key \(fingerprint) is already registered to user \(user)"
        case .noSuchKey(let fingerprint, let user):
            return "user \(user) has no key with fingerprint \(UserName.quoted(fingerprint))"
        case .uidInUse(let uid, let owner, let registered):
            return registered
                ? "uid \(uid) belongs to user \(owner)"
                : "uid \(uid) belonged to the removed user \(owner), whose home volume may still exist"
        case .invalidRecord(let reason):
            return "invalid user record: \(reason)"
        case .storage(let message):
            return "registry storage failure: \(message)"
        }
    }
}
