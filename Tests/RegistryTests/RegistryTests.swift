import Foundation
import Registry
import SSHKeys
import UserNames
import XCTest

/// The registry on a real SQLite file.
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

    private func key(_ comment: String = "") throws -> PublicKey {
        let generated = try PrivateKey.generate(.ed25519).publicKey
        return try PublicKey(parsing: "\(generated.type) \(generated.base64) \(comment)")
    }

    private func name(_ raw: String) throws -> UserName { try UserName(raw) }

    func testAddListAndRemoveUsersAndKeys() throws {
        let aliceKey = try key("alice@laptop")
        let (alice, returning) = try registry.addUser(name("alice"), keys: [aliceKey, aliceKey])
        XCTAssertFalse(returning)
        XCTAssertEqual(alice.uid, Registry.firstUID)
        let bob = try registry.addUser(name("bob"), keys: [try key()]).user
        XCTAssertEqual(bob.uid, Registry.firstUID + 1)
        XCTAssertEqual(try registry.users().map(\.name), ["alice", "bob"])
        XCTAssertEqual(try registry.keys(of: name("alice")).map(\.key), [aliceKey], "duplicates collapse")
        XCTAssertTrue(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-ed25519", for: name("alice")))
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: "ssh-ed25519", for: name("bob")))

        let second = try key("desk")
        try registry.addKeys([second], to: name("alice"))
        XCTAssertEqual(try registry.keys(of: name("alice")).count, 2)
        try registry.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice"))
        XCTAssertEqual(try registry.keys(of: name("alice")).map(\.key), [second])
        XCTAssertThrowsError(try registry.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice")))

        try registry.removeUser(name("alice"))
        XCTAssertNil(try registry.user(named: name("alice")))
        XCTAssertFalse(try registry.isKeyRegistered(base64: second.base64, type: "ssh-ed25519", for: name("alice")))
        XCTAssertThrowsError(try registry.removeUser(name("alice"))) {
            XCTAssertEqual($0 as? RegistryError, .noSuchUser("alice"))
        }
    }

    func testRefusedChangesLeaveTheRegistryUnchanged() throws {
        let shared = try key()
        try registry.addUser(name("alice"), keys: [shared])
        let before = try snapshot()
        XCTAssertThrowsError(try registry.addUser(name("bob"), keys: [try key(), shared])) {
            XCTAssertEqual($0 as? RegistryError,
                           .keyRegisteredToOtherUser(fingerprint: shared.fingerprint, owner: "alice"))
        }
        XCTAssertThrowsError(try registry.addUser(name("alice"), keys: [try key()])) {
            XCTAssertEqual($0 as? RegistryError, .userExists("alice"))
        }
        XCTAssertThrowsError(try registry.addUser(name("root"), keys: [try key()])) {
            XCTAssertEqual($0 as? RegistryError, .reservedName("root"))
        }
        XCTAssertThrowsError(try registry.addUser(name("carol"), keys: []))
        XCTAssertThrowsError(try registry.addKeys([try key(), shared], to: name("alice")))
        XCTAssertEqual(try snapshot(), before)
        XCTAssertNil(try registry.user(named: name("bob")), "bob's uid was not spent either")
        XCTAssertEqual(try registry.addUser(name("bob"), keys: [try key()]).user.uid, Registry.firstUID + 1)
    }

    func testReaddedUserGetsTheSameUidAndHostKey() throws {
        try registry.addUser(name("alice"), keys: [try key()])
        let uid = try XCTUnwrap(try registry.user(named: name("alice"))).uid
        let hostKey = try registry.workspaceHostKey(for: name("alice"))
        try registry.removeUser(name("alice"))
        try registry.addUser(name("bob"), keys: [try key()])
        let (again, returning) = try registry.addUser(name("alice"), keys: [try key()])
        XCTAssertTrue(returning)
        XCTAssertEqual(again.uid, uid)
        XCTAssertEqual(try registry.workspaceHostKey(for: name("alice")), hostKey)
        XCTAssertNotEqual(try registry.user(named: name("bob"))?.uid, uid)
    }

    func testConcurrentAddsGetDistinctUids() throws {
        let keys = try (0..<8).map { _ in try key() }
        let errors = ErrorList()
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            do { try self.registry.addUser(try UserName("user\(index)"), keys: [keys[index]]) } catch { errors.append(error) }
        }
        XCTAssertTrue(errors.isEmpty)
        let uids = try registry.users().map(\.uid)
        XCTAssertEqual(uids.count, 8)
        XCTAssertEqual(Set(uids).count, 8)
    }

    func testTwoProcessesShareTheRegistry() throws {
        let other = try Registry(stateDirectory: directory)
        let aliceKey = try key()
        try registry.addUser(name("alice"), keys: [aliceKey])
        XCTAssertTrue(try other.isKeyRegistered(base64: aliceKey.base64, type: aliceKey.type, for: name("alice")))
        try other.removeKey(fingerprint: aliceKey.fingerprint, from: name("alice"))
        XCTAssertFalse(try registry.isKeyRegistered(base64: aliceKey.base64, type: aliceKey.type, for: name("alice")))
    }

    private func snapshot() throws -> [String] {
        try registry.users().flatMap { user in
            ["\(user.name):\(user.uid)"] + (try registry.keys(of: UserName(user.name)).map(\.key.fingerprint))
        }
    }
}

final class ErrorList: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func append(_ error: Error) { lock.lock(); errors.append(error); lock.unlock() }
    var isEmpty: Bool { lock.lock(); defer { lock.unlock() }; return errors.isEmpty }
}
