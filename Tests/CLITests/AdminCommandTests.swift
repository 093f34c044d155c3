import Foundation
import TestSupport
import XCTest

/// The admin commands of the real `devenv-gw` binary, run as an admin would, each test
/// with its own state directory.
final class AdminCommandTests: XCTestCase {
    var state: URL!
    var keys: URL!
    var server: Process?

    override func setUpWithError() throws {
        state = try makeTemporaryDirectory("devenv-cli-state")
        keys = try makeTemporaryDirectory("devenv-cli-keys")
    }

    override func tearDown() {
        if let server, server.isRunning {
            kill(server.processIdentifier, SIGTERM)
            server.waitUntilExit()
        }
        for url in [state, keys].compactMap({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }

    // MARK: - Adding and listing

    func testAddUserFromEachKeySourceAndList() throws {
        let alice = try newKey("alice")
        let added = try cli(["adduser", "alice", "--key", alice])
        XCTAssertEqual(added.status, 0, added.stderr)
        let aliceFingerprint = try fingerprint(of: "alice")
        XCTAssertEqual(added.output, "added alice (uid 2000) with 1 key: \(aliceFingerprint) ssh-ed25519 alice@test\n")

        let bobFile = keys.appendingPathComponent("bob-keys").path
        let bob1 = try newKey("bob1"), bob2 = try newKey("bob2", type: "rsa", bits: "3072")
        try "# bob's keys\n\(bob1)\n\n\(bob2)\n\(bob1)\n".write(toFile: bobFile, atomically: true, encoding: .utf8)
        let bob = try cli(["adduser", "bob", "--key-file", bobFile])
        XCTAssertEqual(bob.status, 0, bob.stderr)
        XCTAssertTrue(bob.output.hasPrefix("added bob (uid 2001) with 2 keys:\n"), bob.output)

        let carol = try newKey("carol")
        let fromStdin = try cli(["adduser", "carol", "--key-file", "-"], input: Data("\(carol)\n".utf8))
        XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)

        let users = try json(cli(["users", "--json"]))
        XCTAssertEqual(users.map { $0["name"] as? String }, ["alice", "bob", "carol"])
        XCTAssertEqual(users.map { $0["uid"] as? Int }, [2000, 2001, 2002])
        XCTAssertEqual(users.map { $0["keys"] as? Int }, [1, 2, 1])
        XCTAssertTrue(users.allSatisfy { ($0["created"] as? String)?.hasSuffix("Z") == true }, "\(users)")

        let aliceKeys = try json(cli(["keys", "alice", "--json"]))
        XCTAssertEqual(aliceKeys.count, 1)
        XCTAssertEqual(aliceKeys.first?["key"] as? String, alice)
        XCTAssertEqual(aliceKeys.first?["fingerprint"] as? String, aliceFingerprint)
        XCTAssertEqual(aliceKeys.first?["type"] as? String, "ssh-ed25519")
        XCTAssertEqual(aliceKeys.first?["bits"] as? Int, 256)
        XCTAssertEqual(aliceKeys.first?["comment"] as? String, "alice@test")
        XCTAssertEqual(try json(cli(["keys", "list", "bob", "--json"])).compactMap { $0["key"] as? String }, [bob1, bob2])

        let table = try cli(["users"])
        XCTAssertEqual(table.output.split(separator: "\n").map { $0.split(separator: " ").prefix(3).joined(separator: " ") },
                       ["NAME UID KEYS", "alice 2000 1", "bob 2001 2", "carol 2002 1"])
        XCTAssertTrue(try cli(["keys", "bob"]).output.contains("ssh-rsa      3072"))
    }

    func testStateDirectoryAndPrefixComeFromTheEnvironment() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["DEVENV_GW_STATE_DIR"] = state.path
        environment["DEVENV_GW_PREFIX"] = "envprefix"
        let added = try runProgram(DevenvBinary.path, ["adduser", "alice", "--key", try newKey("alice")],
                                   environment: environment)
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertEqual(try json(cli(["users", "--json"])).map { $0["name"] as? String }, ["alice"])
        let removed = try runProgram(DevenvBinary.path, ["deluser", "alice"], environment: environment)
        XCTAssertEqual(removed.output, "removed alice; the home volume envprefix-alice-home is kept\n")
    }

    func testKeysAddAndRemove() throws {
        let first = try newKey("first")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", first]).status, 0)
        let second = try newKey("second"), third = try newKey("third")
        let added = try cli(["keys", "add", "alice", "--key", second, "--key", third])
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.output.hasPrefix("added 2 keys to alice:\n"), added.output)
        let fromStdin = try cli(["keys", "add", "alice", "--key-file", "-"], input: Data(try newKey("fourth").utf8))
        XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)
        XCTAssertEqual(try json(cli(["keys", "alice", "--json"])).count, 4)

        let again = try cli(["keys", "add", "alice", "--key", try newKey("fifth"), "--key", second])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already registered to user alice"), again.stderr)
        XCTAssertEqual(try json(cli(["keys", "alice", "--json"])).count, 4, "nothing of a refused add is kept")

        let secondFingerprint = try fingerprint(of: "second")
        let removed = try cli(["keys", "remove", "alice", secondFingerprint])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertEqual(removed.output, "removed \(secondFingerprint) ssh-ed25519 second@test from alice\n")
        let unknown = try cli(["keys", "remove", "alice", secondFingerprint])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("has no key with fingerprint"), unknown.stderr)

        // Without the SHA256: prefix too; the last key may go, with a warning.
        for name in ["first", "third", "fourth"] {
            let fingerprint = try fingerprint(of: name)
            let result = try cli(["keys", "remove", "alice", String(fingerprint.dropFirst("SHA256:".count))])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stderr.contains("no key left"), name == "fourth", result.stderr)
        }
        XCTAssertEqual(try json(cli(["keys", "alice", "--json"])).count, 0)
        XCTAssertEqual(try json(cli(["users", "--json"])).first?["keys"] as? Int, 0)
    }

    func testDelUserKeepsTheVolumeAndTheUidForTheName() throws {
        XCTAssertEqual(try cli(["adduser", "alice", "--key", try newKey("alice")]).status, 0)
        XCTAssertEqual(try cli(["adduser", "bob", "--key", try newKey("bob")]).status, 0)
        let removed = try cli(["deluser", "bob"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertEqual(removed.output, "removed bob; the home volume clitest-bob-home is kept\n")

        let keys = try cli(["keys", "bob"])
        XCTAssertEqual(keys.status, 1)
        XCTAssertEqual(keys.stderr, "devenv-gw: error: no such user: 'bob'\n")
        XCTAssertEqual(try cli(["deluser", "bob"]).status, 1)
        XCTAssertEqual(try json(cli(["users", "--json"])).map { $0["name"] as? String }, ["alice"])

        let carol = try cli(["adduser", "carol", "--key", try newKey("carol")])
        XCTAssertTrue(carol.output.contains("(uid 2002)"), "bob's uid is not given away: \(carol.output)")
        let bobAgain = try cli(["adduser", "bob", "--key", try newKey("bob2")])
        XCTAssertTrue(bobAgain.output.contains("(uid 2001)"), "bob gets his uid back: \(bobAgain.output)")
    }

    // MARK: - Refusals

    func testHostileNamesAreRefusedAndChangeNothing() throws {
        let key = try newKey("valid")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", try newKey("alice")]).status, 0)
        let before = try registryState()
        let hostile = ["../x", "Alice", "a b", "x\nPRIORITY=0", "--privileged", String(repeating: "a", count: 33),
                       "\u{0430}lice", "", "root", "x;rm -rf /", "al/ice", "-x", "x\u{1b}[2J", "alice\u{200b}"]
        for name in hostile {
            for arguments in [["adduser", "--key", key, "--", name], ["deluser", "--", name],
                              ["keys", "list", "--json", "--", name], ["keys", "remove", "--", name, "SHA256:x"]] {
                let result = try cli(arguments)
                XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
                XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: "), result.stderr)
                XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, "one line, escaped: \(result.stderr)")
                XCTAssertFalse(result.stderr.contains("\u{1b}"), result.stderr)
                XCTAssertTrue(["user name", "system account", "no such user: 'root'"].contains { result.stderr.contains($0) },
                              result.stderr)
                XCTAssertEqual(result.output, "")
            }
        }
        XCTAssertEqual(try cli(["adduser", "--key", key, "--", "x\nPRIORITY=0"]).stderr,
                       "devenv-gw: error: invalid user name 'x\\u{a}PRIORITY=0': use lowercase letters, digits, "
                       + "'_' and '-', starting with a letter or '_'\n")
        // A flag-like name without `--` is not a name at all.
        for arguments in [["adduser", "--privileged", "--key", key], ["adduser=--privileged", "--key", key]] {
            let result = try cli(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: "), result.stderr)
        }
        XCTAssertEqual(try registryState(), before)
    }

    func testBadKeysAreRefusedWithAReasonAndChangeNothing() throws {
        let alice = try newKey("alice")
        XCTAssertEqual(try cli(["adduser", "alice", "--key", alice]).status, 0)
        let before = try registryState()
        let good = try newKey("good")
        let base64 = good.split(separator: " ")[1]
        let privateKey = try String(contentsOfFile: keys.appendingPathComponent("good").path, encoding: .utf8)
        let cases: [(key: String, reason: String)] = [
            (try newKey("dsa", type: "dsa"), "DSA keys (ssh-dss) are insecure"),
            (try newKey("rsa1024", type: "rsa", bits: "1024"), "RSA key of 1024 bits is too short"),
            ("ssh-ed25519 \(base64.dropLast(12)) truncated", "not a valid public key"),
            ("ssh-ed25519 bm90IGEga2V5IGF0IGFsbA== garbage", "not a valid public key"),
            ("garbage", "has a type but no base64 key data"),
            ("ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIL6WXedfDyw6fsR", "unsupported key type"),
            (privateKey, "this is a private key"),
            ("", "the key is empty"),
            (alice, "already registered to user alice"),
        ]
        let file = keys.appendingPathComponent("candidate.pub").path
        for (key, reason) in cases {
            let direct = try cli(["adduser", "bob", "--key", key])
            XCTAssertEqual(direct.status, 1, "\(reason): \(direct.stderr)")
            XCTAssertTrue(direct.stderr.hasPrefix("devenv-gw: error: "), direct.stderr)
            XCTAssertTrue(direct.stderr.contains(reason), "expected '\(reason)' in: \(direct.stderr)")
            // The same key in a file beside a good one: the whole file is refused.
            if !key.isEmpty {
                try "\(good)\n\(key)\n".write(toFile: file, atomically: true, encoding: .utf8)
                let fromFile = try cli(["adduser", "bob", "--key-file", file])
                XCTAssertEqual(fromFile.status, 1, "\(reason): \(fromFile.stderr)")
                XCTAssertTrue(fromFile.stderr.contains(reason), "expected '\(reason)' in: \(fromFile.stderr)")
            }
            XCTAssertEqual(try cli(["keys", "add", "alice", "--key", key]).status, 1, reason)
        }
        let empty = keys.appendingPathComponent("empty.pub").path
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data("\n# nothing\n".utf8)))
        for source in [["--key-file", empty], ["--key-file", "-"], ["--key-file", keys.appendingPathComponent("missing").path],
                       ["--key-file", keys.path]] {
            let result = try cli(["adduser", "bob"] + source, input: Data())
            XCTAssertEqual(result.status, 1, "\(source): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("no public key in") || result.stderr.contains("cannot read"), result.stderr)
        }
        XCTAssertEqual(try registryState(), before)
    }

    /// A directory given as the key file is named as such, not with a Foundation error code.
    func testADirectoryAsKeyFileIsAClearError() throws {
        let result = try cli(["adduser", "bob", "--key-file", keys.path])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr, "devenv-gw: error: cannot read '\(keys.path)': it is a directory, not a key file\n")
    }

    /// Keys that parse but that no key pair has (anybody could sign for them) are refused:
    /// Ed25519 points of small order, the all-zero key among them, and RSA exponent 1 or an
    /// even modulus.
    func testDegenerateKeysAreRefused() throws {
        func line(_ type: String, _ fields: [[UInt8]]) -> String {
            let blob = ([Array(type.utf8)] + fields).flatMap { field -> [UInt8] in
                withUnsafeBytes(of: UInt32(field.count).bigEndian, Array.init) + field
            }
            return "\(type) \(Data(blob).base64EncodedString()) degenerate@test"
        }
        // A real RSA key's modulus, with a bad exponent or made even.
        let rsa = Data(base64Encoded: String(try newKey("rsa", type: "rsa", bits: "2048").split(separator: " ")[1]))!
        let modulus = Array(rsa.suffix(257))  // 2048 bits with a leading zero byte
        XCTAssertEqual(modulus.first, 0)
        let degenerate = [
            line("ssh-ed25519", [[UInt8](repeating: 0, count: 32)]),
            line("ssh-ed25519", [[1] + [UInt8](repeating: 0, count: 31)]),
            line("ssh-ed25519", [[0xec] + [UInt8](repeating: 0xff, count: 30) + [0xff]]),
            line("ssh-rsa", [[1], modulus]),
            line("ssh-rsa", [[1, 0, 0], modulus]),
            line("ssh-rsa", [[1, 0, 1], modulus.dropLast() + [modulus.last! & 0xfe]]),
        ]
        XCTAssertEqual(try cli(["adduser", "alice", "--key", try newKey("alice")]).status, 0)
        let before = try registryState()
        for key in degenerate {
            for arguments in [["adduser", "bob", "--key", key], ["keys", "add", "alice", "--key", key]] {
                let result = try cli(arguments)
                XCTAssertEqual(result.status, 1, "\(key): \(result.stderr)")
                XCTAssertTrue(result.stderr.contains("the key is not a usable public key ("), "\(key): \(result.stderr)")
            }
        }
        XCTAssertEqual(try registryState(), before)
        XCTAssertEqual(try cli(["adduser", "bob", "--key", line("ssh-rsa", [[1, 0, 1], modulus])]).status, 0,
                       "the same modulus with exponent 65537 is a key")
    }

    func testUsageErrorsExitTwo() throws {
        let key = try newKey("alice")
        let file = keys.appendingPathComponent("alice.pub").path
        let usageErrors: [[String]] = [
            ["adduser", "bob"],
            ["adduser", "bob", "--key", key, "--key-file", file],
            ["adduser", "bob", "--key-file", file, "--github", "octocat"],
            ["adduser", "bob", "--github", "-octocat"],
            ["adduser", "bob", "--github", "octo_cat"],
            ["adduser", "bob", "--github", String(repeating: "a", count: 40)],
            ["adduser", "bob", "--github", "octocat", "--github-url", "file:///etc"],
            ["users", "--bogus"],
            ["keys"],
            ["keys", "remove", "alice"],
            ["frobnicate"],
        ]
        for arguments in usageErrors {
            let result = try cli(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: "), "\(arguments): \(result.stderr)")
        }
        for prefix in ["Bad", "a\u{301}", "abcdefghijklmnopq", "1abc", "a_b", ""] {
            let result = try runProgram(DevenvBinary.path, ["users", "--state-dir", state.path, "--prefix", prefix])
            XCTAssertEqual(result.status, 2, "\(prefix.debugDescription): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: invalid prefix"), result.stderr)
        }
        let longest = try runProgram(DevenvBinary.path, ["users", "--state-dir", state.path, "--prefix", "a-0123456789abcd"])
        XCTAssertEqual(longest.status, 0, "16 characters are allowed: \(longest.stderr)")
        let help = try runProgram(DevenvBinary.path, ["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.output.contains("DOCKER_HOST"), help.output)
        XCTAssertTrue(try runProgram(DevenvBinary.path, ["adduser", "--help"]).output.contains("--key-file"))
    }

    // MARK: - GitHub

    func testGitHubKeysAreFetchedFromTheConfiguredServer() throws {
        let served = try makeTemporaryDirectory("devenv-github")
        defer { try? FileManager.default.removeItem(at: served) }
        let first = try newKey("gh1")
        let second = try newKey("gh2", type: "rsa", bits: "3072")
        let secondBare = second.split(separator: " ").prefix(2).joined(separator: " ")  // GitHub serves no comments
        let dsa = try newKey("gh3", type: "dsa")
        try "\(first)\n\(secondBare)\n\(dsa)\n".write(to: served.appendingPathComponent("octocat.keys"),
                                                      atomically: true, encoding: .utf8)
        let base = try startHTTPServer(serving: served)

        let added = try cli(["adduser", "octo", "--github", "octocat", "--github-url", base + "/"])
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.output.hasPrefix("added octo (uid 2000) with 2 keys:"), added.output)
        XCTAssertTrue(added.stderr.contains("warning: skipping a key of GitHub user octocat: DSA"), added.stderr)
        let listed = try json(cli(["keys", "octo", "--json"]))
        XCTAssertEqual(listed.compactMap { $0["key"] as? String }, [first, secondBare + " github:octocat"])

        // The same from the environment, for keys add.
        var environment = ProcessInfo.processInfo.environment
        environment["DEVENV_GW_GITHUB_URL"] = base
        let third = try newKey("gh4")
        try "\(third)\n".write(to: served.appendingPathComponent("other.keys"), atomically: true, encoding: .utf8)
        let more = try runProgram(DevenvBinary.path, ["keys", "add", "octo", "--github", "other"] + globals,
                                  environment: environment)
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertEqual(try json(cli(["keys", "octo", "--json"])).count, 3)

        let before = try registryState()
        let missing = try cli(["adduser", "ghostuser", "--github", "ghost", "--github-url", base])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "devenv-gw: error: cannot fetch \(base)/ghost.keys: HTTP 404 (no such GitHub user?)\n")
        try "\(dsa)\n".write(to: served.appendingPathComponent("dsaonly.keys"), atomically: true, encoding: .utf8)
        let unusable = try cli(["adduser", "ghostuser", "--github", "dsaonly", "--github-url", base])
        XCTAssertEqual(unusable.status, 1)
        XCTAssertTrue(unusable.stderr.contains("lists no usable public key"), unusable.stderr)

        let server = try XCTUnwrap(self.server)
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        let down = try cli(["adduser", "ghostuser", "--github", "octocat", "--github-url", base])
        XCTAssertEqual(down.status, 1)
        XCTAssertTrue(down.stderr.hasPrefix("devenv-gw: error: cannot fetch \(base)/octocat.keys: "), down.stderr)
        XCTAssertEqual(try registryState(), before)
    }

    // MARK: - Helpers

    private var globals: [String] { ["--state-dir", state.path, "--prefix", "clitest"] }

    /// Runs the binary with this test's state directory and prefix (placed before any `--`).
    private func cli(_ arguments: [String], input: Data? = nil) throws -> ProgramResult {
        var arguments = arguments
        arguments.insert(contentsOf: globals, at: arguments.firstIndex(of: "--") ?? arguments.endIndex)
        return try runProgram(DevenvBinary.path, arguments, input: input)
    }

    private func json(_ result: ProgramResult, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]], file: file, line: line)
    }

    /// Generates a key pair with ssh-keygen; returns the public key line.
    private func newKey(_ name: String, type: String = "ed25519", bits: String? = nil) throws -> String {
        let path = keys.appendingPathComponent(name).path
        let arguments = ["-q", "-t", type, "-N", "", "-C", "\(name)@test", "-f", path] + (bits.map { ["-b", $0] } ?? [])
        let result = try runProgram("/usr/bin/ssh-keygen", arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The fingerprint ssh-keygen gives the named key.
    private func fingerprint(of name: String) throws -> String {
        let result = try runProgram("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", keys.appendingPathComponent(name).path + ".pub"])
        return String(result.output.split(separator: " ")[1])
    }

    /// Everything the registry holds as the admin sees it, and the database content when
    /// the sqlite3 shell is installed.
    private func registryState() throws -> String {
        let users = try cli(["users", "--json"])
        XCTAssertEqual(users.status, 0, users.stderr)
        let names = try json(users).compactMap { $0["name"] as? String }
        var state = try ([users.output] + names.map { try cli(["keys", $0, "--json"]).output }).joined()
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") {
            let dump = try runProgram("/usr/bin/sqlite3", [self.state.appendingPathComponent("registry.sqlite3").path, ".dump"])
            XCTAssertEqual(dump.status, 0, dump.stderr)
            state += dump.output
        }
        return state
    }

    /// Serves `directory` over HTTP on a free loopback port; returns the base URL.
    private func startHTTPServer(serving directory: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory.path, "0"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        server = process
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..." once it listens.
        var text = ""
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let words = text.split(separator: " ")
        guard let index = words.firstIndex(of: "port"), index + 1 < words.count, let port = Int(words[index + 1]) else {
            XCTFail("http.server did not start: \(text)")
            throw CocoaError(.fileReadUnknown)
        }
        return "http://127.0.0.1:\(port)"
    }
}
