import CSQLite
import Foundation
import Registry
import SSHKeys
import UserNames
import XCTest

/// The registry on a real SQLite file in a temporary directory.
final class RegistryTests: XCTestCase {
    var directory: String!
    var registry: Registry!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("registry-\(UUID())").path
        registry = try Registry(stateDirectory: directory)
    }

    override func tearDown() {
        registry = nil
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    // MARK: - Users and keys

    func testAddListAndRemoveUsersAndKeys() throws {
        let aliceKey = try key("alice@laptop")
        let alice = try registry.addUser(name("alice"), keys: [aliceKey, aliceKey])
        XCTAssertEqual(alice.uid, Registry.firstUID)
        XCTAssertEqual(alice.keyCount, 1, "a key given twice is registered once")
        let bob = try registry.addUser(name("bob"), keys: [try key()])
        XCTAssertEqual(bob.uid, Registry.firstUID + 1)
        XCTAssertEqual(try registry.users().map(\.name), ["alice", "bob"])
        XCTAssertEqual(try registry.user(named: name("alice")), alice)
        XCTAssertNil(try registry.user(named: name("carol")))
        XCTAssertEqual(try registry.keys(of: name("alice")).map(\.key), [aliceKey])
        XCTAssertTrue(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-ed25519", for: name("alice")))
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-ed25519", for: name("bob")))
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-rsa", for: name("alice")))
        XCTAssertNotEqual(try registry.workspaceHostKey(for: name("alice")), try registry.workspaceHostKey(for: name("bob")))

        let second = try key("desk")
        XCTAssertEqual(try registry.addKeys([second, second], to: name("alice")), [second])
        XCTAssertEqual(try registry.keys(of: name("alice")).map(\.key), [aliceKey, second], "oldest first")
        XCTAssertEqual(try registry.user(named: name("alice"))?.keyCount, 2)
        XCTAssertEqual(try registry.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice")).key, aliceKey)
        XCTAssertEqual(try registry.keys(of: name("alice")).map(\.key), [second])
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-ed25519", for: name("alice")))
        XCTAssertThrowsError(try registry.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice"))) {
            XCTAssertEqual($0 as? RegistryError, .noSuchKey(fingerprint: aliceKey.fingerprint, user: "alice"))
        }
        // The last key may go too: the user stays, but cannot log in.
        try registry.removeKey(fingerprint: second.fingerprint, from: name("alice"))
        XCTAssertEqual(try registry.user(named: name("alice"))?.keyCount, 0)

        try registry.removeUser(name("alice"))
        XCTAssertNil(try registry.user(named: name("alice")))
        XCTAssertEqual(try registry.users().map(\.name), ["bob"])
        XCTAssertThrowsError(try registry.keys(of: name("alice"))) {
            XCTAssertEqual($0 as? RegistryError, .noSuchUser("alice"))
        }
        XCTAssertThrowsError(try registry.workspaceHostKey(for: name("alice")))
        XCTAssertThrowsError(try registry.removeUser(name("alice"))) {
            XCTAssertEqual($0 as? RegistryError, .noSuchUser("alice"))
        }
    }

    /// Another process (its own `Registry`) sees every removal as a move of the revocation
    /// count, and each registration of a name has an id of its own.
    func testRemovalsMoveTheRevocationCountAndRegistrationsAreDistinct() throws {
        let other = try Registry(stateDirectory: directory)
        let first = try key(), second = try key()
        try registry.addUser(name("alice"), keys: [first, second])
        let registered = try XCTUnwrap(try registry.registration(of: name("alice")))
        XCTAssertEqual(registered.count, 32)
        XCTAssertEqual(try other.registration(of: name("alice")), registered)
        let start = try other.revocationCount()
        try registry.addKeys([try key()], to: name("alice"))
        XCTAssertEqual(try other.revocationCount(), start, "additions revoke nothing")
        try registry.removeKey(fingerprint: first.fingerprint, from: name("alice"))
        XCTAssertEqual(try other.revocationCount(), start + 1)
        try registry.removeUser(name("alice"))
        XCTAssertEqual(try other.revocationCount(), start + 2)
        XCTAssertNil(try other.registration(of: name("alice")))
        try registry.addUser(name("alice"), keys: [first])
        let again = try XCTUnwrap(try other.registration(of: name("alice")))
        XCTAssertNotEqual(again, registered, "the next owner of the name is another registration")
    }

    func testUidsAreDistinctAndNeverPassToAnotherName() throws {
        let alice = try registry.addUser(name("alice"), keys: [try key()])
        let bob = try registry.addUser(name("bob"), keys: [try key()])
        let bobHostKey = try registry.workspaceHostKey(for: name("bob"))
        try registry.removeUser(name("bob"))
        // bob's home volume may still exist: nobody else gets his uid.
        let carol = try registry.addUser(name("carol"), keys: [try key()])
        XCTAssertEqual([alice.uid, bob.uid, carol.uid], [2000, 2001, 2002])
        // Registered again, bob gets his uid and workspace host key back.
        let bobAgain = try registry.addUser(name("bob"), keys: [try key()])
        XCTAssertEqual(bobAgain.uid, bob.uid)
        XCTAssertEqual(try registry.workspaceHostKey(for: name("bob")), bobHostKey)
        XCTAssertEqual(try registry.addUser(name("dave"), keys: [try key()]).uid, 2003)
        // The counter lives in the file: another instance continues it.
        let reopened = try Registry(stateDirectory: directory)
        try reopened.removeUser(name("dave"))
        XCTAssertEqual(try reopened.addUser(name("erin"), keys: [try key()]).uid, 2004)
    }

    func testRefusedChangesLeaveTheRegistryUnchanged() throws {
        let shared = try key()
        let aliceSecond = try key()
        try registry.addUser(name("alice"), keys: [shared, aliceSecond])
        let before = try snapshot()

        XCTAssertThrowsError(try registry.addUser(name("bob"), keys: [try key(), shared])) {
            XCTAssertEqual($0 as? RegistryError, .keyRegisteredToOtherUser(fingerprint: shared.fingerprint, owner: "alice"))
            XCTAssertTrue("\($0)".contains("registered to user alice"), "\($0)")
        }
        XCTAssertThrowsError(try registry.addUser(name("alice"), keys: [try key()])) {
            XCTAssertEqual($0 as? RegistryError, .userExists("alice"))
        }
        XCTAssertThrowsError(try registry.addUser(name("root"), keys: [try key()])) {
            XCTAssertEqual($0 as? RegistryError, .reservedName("root"))
        }
        XCTAssertThrowsError(try registry.addUser(name("carol"), keys: [])) {
            XCTAssertEqual($0 as? RegistryError, .noKeys)
        }
        XCTAssertThrowsError(try registry.addKeys([try key(), aliceSecond], to: name("alice"))) {
            XCTAssertEqual($0 as? RegistryError, .keyAlreadyRegistered(fingerprint: aliceSecond.fingerprint, user: "alice"))
        }
        XCTAssertThrowsError(try registry.addKeys([try key()], to: name("nobody"))) {
            XCTAssertEqual($0 as? RegistryError, .noSuchUser("nobody"))
        }
        XCTAssertThrowsError(try registry.removeKey(fingerprint: "SHA256:nope", from: name("alice")))
        XCTAssertThrowsError(try registry.removeKey(fingerprint: shared.fingerprint, from: name("nobody")))
        XCTAssertThrowsError(try registry.removeUser(name("nobody")))

        XCTAssertEqual(try snapshot(), before)
        XCTAssertNil(try registry.user(named: name("bob")))
        XCTAssertEqual(try registry.addUser(name("bob"), keys: [try key()]).uid, Registry.firstUID + 1,
                       "the refused adds spent no uid")
    }

    func testErrorMessagesEscapeUntrustedText() throws {
        try registry.addUser(name("alice"), keys: [try key()])
        XCTAssertThrowsError(try registry.removeKey(fingerprint: "SHA256:x\n\u{1b}[31m", from: name("alice"))) {
            XCTAssertEqual("\($0)", "user alice has no key with fingerprint 'SHA256:x\\u{a}\\u{1b}[31m'")
        }
    }

    // MARK: - Concurrency and sharing

    func testConcurrentAddsFromEightThreadsGetDistinctUids() throws {
        let keys = try (0..<8).map { _ in try key() }
        let errors = ErrorList()
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            do {
                try self.registry.addUser(try UserName("user\(index)"), keys: [keys[index]])
                // Readers run while others write.
                if try !self.registry.isKeyRegistered(base64: keys[index].base64, type: keys[index].type,
                                                      for: UserName("user\(index)")) {
                    errors.append(Failure(message: "user\(index) cannot log in right after adduser"))
                }
            } catch {
                errors.append(error)
            }
        }
        XCTAssertEqual(errors.all.map { "\($0)" }, [])
        let users = try registry.users()
        XCTAssertEqual(users.count, 8)
        XCTAssertEqual(Set(users.map(\.uid)), Set(2000..<2008))
    }

    func testTwoInstancesOnOneDirectoryShareEverything() throws {
        // Like `serve` and an admin command: two connections to one file.
        let other = try Registry(stateDirectory: directory)
        let aliceKey = try key()
        try registry.addUser(name("alice"), keys: [aliceKey])
        XCTAssertTrue(try other.isKeyRegistered(base64: aliceKey.base64, type: aliceKey.type, for: name("alice")))
        XCTAssertEqual(try other.workspaceHostKey(for: name("alice")), try registry.workspaceHostKey(for: name("alice")))
        try other.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice"))
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: aliceKey.type, for: name("alice")))
        try other.removeUser(name("alice"))
        XCTAssertNil(try registry.user(named: name("alice")))

        // Both write at once: each waits its turn, none fails, uids stay distinct.
        let keys = try (0..<16).map { _ in try key() }
        let errors = ErrorList()
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            do {
                try (index.isMultiple(of: 2) ? self.registry! : other).addUser(try UserName("u\(index)"), keys: [keys[index]])
            } catch {
                errors.append(error)
            }
        }
        XCTAssertEqual(errors.all.map { "\($0)" }, [])
        let uids = try other.users().map(\.uid)
        XCTAssertEqual(uids.count, 16)
        XCTAssertEqual(Set(uids).count, 16)
        XCTAssertFalse(uids.contains(2000), "alice's uid stays hers")
    }

    // MARK: - Backup records

    func testRecordRestoresIntoAnotherRegistryUnchanged() throws {
        let keys = [try key("alice@laptop"), try key()]
        try registry.addUser(name("alice"), keys: keys)
        let bob = try registry.addUser(name("bob"), keys: [try key("bob")])
        let record = try registry.record(of: name("bob"))
        XCTAssertEqual(record.uid, bob.uid)
        XCTAssertEqual(record.keys.count, 1)
        XCTAssertEqual(try PrivateKey(pemText: record.hostKey), try registry.workspaceHostKey(for: name("bob")))

        // Through JSON, as a backup file carries it.
        let decoded = try JSONDecoder().decode(UserRecord.self, from: try JSONEncoder().encode(record))
        XCTAssertEqual(decoded, record)
        let target = try Registry(stateDirectory: directory + "-restore")
        defer { try? FileManager.default.removeItem(atPath: directory + "-restore") }
        let restored = try target.addUser(restoring: decoded)
        XCTAssertEqual(restored.uid, 2001)
        XCTAssertEqual(try target.record(of: name("bob")), record)
        XCTAssertEqual(try target.user(named: name("bob")), bob)
        XCTAssertEqual(try target.keys(of: name("bob")).map(\.key.line), record.keys)
        // New users never get a uid at or below a restored one.
        XCTAssertEqual(try target.addUser(name("carol"), keys: [try key()]).uid, 2002)
        XCTAssertEqual(try target.addUser(name("dave"), keys: [try key()]).uid, 2003)
    }

    func testRestoreRefusesConflictsAndBadRecordsChangingNothing() throws {
        try registry.addUser(name("alice"), keys: [try key()])
        let bob = try registry.addUser(name("bob"), keys: [try key()])
        let bobRecord = try registry.record(of: name("bob"))
        try registry.removeUser(name("bob"))
        try registry.addUser(name("carol"), keys: [try key()])
        let before = try snapshot()

        var other = bobRecord
        other.name = "mallory"
        XCTAssertThrowsError(try registry.addUser(restoring: other)) {
            XCTAssertEqual($0 as? RegistryError, .uidInUse(uid: bob.uid, owner: "bob", registered: false))
        }
        other.uid = 2000
        XCTAssertThrowsError(try registry.addUser(restoring: other)) {
            XCTAssertEqual($0 as? RegistryError, .uidInUse(uid: 2000, owner: "alice", registered: true))
        }
        var existing = try registry.record(of: name("alice"))
        XCTAssertThrowsError(try registry.addUser(restoring: existing)) {
            XCTAssertEqual($0 as? RegistryError, .userExists("alice"))
        }
        existing.name = "dave"
        existing.uid = 3000
        XCTAssertThrowsError(try registry.addUser(restoring: existing)) {
            guard case .keyRegisteredToOtherUser(_, "alice")? = $0 as? RegistryError else { return XCTFail("\($0)") }
        }
        for broken in [
            UserRecord(name: "../x", uid: 3000, created: Date(), keys: [], hostKey: bobRecord.hostKey),
            UserRecord(name: "dave", uid: 999, created: Date(), keys: [], hostKey: bobRecord.hostKey),
            UserRecord(name: "dave", uid: 3000, created: Date(), keys: ["ssh-dss AAAA"], hostKey: bobRecord.hostKey),
            UserRecord(name: "dave", uid: 3000, created: Date(), keys: [], hostKey: "not a key"),
        ] {
            XCTAssertThrowsError(try registry.addUser(restoring: broken)) {
                guard case .invalidRecord? = $0 as? RegistryError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertEqual(try snapshot(), before)

        // bob himself comes back with his uid and host key.
        XCTAssertEqual(try registry.addUser(restoring: bobRecord).uid, bob.uid)
        XCTAssertEqual(try registry.record(of: name("bob")), bobRecord)
    }

    /// `checkRegistration` refuses exactly what the registrations would refuse, changing nothing.
    func testCheckRegistrationPredictsRefusalsWithoutChanges() throws {
        try registry.addUser(name("alice"), keys: [try key()])
        let bob = try registry.addUser(name("bob"), keys: [try key()])
        let bobRecord = try registry.record(of: name("bob"))
        try registry.removeUser(name("bob"))
        let before = try snapshot()

        var renamed = bobRecord
        renamed.name = "mallory"
        XCTAssertThrowsError(try registry.checkRegistration(of: renamed, keepingUID: true)) {
            XCTAssertEqual($0 as? RegistryError, .uidInUse(uid: bob.uid, owner: "bob", registered: false))
        }
        XCTAssertNoThrow(try registry.checkRegistration(of: renamed, keepingUID: false), "a new uid is free")
        XCTAssertNoThrow(try registry.checkRegistration(of: bobRecord, keepingUID: true))
        XCTAssertThrowsError(try registry.checkRegistration(of: try registry.record(of: name("alice")), keepingUID: false)) {
            XCTAssertEqual($0 as? RegistryError, .userExists("alice"))
        }
        var aliceKeys = renamed
        aliceKeys.keys = try registry.record(of: name("alice")).keys
        XCTAssertThrowsError(try registry.checkRegistration(of: aliceKeys, keepingUID: false)) {
            guard case .keyRegisteredToOtherUser(_, "alice")? = $0 as? RegistryError else { return XCTFail("\($0)") }
        }
        aliceKeys.keys = []
        XCTAssertThrowsError(try registry.checkRegistration(of: aliceKeys, keepingUID: false)) {
            XCTAssertEqual($0 as? RegistryError, .noKeys)
        }

        // A removed name keeps its uid and host key, and has no keys; an unknown name has nothing.
        let kept = try XCTUnwrap(try registry.recordIncludingRemoved(of: name("bob")))
        XCTAssertEqual([kept.uid, kept.keys.count], [bob.uid, 0])
        XCTAssertEqual(kept.hostKey, bobRecord.hostKey)
        XCTAssertEqual(try registry.recordIncludingRemoved(of: name("alice")), try registry.record(of: name("alice")))
        XCTAssertNil(try registry.recordIncludingRemoved(of: name("nobody")))
        XCTAssertEqual(try snapshot(), before)
    }

    // MARK: - Storage

    func testStateIsPrivateAndTheSchemaIsVersioned() throws {
        XCTAssertEqual(try permissions(directory), 0o700)
        XCTAssertEqual(try permissions(registry.path), 0o600, "the file holds workspace host keys")
        try registry.addUser(name("alice"), keys: [try key()])
        XCTAssertEqual(try query(registry.path, "SELECT group_concat(version) FROM schema_migrations"), ["1,2"])
        registry = nil
        // Reopening migrates nothing again and keeps the data.
        registry = try Registry(stateDirectory: directory)
        XCTAssertEqual(try registry.users().map(\.name), ["alice"])
        XCTAssertEqual(try query(registry.path, "SELECT count(*) FROM schema_migrations"), ["2"])
        XCTAssertEqual(try query(registry.path, "PRAGMA journal_mode"), ["wal"])

        // A file from a newer devenv-gw is not touched.
        _ = try query(registry.path, "INSERT INTO schema_migrations (version, applied) VALUES (99, 0)")
        XCTAssertThrowsError(try Registry(stateDirectory: directory)) {
            XCTAssertTrue("\($0)".contains("schema version 99"), "\($0)")
        }
    }

    func testLoginLookupUsesAnIndexAndIsFast() throws {
        var keys: [PublicKey] = []
        for index in 0..<300 {
            let pair = [try key(), try key()]
            keys += pair
            try registry.addUser(name("user\(index)"), keys: pair)
        }
        let plan = try query(registry.path, """
            EXPLAIN QUERY PLAN SELECT 1 FROM keys WHERE base64 = 'x' AND user = 'y' AND type = 'z'
            """).joined(separator: " ")
        XCTAssertTrue(plan.contains("USING INDEX"), plan)
        XCTAssertFalse(plan.contains("SCAN"), plan)

        let start = Date()
        for (index, key) in keys.enumerated() {
            XCTAssertTrue(try registry.isKeyRegistered(base64: key.base64, type: key.type, for: name("user\(index / 2)")))
        }
        let perLookup = Date().timeIntervalSince(start) / Double(keys.count)
        print("isKeyRegistered: \(Int(perLookup * 1e6)) µs per lookup over \(keys.count) keys, plan: \(plan)")
        XCTAssertLessThan(perLookup, 0.001, "a login check takes \(perLookup * 1e6) µs")
    }

    func testUnusableStateDirectoryIsAStorageError() throws {
        let file = directory + "/not-a-directory"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        XCTAssertThrowsError(try Registry(stateDirectory: file)) {
            guard case .storage(let message)? = $0 as? RegistryError else { return XCTFail("\($0)") }
            XCTAssertTrue(message.contains("registry.sqlite3"), message)
        }
    }

    // MARK: - Helpers

    private func key(_ comment: String = "") throws -> PublicKey {
        let generated = try PrivateKey.generate(.ed25519).publicKey
        return try PublicKey(parsing: "\(generated.type) \(generated.base64) \(comment)")
    }

    private func name(_ raw: String) throws -> UserName { try UserName(raw) }

    /// Every user with uid, creation time, keys and host key.
    private func snapshot() throws -> [UserRecord] {
        try registry.users().map { try registry.record(of: UserName($0.name)) }
    }

    private func permissions(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// Runs SQL on the file through a connection of its own; each row's columns joined by '|'.
    private func query(_ path: String, _ sql: String) throws -> [String] {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw CocoaError(.fileReadUnknown) }
        defer { sqlite3_close(db) }
        sqlite3_busy_timeout(db, 5000)
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw NSError(domain: "sqlite", code: 1, userInfo: [NSLocalizedDescriptionKey: String(cString: sqlite3_errmsg(db))])
        }
        defer { sqlite3_finalize(statement) }
        var rows: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            rows.append((0..<sqlite3_column_count(statement)).map {
                sqlite3_column_text(statement, $0).map { String(cString: $0) } ?? ""
            }.joined(separator: "|"))
        }
        return rows
    }
}

struct Failure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

final class ErrorList: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func append(_ error: Error) { lock.lock(); errors.append(error); lock.unlock() }
    var all: [Error] { lock.lock(); defer { lock.unlock() }; return errors }
}
