import Foundation
import TestSupport
import XCTest

/// Every admin change made with the real binary lands in the real journal (or on stderr
/// as JSON lines), naming the operating-system user who ran the command.
final class AdminAuditTests: XCTestCase {
    var state: URL!
    var keys: URL!

    override func setUpWithError() throws {
        try Journal.requireJournald()
        state = try makeTemporaryDirectory("devenv-audit-state")
        keys = try makeTemporaryDirectory("devenv-audit-keys")
    }

    override func tearDown() {
        for url in [state, keys].compactMap({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }

    func testAdminChangesAreInTheJournalWithTheOperatingSystemUser() throws {
        let user = Self.uniqueUserName()
        let (first, firstFingerprint) = try newKey("first")
        let (second, secondFingerprint) = try newKey("second")
        let keyFile = keys.appendingPathComponent("both.pub").path
        try "\(first)\n\(second)\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let (third, thirdFingerprint) = try newKey("third")

        XCTAssertEqual(try cli(["adduser", user, "--key-file", keyFile, "--audit", "journald"]).status, 0)
        XCTAssertEqual(try cli(["keys", "add", user, "--key", third]).status, 0)
        XCTAssertEqual(try cli(["keys", "remove", user, firstFingerprint]).status, 0)
        // A refused change records nothing.
        XCTAssertEqual(try cli(["keys", "add", user, "--key", second]).status, 1)
        XCTAssertEqual(try cli(["deluser", user]).status, 0)

        let entries = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 6)
        XCTAssertEqual(entries.map { $0["DEVENV_EVENT"] },
                       ["user-added", "key-added", "key-added", "key-added", "key-removed", "user-removed"])
        XCTAssertEqual(entries.map { $0["DEVENV_KEY_FINGERPRINT"] },
                       [nil, firstFingerprint, secondFingerprint, thirdFingerprint, firstFingerprint, nil])
        let uid = String(getuid())
        let name = String(cString: getpwuid(getuid()).pointee.pw_name)
        for entry in entries {
            XCTAssertEqual(entry["SYSLOG_IDENTIFIER"], "devenv-gw")
            XCTAssertEqual(entry["PRIORITY"], "5")
            XCTAssertEqual(entry["DEVENV_ADMIN_UID"], uid)
            XCTAssertEqual(entry["DEVENV_ADMIN_USER"], name)
            XCTAssertEqual(entry["_UID"], uid, "journald's trusted uid of the writer agrees")
            XCTAssertEqual(entry["_COMM"], "devenv-gw")
        }
        XCTAssertEqual(entries[0]["MESSAGE_ID"], "db746a451b87443fa599af23dcab5913")
        XCTAssertEqual(entries[0]["DEVENV_UID"], "2000")
        XCTAssertEqual(entries[0]["DEVENV_KEY_COUNT"], "2")
        XCTAssertEqual(entries[0]["MESSAGE"], "\(name) (uid \(uid)) added user \"\(user)\" (uid 2000) with 2 keys")
        XCTAssertEqual(entries[1]["MESSAGE_ID"], "1d823b6cbfa44b9fb56a6c5e806cfed7")
        XCTAssertEqual(entries[1]["DEVENV_KEY_TYPE"], "ssh-ed25519")
        XCTAssertEqual(entries[1]["DEVENV_KEY_COMMENT"], "first@test")
        XCTAssertEqual(entries[4]["MESSAGE_ID"], "a6533f5d8572421491c2c1fded4cb516")
        XCTAssertEqual(entries[5]["MESSAGE_ID"], "d77dc736d2094ab78ba78a626d010450")
        XCTAssertEqual(entries[5]["DEVENV_KEY_COUNT"], "2")
        XCTAssertEqual(entries[5]["MESSAGE"], "\(name) (uid \(uid)) removed user \"\(user)\" and 2 keys")
    }

    /// `--audit stderr`, DEVENV_GW_AUDIT and the config file's `audit` all choose stderr;
    /// stdout stays what it was.
    func testStderrDestinationFromFlagEnvironmentOrConfig() throws {
        let config = state.appendingPathComponent("config.toml")
        try "audit = \"stderr\"\n".write(to: config, atomically: true, encoding: .utf8)
        let ways: [(arguments: [String], environment: [String: String])] = [
            (["--audit", "stderr"], [:]),
            ([], ["DEVENV_GW_AUDIT": "stderr"]),
            (["--config", config.path], [:]),
            ([], ["DEVENV_GW_CONFIG": config.path]),
        ]
        for (arguments, environment) in ways {
            let user = Self.uniqueUserName()
            let (key, fingerprint) = try newKey(user)
            let added = try cli(["adduser", user, "--key", key] + arguments, environment: environment)
            XCTAssertEqual(added.status, 0, added.stderr)
            XCTAssertEqual(added.output, "added \(user) (uid \(try uidOf(user))) with 1 key: \(fingerprint) ssh-ed25519 \(user)@test\n")
            let lines = added.stderr.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 2, "\(arguments) \(environment): \(added.stderr)")
            let objects = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]) }
            XCTAssertEqual(objects.map { $0["DEVENV_EVENT"] }, ["user-added", "key-added"])
            XCTAssertEqual(objects.map { $0["DEVENV_USER"] }, [user, user])
            XCTAssertEqual(objects[1]["DEVENV_KEY_FINGERPRINT"], fingerprint)
            XCTAssertEqual(objects[1]["DEVENV_ADMIN_UID"], String(getuid()))
            XCTAssertEqual(objects[1]["MESSAGE_ID"], "1d823b6cbfa44b9fb56a6c5e806cfed7")
            XCTAssertEqual(try Journal.read(["DEVENV_USER=\(user)"]).count, 0, "nothing went to the journal")
        }
    }

    func testSudoUserIsRecorded() throws {
        let user = Self.uniqueUserName()
        let (key, _) = try newKey(user)
        XCTAssertEqual(try cli(["adduser", user, "--key", key], environment: ["SUDO_USER": "carol"]).status, 0)
        let entries = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 2)
        XCTAssertEqual(entries.map { $0["DEVENV_ADMIN_SUDO_USER"] }, ["carol", "carol"])
        XCTAssertTrue(entries[0]["MESSAGE"]?.contains("(uid \(getuid())) via sudo by carol added user") == true,
                      entries[0]["MESSAGE"] ?? "")
    }

    func testInvalidAuditDestinationIsAUsageError() throws {
        let user = Self.uniqueUserName()
        let (key, _) = try newKey(user)
        for (arguments, environment) in [(["--audit", "syslog"], [:]), ([], ["DEVENV_GW_AUDIT": "file"])] {
            let result = try cli(["adduser", user, "--key", key] + arguments, environment: environment)
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: invalid audit destination"), result.stderr)
        }
        XCTAssertEqual(try cli(["users", "--json"]).output, "[\n\n]\n", "nothing was added")
    }

    // MARK: - Helpers

    static func uniqueUserName() -> String {
        "a\(UInt32.random(in: 0..<UInt32.max))"
    }

    func cli(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProgramResult {
        var environment = ProcessInfo.processInfo.environment
        for name in ["DEVENV_GW_AUDIT", "DEVENV_GW_CONFIG", "SUDO_USER"] { environment[name] = nil }
        environment.merge(extra) { $1 }
        return try runProgram(DevenvBinary.path, arguments + ["--state-dir", state.path, "--prefix", "audittest"],
                              environment: environment)
    }

    /// A new ed25519 key line and its fingerprint.
    func newKey(_ name: String) throws -> (line: String, fingerprint: String) {
        let identity = try SSHClientIdentity(named: name, in: keys)
        let listed = try runProgram("/usr/bin/ssh-keygen", ["-l", "-f", identity.privateKeyPath + ".pub"])
        return (identity.publicKeyLine, String(listed.output.split(separator: " ")[1]))
    }

    func uidOf(_ user: String) throws -> Int {
        let listed = try JSONSerialization.jsonObject(with: cli(["users", "--json"]).stdout) as? [[String: Any]]
        return try XCTUnwrap(listed?.first { $0["name"] as? String == user }?["uid"] as? Int)
    }
}
