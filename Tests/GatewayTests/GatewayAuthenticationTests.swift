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
