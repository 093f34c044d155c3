import Foundation
import TestSupport
import XCTest

/// The `compression` setting: clients asking for zlib get none by default, and get it,
/// with every byte intact, when the admin allows it.
final class GatewayCompressionTests: GatewayTestCase {
    var alice: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
    }

    func testAClientAskingForCompressionGetsNoneByDefault() throws {
        try gateway.start()
        let result = try alice.ssh("alice", port: gateway.port, "echo hello", extra: ["-C", "-v"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "hello\n")
        XCTAssertEqual(negotiatedCompression(in: result.stderr), ["none", "none"], result.stderr)
    }

    func testCompressionWhenAllowedCarriesEveryByte() throws {
        gateway.extraArguments = ["--compression", "yes"]
        try gateway.start()
        let file = keys.appendingPathComponent("compressible.txt").path
        // Compressible text with random lines between, so both zlib paths (matches, literals) run.
        XCTAssertEqual(try runShell("(seq 1 3000000; head -c 20M /dev/urandom | base64; seq 1 3000000) > \(file)").status, 0)
        let localHash = try runShell("sha256sum < \(file) | cut -d' ' -f1").output
        let ssh = alice.sshCommandLine("alice", port: gateway.port, extra: ["-C", "-v"])

        let upload = try runShell("\(ssh) 'cat > up.txt && sha256sum < up.txt | cut -d\" \" -f1' < \(file)")
        XCTAssertEqual(upload.status, 0, upload.stderr)
        XCTAssertEqual(upload.output, localHash, "upload")
        XCTAssertEqual(negotiatedCompression(in: upload.stderr), ["zlib@openssh.com", "zlib@openssh.com"], upload.stderr)

        let download = try runShell("\(ssh) 'cat up.txt' 2>/dev/null | sha256sum | cut -d' ' -f1")
        XCTAssertEqual(download.status, 0, download.stderr)
        XCTAssertEqual(download.output, localHash, "download")
    }

    /// The compression of each direction, from `ssh -v`'s "kex: ... compression: X" lines.
    private func negotiatedCompression(in log: String) -> [String] {
        log.split(whereSeparator: \.isNewline)  // ssh -v ends its lines with \r\n
            .filter { $0.contains("kex: server->client cipher") || $0.contains("kex: client->server cipher") }
            .compactMap { $0.components(separatedBy: "compression: ").last }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}
