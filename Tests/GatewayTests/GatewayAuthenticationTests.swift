import Foundation
import TestSupport
import XCTest

/// Who gets in: only a valid signature of a key registered to that user name.
final class GatewayAuthenticationTests: GatewayTestCase {
    var alice: SSHClientIdentity!
    var bob: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        bob = try register("bob")
        try gateway.start()
    }

    func testOnlyTheOwnersKeyLogsInAndRefusalsLookAlike() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "id -un").output, "alice\n")
        let bobAsAlice = try bob.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(bobAsAlice.status, 255)
        let stranger = try SSHClientIdentity(named: "stranger", in: keys)
        let wrongKey = try stranger.ssh("alice", port: gateway.port, "true")
        let unknownUser = try alice.ssh("mallory", port: gateway.port, "true")
        let invalidName = try alice.ssh("Root", port: gateway.port, "true")
        for refused in [bobAsAlice, wrongKey, unknownUser, invalidName] {
            XCTAssertEqual(refused.status, 255)
            XCTAssertTrue(refused.stderr.contains("Permission denied (publickey)"), refused.stderr)
        }
        XCTAssertEqual(wrongKey.stderr.replacingOccurrences(of: "alice", with: "X"),
                       unknownUser.stderr.replacingOccurrences(of: "mallory", with: "X"),
                       "an unknown user and a wrong key get the same answer")
        let containers = try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"])
        XCTAssertEqual(containers.map(\.name), ["\(gateway.prefix)-alice"], "refused logins start nothing")
    }

    func testRemovedKeyIsRefusedAtTheNextLoginWithoutRestart() throws {
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "true").status, 0)
        let keys = try gateway.admin(["keys", "bob", "--json"])
        let fingerprint = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: keys.stdout) as? [[String: Any]])?.first?["fingerprint"] as? String)
        XCTAssertEqual(try gateway.admin(["keys", "remove", "bob", fingerprint]).status, 0)
        let refused = try bob.ssh("bob", port: gateway.port, "true")
        XCTAssertEqual(refused.status, 255)
        XCTAssertTrue(refused.stderr.contains("Permission denied"), refused.stderr)
    }

    /// A client that signs with SHA-1 `ssh-rsa` although server-sig-algs does not offer it
    /// is refused; the same key signing with SHA-2 logs in. OpenSSH and stock paramiko never
    /// send such a signature here, so paramiko's choice of algorithm is overridden, and its
    /// debug log shows what was actually sent.
    func testSHA1RSASignatureIsRefusedAndSHA2IsAccepted() throws {
        // libssh 0.10.6 drops a request with a signature algorithm it does not accept, without
        // an answer: the client is refused by the auth deadline, shortened here.
        gateway.stop()
        gateway.extraArguments = ["--auth-timeout", "5"]
        try gateway.start()
        let carol = try SSHClientIdentity(named: "carol", in: keys, type: "rsa")
        XCTAssertEqual(try gateway.admin(["adduser", "carol", "--key", carol.publicKeyLine]).status, 0)
        let script = """
            import logging, sys, paramiko
            from paramiko.auth_handler import AuthHandler
            port, key_path, algorithm = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
            log = logging.getLogger("paramiko.transport")
            # paramiko picks the RSA algorithm from server-sig-algs; a client may sign as it likes.
            AuthHandler._finalize_pubkey_algorithm = lambda self, key_type: algorithm
            sign = paramiko.RSAKey.sign_ssh_data
            def logged_sign(self, data, algorithm=None):
                signature = sign(self, data, algorithm)
                log.debug("signature algorithm sent: %s", paramiko.Message(signature.asbytes()).get_text())
                return signature
            paramiko.RSAKey.sign_ssh_data = logged_sign
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect("127.0.0.1", port=port, username="carol",
                               pkey=paramiko.RSAKey.from_private_key_file(key_path),
                               allow_agent=False, look_for_keys=False)
            except paramiko.AuthenticationException:
                client.close()
                print("refused")
                sys.exit(3)
            _, out, _ = client.exec_command("id -un")
            print(out.read().decode(), end="")
            """
        let sha1 = try runProgram("/usr/bin/python3", ["-c", script, "\(gateway.port)", carol.privateKeyPath, "ssh-rsa"])
        XCTAssertTrue(sha1.stderr.contains("signature algorithm sent: ssh-rsa"), sha1.stderr)
        XCTAssertEqual(sha1.status, 3, sha1.stderr)
        XCTAssertEqual(sha1.output, "refused\n")
        let sha2 = try runProgram("/usr/bin/python3", ["-c", script, "\(gateway.port)", carol.privateKeyPath, "rsa-sha2-512"])
        XCTAssertTrue(sha2.stderr.contains("signature algorithm sent: rsa-sha2-512"), sha2.stderr)
        XCTAssertEqual(sha2.status, 0, sha2.stderr)
        XCTAssertEqual(sha2.output, "carol\n")
    }

    func testHostKeyIsStableAcrossRestarts() throws {
        let before = try runProgram("/usr/bin/ssh-keyscan", ["-p", "\(gateway.port)", "-t", "ed25519,rsa", "127.0.0.1"])
        let keyFiles = try FileManager.default.contentsOfDirectory(atPath: gateway.hostKeyDirectory).sorted()
        XCTAssertEqual(keyFiles, ["ssh_host_ed25519_key", "ssh_host_rsa_key"])
        for file in keyFiles {
            let mode = try FileManager.default.attributesOfItem(atPath: gateway.hostKeyDirectory + "/" + file)[.posixPermissions]
            XCTAssertEqual((mode as? NSNumber)?.intValue, 0o600, file)
        }
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        gateway.stop()
        try gateway.start()
        let after = try runProgram("/usr/bin/ssh-keyscan", ["-p", "\(gateway.port)", "-t", "ed25519,rsa", "127.0.0.1"])
        XCTAssertEqual(Set(before.output.split(separator: "\n")), Set(after.output.split(separator: "\n")))
        XCTAssertEqual(before.output.split(separator: "\n").count, 2)
        // alice's known_hosts entry from before the restart is still valid (StrictHostKeyChecking).
        let again = try alice.ssh("alice", port: gateway.port, "true", extra: ["-o", "StrictHostKeyChecking=yes"])
        XCTAssertEqual(again.status, 0, again.stderr)
    }

    func testCorruptHostKeyStopsTheStartAndIsKept() throws {
        gateway.stop()
        let path = gateway.hostKeyDirectory + "/ssh_host_ed25519_key"
        try "not a key".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runProgram(DevenvBinary.path, ["serve"] + gateway.instanceArguments + [
            "--listen", "127.0.0.1:\(gateway.port)", "--hostkeys", gateway.hostKeyDirectory])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("ssh_host_ed25519_key"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "not a key")
    }

    /// 200 idle TCP connections that never speak do not keep a registered user out.
    func testIdleConnectionFloodDoesNotLockOutUsers() throws {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<200 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(gateway.port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            XCTAssertEqual(rc, 0)
            sockets.append(fd)
        }
        usleep(500_000)
        let login = try alice.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(login.status, 0, login.stderr)
        XCTAssertEqual(login.output, "alice\n")
    }
}
