import Foundation
import SSHKeys
import UserNames

/// A registered user.
public struct User: Sendable, Equatable, Codable {
    public let name: String
    /// The user's uid inside their workspace: distinct per user and stable for ever.
    public let uid: Int
    public let created: Date
}

/// A public key registered to a user.
public struct RegisteredKey: Sendable, Equatable {
    public let key: PublicKey
    public let added: Date
}

/// Why the registry refused a change. A refused change leaves the registry as it was.
public enum RegistryError: Error, Equatable, CustomStringConvertible {
    case userExists(String)
    case noSuchUser(String)
    case reservedName(String)
    case noKeys
    case keyRegisteredToOtherUser(fingerprint: String, owner: String)
    case keyAlreadyRegistered(fingerprint: String)
    case noSuchKey(String)

    public var description: String {
        switch self {
        case .userExists(let name): return "user \(name) already exists"
        case .noSuchUser(let name): return "no such user: \(name)"
        case .reservedName(let name):
            return "\(name) is the name of a system account in the workspace image; choose another name"
        case .noKeys: return "no public key given"
        case .keyRegisteredToOtherUser(let fingerprint, let owner):
            return "key \(fingerprint) is already registered to user \(owner)"
        case .keyAlreadyRegistered(let fingerprint): return "key \(fingerprint) is already registered to this user"
        case .noSuchKey(let fingerprint): return "no key \(fingerprint) for this user"
        }
    }
}

/// Users, their public keys, uids and workspace host keys, in SQLite under the state
/// directory. Shared by `serve` and the admin commands: a change by one is seen by the
/// other at its next query. Safe to use from many threads.
public final class Registry: @unchecked Sendable {
    /// The first uid handed out; below are the image's own accounts.
    public static let firstUID = 2000
    /// Names of accounts the workspace image has already (Debian's base system and sshd).
    public static let reservedNames: Set<String> = [
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "systemd-network",
        "systemd-resolve", "systemd-timesync", "utmp", "tty", "disk", "shadow", "staff", "users", "nogroup",
    ]

    public let path: String
    private let database: SQLiteDatabase
    private let lock = NSLock()

    /// Opens (creating if needed) the registry in `stateDirectory`.
    public init(stateDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        path = (stateDirectory as NSString).appendingPathComponent("registry.sqlite3")
        database = try SQLiteDatabase(path: path)
        try migrate()
    }

    private func migrate() throws {
        try database.transaction {
            try database.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            let version = try database.execute("SELECT value FROM meta WHERE key = 'schema'").first?.first?.string
            guard version == nil else { return }
            try database.execute("""
                CREATE TABLE users (name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE, created REAL NOT NULL)
                """)
            try database.execute("""
                CREATE TABLE keys (fingerprint TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                  type TEXT NOT NULL, base64 TEXT NOT NULL UNIQUE, comment TEXT NOT NULL, bits INTEGER NOT NULL,
                  added REAL NOT NULL)
                """)
            try database.execute("CREATE INDEX keys_by_user ON keys(user)")
            // Host key and uid of every name ever registered: a re-added user gets them back,
            // so a kept home volume is theirs again and their known_hosts stay valid.
            try database.execute("""
                CREATE TABLE accounts (name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE, host_key TEXT NOT NULL)
                """)
            try database.execute("INSERT INTO meta (key, value) VALUES ('schema', '1'), ('next_uid', ?)",
                                 [.text(String(Self.firstUID))])
        }
    }

    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Users

    /// Registers a user with their keys. A name registered before gets its old uid and
    /// workspace host key back. Returns the user and whether it was such a returning name.
    @discardableResult
    public func addUser(_ name: UserName, keys: [PublicKey]) throws -> (user: User, returning: Bool) {
        guard !Self.reservedNames.contains(name.value) else { throw RegistryError.reservedName(name.value) }
        let unique = Self.deduplicated(keys)
        guard !unique.isEmpty else { throw RegistryError.noKeys }
        return try locked {
            try database.transaction {
                guard try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)]).isEmpty else {
                    throw RegistryError.userExists(name.value)
                }
                var returning = true
                var uid = try database.execute("SELECT uid FROM accounts WHERE name = ?", [.text(name.value)]).first?.first?.int
                if uid == nil {
                    returning = false
                    let next = Int(try database.execute("SELECT value FROM meta WHERE key = 'next_uid'")[0][0].string) ?? Self.firstUID
                    uid = next
                    try database.execute("UPDATE meta SET value = ? WHERE key = 'next_uid'", [.text(String(next + 1))])
                    let hostKey = try PrivateKey.generate(.ed25519)
                    try database.execute("INSERT INTO accounts (name, uid, host_key) VALUES (?, ?, ?)",
                                         [.text(name.value), .integer(Int64(next)), .text(hostKey.pemText)])
                }
                let created = Date()
                try database.execute("INSERT INTO users (name, uid, created) VALUES (?, ?, ?)",
                                     [.text(name.value), .integer(Int64(uid!)), .real(created.timeIntervalSince1970)])
                try insertKeys(unique, for: name)
                return (User(name: name.value, uid: uid!, created: created), returning)
            }
        }
    }

    /// Removes a user's registration and keys. Their uid and host key stay reserved for them.
    public func removeUser(_ name: UserName) throws {
        try locked {
            try database.transaction {
                guard try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)]).count == 1 else {
                    throw RegistryError.noSuchUser(name.value)
                }
                try database.execute("DELETE FROM users WHERE name = ?", [.text(name.value)])
            }
        }
    }

    public func user(named name: UserName) throws -> User? {
        try locked {
            try database.execute("SELECT name, uid, created FROM users WHERE name = ?", [.text(name.value)])
                .first.map(Self.user(from:))
        }
    }

    public func users() throws -> [User] {
        try locked { try database.execute("SELECT name, uid, created FROM users ORDER BY name").map(Self.user(from:)) }
    }

    /// The user's workspace sshd host key.
    public func workspaceHostKey(for name: UserName) throws -> PrivateKey {
        let text = try locked {
            try database.execute("SELECT host_key FROM accounts WHERE name = ?", [.text(name.value)]).first?.first?.string
        }
        guard let text else { throw RegistryError.noSuchUser(name.value) }
        return try PrivateKey(pemText: text)
    }

    // MARK: - Keys

    public func keys(of name: UserName) throws -> [RegisteredKey] {
        try locked {
            guard try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)]).count == 1 else {
                throw RegistryError.noSuchUser(name.value)
            }
            return try database.execute(
                "SELECT type, base64, comment, bits, fingerprint, added FROM keys WHERE user = ? ORDER BY added, fingerprint",
                [.text(name.value)]
            ).map { row in
                RegisteredKey(key: PublicKey(type: row[0].string, base64: row[1].string, comment: row[2].string,
                                             bits: row[3].int, fingerprint: row[4].string),
                              added: Date(timeIntervalSince1970: row[5].double))
            }
        }
    }

    /// Adds keys to an existing user; refuses (changing nothing) if any is taken.
    public func addKeys(_ keys: [PublicKey], to name: UserName) throws {
        let unique = Self.deduplicated(keys)
        guard !unique.isEmpty else { throw RegistryError.noKeys }
        try locked {
            try database.transaction {
                guard try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)]).count == 1 else {
                    throw RegistryError.noSuchUser(name.value)
                }
                try insertKeys(unique, for: name)
            }
        }
    }

    /// Removes one key, named by its `SHA256:` fingerprint.
    public func removeKey(fingerprint: String, from name: UserName) throws {
        try locked {
            try database.transaction {
                guard try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)]).count == 1 else {
                    throw RegistryError.noSuchUser(name.value)
                }
                let rows = try database.execute("SELECT 1 FROM keys WHERE fingerprint = ? AND user = ?",
                                                [.text(fingerprint), .text(name.value)])
                guard !rows.isEmpty else { throw RegistryError.noSuchKey(fingerprint) }
                try database.execute("DELETE FROM keys WHERE fingerprint = ?", [.text(fingerprint)])
            }
        }
    }

    /// The gateway's login check: is this exact key registered to this user now?
    public func isKeyRegistered(base64: String, type: String, for name: UserName) throws -> Bool {
        try locked {
            !(try database.execute("SELECT 1 FROM keys WHERE base64 = ? AND type = ? AND user = ?",
                                   [.text(base64), .text(type), .text(name.value)])).isEmpty
        }
    }

    // MARK: - Helpers

    private func insertKeys(_ keys: [PublicKey], for name: UserName) throws {
        for key in keys {
            if let owner = try database.execute("SELECT user FROM keys WHERE base64 = ?", [.text(key.base64)]).first?.first?.string {
                if owner == name.value { throw RegistryError.keyAlreadyRegistered(fingerprint: key.fingerprint) }
                throw RegistryError.keyRegisteredToOtherUser(fingerprint: key.fingerprint, owner: owner)
            }
            try database.execute("""
                INSERT INTO keys (fingerprint, user, type, base64, comment, bits, added) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [.text(key.fingerprint), .text(name.value), .text(key.type), .text(key.base64), .text(key.comment),
                      .integer(Int64(key.bits)), .real(Date().timeIntervalSince1970)])
        }
    }

    private static func deduplicated(_ keys: [PublicKey]) -> [PublicKey] {
        var seen = Set<String>()
        return keys.filter { seen.insert($0.base64).inserted }
    }

    private static func user(from row: [SQLiteDatabase.Value]) -> User {
        User(name: row[0].string, uid: row[1].int, created: Date(timeIntervalSince1970: row[2].double))
    }
}
