import Foundation
import TestSupport
import XCTest

/// The bridge to a workspace on another node than the manager carries a GiB each way,
/// re-keying every MiB, byte for byte (the engine backend's GatewayDataIntegrityTests
/// cover every channel type; this is the routed path to a worker).
final class SwarmDataIntegrityTests: SwarmGatewayTestCase {
    func testAGiBEachWayRekeyingEveryMiBToAWorkspaceOnAWorker() throws {
        let identities = try registerStartAndLogIn(["filler", "alice"])
        let node = try XCTUnwrap(try workspaces()["alice"]?.node)
        XCTAssertNotEqual(node, TestSwarm.nodes[0], "alice's workspace is on a worker")
        // Seeded, incompressible data (never /dev/zero), one odd length.
        let bytes = (1 << 30) + 12_345
        // openssl dies of SIGPIPE when head has enough: not a failure of the pipeline.
        let data = "{ openssl enc -aes-128-ctr -pass pass:swarm-\(gateway.prefix) -nosalt -pbkdf2 </dev/zero 2>/dev/null "
            + "|| true; } | head -c \(bytes)"
        let ssh = identities[1].sshCommandLine("alice", port: gateway.port, extra: ["-o", "RekeyLimit=1M"])
        let expected = try digest(of: "\(data) | sha256sum")
        XCTAssertEqual(expected.count, 64, "the data's own digest")

        XCTAssertEqual(try digest(of: "\(data) | \(ssh) 'cat > ~/big && sha256sum < ~/big && stat -c %s ~/big'"),
                       expected + " \(bytes)", "the upload as the workspace wrote it")
        XCTAssertEqual(try digest(of: "\(ssh) 'cat ~/big' | sha256sum"), expected, "the download as it arrived")
    }

    /// The first word of the script's first line (sha256sum's hash), and the second line
    /// when there is one; the script runs with pipefail under a 10-minute limit.
    private func digest(of script: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try runProgram("/usr/bin/timeout", ["600", "/bin/bash", "-o", "pipefail", "-c", script])
        XCTAssertEqual(result.status, 0, "\(script): \(result.stderr)", file: file, line: line)
        let lines = result.output.split(separator: "\n")
        let hash = lines.first?.split(separator: " ").first.map(String.init) ?? ""
        return lines.count > 1 ? "\(hash) \(lines[1])" : hash
    }
}
