import Foundation
import TestSupport
import XCTest

/// A swarm whose manager and nodes are reached only over `tcp://` with TLS client
/// certificates (`docker-tls-dir`), as production nodes would be: logins, `ps`, `nodes`, and
/// a GiB home backed up from a worker's engine and restored onto it, all through TLS.
final class SwarmTLSTests: SwarmGatewayTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try TestSwarm.config(prefix: gateway.prefix, stateDirectory: gateway.stateDirectory.path, overTLS: true)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func testEveryEngineIsReachedOverTLSWithTheClientCertificate() throws {
        let identities = try registerStartAndLogIn(["filler", "alice"])
        XCTAssertEqual(try identities[1].ssh("alice", port: gateway.port, "echo over-tls > ~/kept").status, 0)
        let node = try XCTUnwrap(try workspaces()["alice"]?.node)
        XCTAssertNotEqual(node, TestSwarm.nodes[0], "alice's workspace is on a worker")
        XCTAssertTrue(gateway.log.contains("reached over TLS with the certificates in \(TestSwarm.runDirectory)/tls/client"),
                      gateway.log)
        XCTAssertFalse(gateway.log.contains("plain HTTP"), gateway.log)
        let nodes = try gateway.admin(["nodes"])
        XCTAssertEqual(nodes.status, 0, nodes.stderr)

        let archive = keys.appendingPathComponent("alice.tar").path
        let backup = try gateway.admin(["backup", "alice", "-o", archive])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        XCTAssertEqual(try runProgram("/usr/bin/tar", ["-xOf", archive, "home/kept"]).output, "over-tls\n")

        // A GiB home each way over TLS, byte for byte: backed up from the worker's engine,
        // then, after alice and her home are gone, restored onto a fresh volume there.
        let made = try identities[1].ssh("alice", port: gateway.port, "head -c 1G /dev/urandom > big.bin && sha256sum < big.bin")
        XCTAssertEqual(made.status, 0, made.stderr)
        let sum = String(made.output.prefix(64))
        let big = keys.appendingPathComponent("alice-big.tar").path
        let bigBackup = try gateway.admin(["backup", "alice", "-o", big])
        XCTAssertEqual(bigBackup.status, 0, bigBackup.stderr)
        let inArchive = try runProgram("/bin/bash", ["-o", "pipefail", "-c", "tar -xOf \(shellQuoted(big)) home/big.bin | sha256sum"])
        XCTAssertEqual(String(inArchive.output.prefix(64)), sum, "the backup streamed over TLS: \(inArchive.stderr)")
        XCTAssertEqual(try gateway.admin(["deluser", "alice", "--purge", "--yes"]).status, 0)
        let restored = try gateway.admin(["restore", "alice", "-i", big])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        try? FileManager.default.removeItem(atPath: big)
        let read = try identities[1].ssh("alice", port: gateway.port, "sha256sum < big.bin")
        XCTAssertEqual(String(read.output.prefix(64)), sum, "the restore streamed over TLS: \(read.stderr)")
        XCTAssertEqual(try workspaces()["alice"]?.node, node, "the restored home is on alice's node")

        // The engines do demand the certificate: without one, the worker's engine refuses.
        let tls = "\(TestSwarm.runDirectory)/tls"
        let address = TestSwarm.tlsEndpoint(node).replacingOccurrences(of: "tcp://", with: "https://")
        let anonymous = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", "\(tls)/ca.pem", "\(address)/_ping"])
        XCTAssertNotEqual(anonymous.status, 0, "\(node)'s engine answered a client without a certificate")
        let admitted = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", "\(tls)/ca.pem",
                                                       "--cert", "\(tls)/client/cert.pem", "--key", "\(tls)/client/key.pem",
                                                       "\(address)/_ping"])
        XCTAssertEqual(admitted.output, "OK", admitted.stderr)
    }
}
