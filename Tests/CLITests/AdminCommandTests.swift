import Foundation
import TestSupport
import XCTest

/// The admin commands of the real binary, run as an admin would.
final class AdminCommandTests: XCTestCase {
    var state: URL!
    var keys: URL!

    override func setUpWithError() throws {
        state = try makeTemporaryDirectory("devenv-cli-state")
        keys = try makeTemporaryDirectory("devenv-cli-keys")
    }

    override func tearDown() {
        for url in [state, keys].compactMap({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }

    private var instance: [String] { ["--state-dir", state.path, "--prefix", "clitest"] }

    @discardableResult
    private func cli(_ arguments: [String], input: Data? = nil) throws -> ProgramResult {
        try runProgram(DevenvBinary.path, arguments + instance, input: input)
    }

    private func newKey(_ name: String, type: String = "ed25519", bits: String? = nil) throws -> String {
        let path = keys.appendingPathComponent(name).path
        let arguments = ["-q", "-t", type, "-N", "", "-C", "\(name)@test", "-f", path] + (bits.map { ["-b", $0] } ?? [])
        XCTAssertEqual(try runProgram("/usr/bin/ssh-keygen", arguments).status, 0)
        return try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Everything the registry holds, as the admin sees it.
    private func registryState() throws -> String {
        let users = try cli(["users", "--json"])
        XCTAssertEqual(users.status, 0, users.stderr)
        let names = (try JSONSerialization.jsonObject(with: users.stdout) as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
        return try ([users.output] + names.map { try cli(["keys", $0, "--json"]).output }).joined()
    }

    func testAddUserFromEachKeySourceAndListAsJSON() throws {
        let alice = try newKey("alice")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", alice]).status, 0)
        let bobFile = keys.appendingPathComponent("bob.pub").path
        _ = try newKey("bob")
        let bob2 = try newKey("bob2")
        try FileHandle(forWritingAtPath: bobFile).map { $0.seekToEndOfFile(); $0.write(Data("\n# second\n\(bob2)\n".utf8)) }
        XCTAssertEqual(try cli(["adduser", "bob", "--key-file", bobFile]).status, 0)
        let carol = try newKey("carol")
        let fromStdin = try cli(["adduser", "carol", "--key-file", "-"], input: Data(carol.utf8))
        XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)

        let users = try JSONSerialization.jsonObject(with: try cli(["users", "--json"]).stdout) as? [[String: Any]]
        XCTAssertEqual(users?.compactMap { $0["name"] as? String }, ["alice", "bob", "carol"])
        XCTAssertEqual(users?.compactMap { $0["keys"] as? Int }, [1, 2, 1])
        XCTAssertEqual(Set(users?.compactMap { $0["uid"] as? Int } ?? []).count, 3)
        let aliceKeys = try JSONSerialization.jsonObject(with: try cli(["keys", "alice", "--json"]).stdout) as? [[String: Any]]
        XCTAssertEqual(aliceKeys?.first?["key"] as? String, alice)
        XCTAssertTrue((aliceKeys?.first?["fingerprint"] as? String)?.hasPrefix("SHA256:") == true)

        let removed = try cli(["deluser", "bob"])
        XCTAssertEqual(removed.status, 0)
        XCTAssertTrue(removed.output.contains("clitest-bob-home is kept"), removed.output)
        XCTAssertEqual(try cli(["keys", "bob"]).status, 1)
    }

    func testHostileNamesAreRefusedAndChangeNothing() throws {
        let key = try newKey("valid")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", try newKey("alice")]).status, 0)
        let before = try registryState()
        let hostile = ["../x", "Alice", "a b", "x\nPRIORITY=0", "--privileged", String(repeating: "a", count: 33),
                       "\u{0430}lice", "", "root", "x;rm -rf /", "al/ice"]
        for name in hostile {
            // After "--" even a name that looks like an option reaches the name check.
            let result = try runProgram(DevenvBinary.path, ["adduser", "--key", key] + instance + ["--", name])
            XCTAssertNotEqual(result.status, 0, name.debugDescription)
            XCTAssertEqual(result.status, 1, "\(name.debugDescription): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error:"), result.stderr)
            XCTAssertFalse(result.stderr.contains("\nPRIORITY"), "control characters are escaped: \(result.stderr)")
        }
        let flag = try cli(["adduser", "--privileged", "--key", key])
        XCTAssertEqual(flag.status, 2, "a flag-like name without -- is a usage error")
        XCTAssertEqual(try registryState(), before)
    }

    func testBadKeysAreRefusedWithAReasonAndChangeNothing() throws {
        let alice = try newKey("alice")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", alice]).status, 0)
        let before = try registryState()
        let good = try newKey("good")
        let base64 = good.split(separator: " ")[1]
        let privateKey = try String(contentsOfFile: keys.appendingPathComponent("good").path, encoding: .utf8)
        let cases: [(String, String)] = [
            (try newKey("dsa", type: "dsa"), "DSA"),
            (try newKey("rsa1024", type: "rsa", bits: "1024"), "too short"),
            ("ssh-ed25519 \(base64.dropLast(12))", "not a valid public key"),
            ("ssh-ed25519 bm90IGEga2V5IGF0IGFsbA==", "not a valid public key"),
            (privateKey, "private key"),
            ("   ", "empty"),
            (alice, "already registered to user alice"),
        ]
        for (key, reason) in cases {
            let result = try cli(["adduser", "bob", "--key=\(key)"])
            XCTAssertEqual(result.status, 1, "\(reason): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(reason), "expected '\(reason)' in: \(result.stderr)")
        }
        let emptyFile = keys.appendingPathComponent("empty.pub").path
        FileManager.default.createFile(atPath: emptyFile, contents: Data())
        XCTAssertEqual(try cli(["adduser", "bob", "--key-file", emptyFile]).status, 1)
        XCTAssertEqual(try cli(["adduser", "bob"]).status, 2, "no key source is a usage error")
        XCTAssertEqual(try registryState(), before)
    }

    func testGitHubKeysAreFetchedFromTheConfiguredServer() throws {
        let served = try makeTemporaryDirectory("devenv-github")
        defer { try? FileManager.default.removeItem(at: served) }
        let first = try newKey("gh1")
        let second = try newKey("gh2", type: "rsa", bits: "3072")
        try "\(first)\n\(second)\n".write(to: served.appendingPathComponent("octocat.keys"), atomically: true, encoding: .utf8)
        let port = 20000 + Int.random(in: 0..<20000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", "127.0.0.1", "\(port)", "--directory", served.path]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        var added = try cli(["adduser", "octo", "--github", "octocat", "--github-url", "http://127.0.0.1:\(port)"])
        for _ in 0..<50 where added.status != 0 && added.stderr.contains("cannot fetch") {
            usleep(100_000)  // the server may still be starting
            added = try cli(["adduser", "octo", "--github", "octocat", "--github-url", "http://127.0.0.1:\(port)"])
        }
        XCTAssertEqual(added.status, 0, added.stderr)
        let listed = try JSONSerialization.jsonObject(with: try cli(["keys", "octo", "--json"]).stdout) as? [[String: Any]]
        XCTAssertEqual(Set(listed?.compactMap { $0["key"] as? String } ?? []), [first, second])

        let missing = try cli(["adduser", "nobody", "--github", "ghost", "--github-url", "http://127.0.0.1:\(port)"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("HTTP 404"), missing.stderr)
    }
}
