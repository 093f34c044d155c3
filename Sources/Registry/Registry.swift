import Foundation
import SSHKeys
import UserNames

/// Users, their public keys, uids and workspace host keys, in SQLite under the state
/// directory (`registry.sqlite3`). Shared by `serve` and the admin commands, each process
/// with its own `Registry`: a change by one is seen by the others at their next query.
/// Safe to use from many threads; calls are serialised.
///
/// A name keeps its uid and workspace host key after `removeUser`: the user's home volume
/// is kept, so if the name is registered again the volume is theirs again, and no other
/// name is ever given that uid.
public final class Registry: @unchecked Sendable {
    /// The first uid handed out; lower ones belong to the image's own accounts.
    public static let firstUID = 2000
    /// The highest uid a workspace account may have (Linux reserves 2^32-1).
    public static let maxUID = 4_294_967_294
    /// Uids that mean something on their own and are never given to a user.
    static let reservedUIDs: Set<Int> = [65534, 65535]
    /// Names of accounts the workspace image already has (Debian's base system and sshd).
    public static let reservedNames: Set<String> = [
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "systemd-network",
        "systemd-resolve", "systemd-timesync", "utmp", "tty", "disk", "shadow", "staff", "users", "nogroup",
    ]

    /// The database file.
    public let path: String
    private let database: SQLiteDatabase
    private let lock = NSLock()

    /// Opens the registry in `stateDirectory`, creating the directory (mode 0700), the
    /// database (mode 0600: it holds the workspace host keys) and its tables as needed.
    public init(stateDirectory: String) throws {
        let files = FileManager.default
        if !files.fileExists(atPath: stateDirectory) {
            do {
                try files.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                          attributes: [.posixPermissions: 0o700])
            } catch {
                throw RegistryError.storage("cannot create the state directory \(UserName.quoted(stateDirectory)): "
                                            + ((error as NSError).localizedFailureReason ?? "\(error)"))
            }
        }
        path = (stateDirectory as NSString).appendingPathComponent("registry.sqlite3")
        // Create the file with its final mode before SQLite does (its -wal and -shm files copy it).
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        do {
            database = try SQLiteDatabase(path: path)
            try migrate()
        } catch let error as SQLiteError {
            throw RegistryError.storage(error.description)
        }
    }

    // MARK: - Schema

    /// Schema changes in order; version N is `migrations[N - 1]`. Append, never edit.
    private static let migrations: [[String]] = [
        [
            // Every name ever registered, with the uid and workspace host key bound to it.
            // Kept when the user is removed: their home volume is kept too.
            """
            CREATE TABLE accounts (
              name TEXT PRIMARY KEY,
              uid INTEGER NOT NULL UNIQUE,
              host_key TEXT NOT NULL
            )
            """,
            // Currently registered users.
            """
            CREATE TABLE users (
              name TEXT PRIMARY KEY REFERENCES accounts(name),
              created INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE keys (
              fingerprint TEXT NOT NULL UNIQUE,
              user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
              type TEXT NOT NULL,
              base64 TEXT NOT NULL UNIQUE,
              comment TEXT NOT NULL,
              bits INTEGER NOT NULL,
              added INTEGER NOT NULL
            )
            """,
            "CREATE INDEX keys_by_user ON keys(user)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT INTO meta (key, value) VALUES ('next_uid', \(firstUID))",
        ],
        [
            // Each registration of a name gets an id of its own, so what was made for an
            // earlier owner of the name (a workspace container) can tell it is not theirs.
            "ALTER TABLE users ADD COLUMN registration TEXT",
            "UPDATE users SET registration = lower(hex(randomblob(16)))",
            // Counts removals of users and keys, so open connections notice a revocation by
            // reading one number instead of re-checking their login each time.
            "INSERT INTO meta (key, value) VALUES ('revocations', 0)",
        ],
    ]

    private func migrate() throws {
        try database.transaction {
            try database.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)
                """)
            let current = try database.execute("SELECT max(version) FROM schema_migrations")[0][0].int
            guard current <= Self.migrations.count else {
                throw RegistryError.storage("\(path) has schema version \(current), newer than this devenv-gw "
                                            + "knows (\(Self.migrations.count)); upgrade devenv-gw")
            }
            for (index, statements) in Self.migrations.enumerated() where index + 1 > current {
                for statement in statements { try database.execute(statement) }
                try database.execute("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                                     [.integer(Int64(index + 1)), Self.timestamp(Date())])
            }
        }
    }

    /// Runs `body` holding the lock; SQLite failures become `RegistryError.storage`.
    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        do {
            return try body()
        } catch let error as SQLiteError {
            throw RegistryError.storage(error.description)
        }
    }

    // MARK: - Users

    /// Refuses names that may not be registered although they are valid user names.
    public static func checkAllowed(_ name: UserName) throws {
        if reservedNames.contains(name.value) { throw RegistryError.reservedName(name.value) }
    }

    /// Registers a user with their keys (duplicates in `keys` count once). A new name gets
    /// the next unused uid and a new workspace host key; a name registered before gets its
    /// old uid and host key back. Refused, changing nothing, when the name is registered,
    /// no key is given, or a key is registered to someone already.
    @discardableResult
    public func addUser(_ name: UserName, keys: [PublicKey]) throws -> User {
        try Self.checkAllowed(name)
        let unique = Self.deduplicated(keys)
        guard !unique.isEmpty else { throw RegistryError.noKeys }
        return try locked {
            try database.transaction {
                guard try !isRegistered(name) else { throw RegistryError.userExists(name.value) }
                let uid: Int
                if let known = try database.execute("SELECT uid FROM accounts WHERE name = ?", [.text(name.value)]).first {
                    uid = known[0].int
                } else {
                    uid = try allocateUID()
                    let hostKey = try PrivateKey.generate(.ed25519)
                    try database.execute("INSERT INTO accounts (name, uid, host_key) VALUES (?, ?, ?)",
                                         [.text(name.value), .integer(Int64(uid)), .text(hostKey.pemText)])
                }
                let created = Self.date(Self.timestamp(Date()))
                try database.execute("INSERT INTO users (name, created, registration) VALUES (?, ?, ?)",
                                     [.text(name.value), Self.timestamp(created), .text(Self.newRegistrationID())])
                try insertKeys(unique, for: name)
                return User(name: name.value, uid: uid, created: created, keyCount: unique.count)
            }
        }
    }

    /// Registers a user exactly as `record(of:)` exported them: same uid, creation time,
    /// keys and workspace host key. Refused, changing nothing, when the name is registered,
    /// the uid belongs to another name, a key is registered to someone else, or the record
    /// does not hold together.
    @discardableResult
    public func addUser(restoring record: UserRecord) throws -> User {
        let (name, keys) = try Self.validated(record)
        return try locked {
            try database.transaction {
                try checkConflicts(name, uid: record.uid, keys: keys)
                try database.execute("""
                    INSERT INTO accounts (name, uid, host_key) VALUES (?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET uid = excluded.uid, host_key = excluded.host_key
                    """, [.text(name.value), .integer(Int64(record.uid)), .text(record.hostKey)])
                try database.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'next_uid'",
                                     [.integer(Int64(record.uid) + 1)])
                let created = Self.timestamp(record.created)
                try database.execute("INSERT INTO users (name, created, registration) VALUES (?, ?, ?)",
                                     [.text(name.value), created, .text(Self.newRegistrationID())])
                try insertKeys(keys, for: name)
                return User(name: name.value, uid: record.uid, created: Self.date(created), keyCount: keys.count)
            }
        }
    }

    /// Checks, changing nothing, that registering `record` would be accepted now: as
    /// `addUser(restoring:)` does with its uid, or, when `keepingUID` is false, as
    /// `addUser(_:keys:)` registers its name and keys.
    public func checkRegistration(of record: UserRecord, keepingUID: Bool) throws {
        let (name, keys) = try Self.validated(record)
        if !keepingUID && keys.isEmpty { throw RegistryError.noKeys }
        try locked { try checkConflicts(name, uid: keepingUID ? record.uid : nil, keys: keys) }
    }

    /// The record's name and parsed keys, when everything in it is well-formed.
    private static func validated(_ record: UserRecord) throws -> (UserName, [PublicKey]) {
        let name: UserName
        do { name = try UserName(record.name) } catch { throw RegistryError.invalidRecord("\(error)") }
        try checkAllowed(name)
        guard isAssignable(uid: record.uid) else {
            throw RegistryError.invalidRecord("uid \(record.uid) is not between \(firstUID) and \(maxUID)")
        }
        let keys = try deduplicated(record.keys.map { line in
            do { return try PublicKey(parsing: line) } catch {
                throw RegistryError.invalidRecord("key \(UserName.quoted(line)): \(error)")
            }
        })
        do {
            _ = try PrivateKey(pemText: record.hostKey)
        } catch {
            throw RegistryError.invalidRecord("the workspace host key: \(error)")
        }
        return (name, keys)
    }

    /// Refuses a registration of `name` while it is registered, when `uid` is bound to another
    /// name, or when a key is registered to anyone. Called with the lock held.
    private func checkConflicts(_ name: UserName, uid: Int?, keys: [PublicKey]) throws {
        guard try !isRegistered(name) else { throw RegistryError.userExists(name.value) }
        if let uid, let owner = try database.execute("SELECT name FROM accounts WHERE uid = ? AND name <> ?",
                                                     [.integer(Int64(uid)), .text(name.value)]).first?[0].string {
            throw RegistryError.uidInUse(uid: uid, owner: owner, registered: try isRegistered(UserName(owner)))
        }
        for key in keys {
            if let owner = try database.execute("SELECT user FROM keys WHERE base64 = ?", [.text(key.base64)]).first?[0].string {
                throw RegistryError.keyRegisteredToOtherUser(fingerprint: key.fingerprint, owner: owner)
            }
        }
    }

    /// Everything the registry holds about a registered user, for a backup.
    public func record(of name: UserName) throws -> UserRecord {
        try locked {
            guard let row = try database.execute("""
                SELECT a.uid, u.created, a.host_key FROM users u JOIN accounts a ON a.name = u.name WHERE u.name = ?
                """, [.text(name.value)]).first else { throw RegistryError.noSuchUser(name.value) }
            return UserRecord(name: name.value, uid: row[0].int, created: Self.date(row[1]),
                              keys: try registeredKeys(of: name).map(\.key.line), hostKey: row[2].string)
        }
    }

    /// The record of a registered user; for a removed name, whose uid and workspace host key
    /// are kept, a record without keys (created now); nil for a name never registered.
    public func recordIncludingRemoved(of name: UserName) throws -> UserRecord? {
        if try user(named: name) != nil { return try record(of: name) }
        return try locked {
            try database.execute("SELECT uid, host_key FROM accounts WHERE name = ?", [.text(name.value)]).first.map {
                UserRecord(name: name.value, uid: $0[0].int, created: Self.date(Self.timestamp(Date())), keys: [],
                           hostKey: $0[1].string)
            }
        }
    }

    /// Removes a user's registration and keys. Their uid and host key stay bound to the name.
    public func removeUser(_ name: UserName) throws {
        try locked {
            try database.transaction {
                guard try isRegistered(name) else { throw RegistryError.noSuchUser(name.value) }
                try database.execute("DELETE FROM users WHERE name = ?", [.text(name.value)])
                try countRevocation()
            }
        }
    }

    /// The id of the user's current registration, or nil when the name is not registered.
    /// Every `addUser` of a name gets a new one, so it tells a name's owners apart even
    /// though they share its uid and home volume.
    public func registration(of name: UserName) throws -> String? {
        try locked {
            try database.execute("SELECT registration FROM users WHERE name = ?", [.text(name.value)]).first?[0].string
        }
    }

    /// How many users and keys have been removed so far, by any process. Holders of a login
    /// re-check it only when this number moved: one read of one row.
    public func revocationCount() throws -> Int {
        try locked { try database.execute("SELECT value FROM meta WHERE key = 'revocations'").first?[0].int ?? 0 }
    }

    /// The registered user of that name, or nil.
    public func user(named name: UserName) throws -> User? {
        try locked {
            try database.execute(Self.userQuery + " WHERE u.name = ?", [.text(name.value)]).first.map(Self.user(from:))
        }
    }

    /// Every registered user, by name.
    public func users() throws -> [User] {
        try locked { try database.execute(Self.userQuery + " ORDER BY u.name").map(Self.user(from:)) }
    }

    /// The workspace sshd host key of a registered user.
    public func workspaceHostKey(for name: UserName) throws -> PrivateKey {
        let text = try locked {
            try database.execute("""
                SELECT a.host_key FROM accounts a JOIN users u ON u.name = a.name WHERE a.name = ?
                """, [.text(name.value)]).first?[0].string
        }
        guard let text else { throw RegistryError.noSuchUser(name.value) }
        return try PrivateKey(pemText: text)
    }

    // MARK: - Keys

    /// A registered user's keys, oldest first.
    public func keys(of name: UserName) throws -> [RegisteredKey] {
        try locked {
            guard try isRegistered(name) else { throw RegistryError.noSuchUser(name.value) }
            return try registeredKeys(of: name)
        }
    }

    /// Adds keys to a registered user (duplicates count once) and returns them. Refused,
    /// changing nothing, when any key is registered already, to this user or another.
    @discardableResult
    public func addKeys(_ keys: [PublicKey], to name: UserName) throws -> [PublicKey] {
        let unique = Self.deduplicated(keys)
        guard !unique.isEmpty else { throw RegistryError.noKeys }
        try locked {
            try database.transaction {
                guard try isRegistered(name) else { throw RegistryError.noSuchUser(name.value) }
                try insertKeys(unique, for: name)
            }
        }
        return unique
    }

    /// Removes one of the user's keys, named by its `SHA256:` fingerprint, and returns it.
    /// Removing the last key is allowed: the user then cannot log in until a key is added.
    @discardableResult
    public func removeKey(fingerprint: String, from name: UserName) throws -> RegisteredKey {
        try locked {
            try database.transaction {
                guard try isRegistered(name) else { throw RegistryError.noSuchUser(name.value) }
                guard let removed = try registeredKeys(of: name).first(where: { $0.key.fingerprint == fingerprint }) else {
                    throw RegistryError.noSuchKey(fingerprint: fingerprint, user: name.value)
                }
                try database.execute("DELETE FROM keys WHERE fingerprint = ?", [.text(fingerprint)])
                try countRevocation()
                return removed
            }
        }
    }

    /// The gateway's login check: is this exact key (type and base64 blob) registered to
    /// this user now? One indexed lookup.
    public func isKeyRegistered(base64: String, type: String, for name: UserName) throws -> Bool {
        try locked {
            !(try database.execute("SELECT 1 FROM keys WHERE base64 = ? AND user = ? AND type = ?",
                                   [.text(base64), .text(name.value), .text(type)])).isEmpty
        }
    }

    // MARK: - Helpers (called with the lock held)

    private static let userQuery = """
        SELECT u.name, a.uid, u.created, (SELECT count(*) FROM keys k WHERE k.user = u.name)
        FROM users u JOIN accounts a ON a.name = u.name
        """

    private static func user(from row: [SQLiteDatabase.Value]) -> User {
        User(name: row[0].string, uid: row[1].int, created: Self.date(row[2]),
             keyCount: row[3].int)
    }

    private func isRegistered(_ name: UserName) throws -> Bool {
        !(try database.execute("SELECT 1 FROM users WHERE name = ?", [.text(name.value)])).isEmpty
    }

    private func registeredKeys(of name: UserName) throws -> [RegisteredKey] {
        try database.execute(
            "SELECT type, base64, comment, bits, fingerprint, added FROM keys WHERE user = ? ORDER BY added, rowid",
            [.text(name.value)]
        ).map { row in
            RegisteredKey(key: PublicKey(type: row[0].string, base64: row[1].string, comment: row[2].string,
                                         bits: row[3].int, fingerprint: row[4].string),
                          added: Self.date(row[5]))
        }
    }

    private func countRevocation() throws {
        try database.execute("UPDATE meta SET value = value + 1 WHERE key = 'revocations'")
    }

    /// 128 random bits in 32 hex digits.
    private static func newRegistrationID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }

    /// The next uid never bound to any name; advances the counter past it.
    private func allocateUID() throws -> Int {
        var uid = try database.execute("SELECT value FROM meta WHERE key = 'next_uid'")[0][0].int
        func taken(_ uid: Int) throws -> Bool {
            !(try database.execute("SELECT 1 FROM accounts WHERE uid = ?", [.integer(Int64(uid))])).isEmpty
        }
        while try !Self.isAssignable(uid: uid) || taken(uid) {
            uid += 1
            guard uid <= Self.maxUID else { throw RegistryError.storage("no uid left to assign") }
        }
        try database.execute("UPDATE meta SET value = ? WHERE key = 'next_uid'", [.integer(Int64(uid) + 1)])
        return uid
    }

    private static func isAssignable(uid: Int) -> Bool {
        (firstUID...maxUID).contains(uid) && !reservedUIDs.contains(uid)
    }

    private func insertKeys(_ keys: [PublicKey], for name: UserName) throws {
        let now = Self.timestamp(Date())
        for key in keys {
            if let owner = try database.execute("SELECT user FROM keys WHERE base64 = ?", [.text(key.base64)]).first?[0].string {
                throw owner == name.value
                    ? RegistryError.keyAlreadyRegistered(fingerprint: key.fingerprint, user: owner)
                    : RegistryError.keyRegisteredToOtherUser(fingerprint: key.fingerprint, owner: owner)
            }
            try database.execute("""
                INSERT INTO keys (fingerprint, user, type, base64, comment, bits, added) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [.text(key.fingerprint), .text(name.value), .text(key.type), .text(key.base64),
                      .text(key.comment), .integer(Int64(key.bits)), now])
        }
    }

    /// Times are stored as integer milliseconds since 1970, so a `Date` read back, or
    /// passed through a backup record, compares equal to the one first returned.
    private static func timestamp(_ date: Date) -> SQLiteDatabase.Value {
        .integer(Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    private static func date(_ value: SQLiteDatabase.Value) -> Date {
        Date(timeIntervalSince1970: Double(value.int) / 1000)
    }

    private static func deduplicated(_ keys: [PublicKey]) -> [PublicKey] {
        var seen = Set<String>()
        return keys.filter { seen.insert($0.base64).inserted }
    }
}
