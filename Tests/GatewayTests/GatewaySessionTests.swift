import DockerEngine
import Foundation
import TestSupport
import XCTest

/// Logins and sessions through the real gateway process with the real OpenSSH client.
final class GatewaySessionTests: GatewayTestCase {
    var alice: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
    }

    func testFirstLoginCreatesTheWorkspaceAndTheSecondReusesIt() throws {
        let first = try alice.ssh("alice", port: gateway.port, "id -un; hostname; echo $HOME")
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.output, "alice\n\(gateway.prefix)-alice\n/home/alice\n")
        let containers = try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"])
        XCTAssertEqual(containers.map(\.name), ["\(gateway.prefix)-alice"])

        let second = try alice.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(second.output, "alice\n")
        let after = try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"])
        XCTAssertEqual(after.map(\.id), containers.map(\.id), "the second login reuses the container")
    }

    func testExitStatusAndSignalsPassThrough() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "exit 42").status, 42)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        let output = try alice.ssh("alice", port: gateway.port, "echo out; echo err >&2; exit 3")
        XCTAssertEqual(output.status, 3)
        XCTAssertEqual(output.output, "out\n")
        XCTAssertTrue(output.stderr.contains("err"), output.stderr)
        // A command killed by a signal: the client is told so with exit-signal, not a status.
        let killed = try alice.ssh("alice", port: gateway.port, "kill -TERM $$", extra: ["-v"])
        XCTAssertEqual(killed.status, 255)
        XCTAssertTrue(killed.stderr.contains("rtype exit-signal"), killed.stderr)
    }

    /// A ControlMaster's sessions and `ssh -n` end their input at once, so the client closes
    /// the channel as soon as EOF arrives: the exit status must come before EOF, every time.
    func testExitStatusReachesClientsWhoseInputEndedAtOnce() throws {
        let socket = keys.appendingPathComponent("mux").path
        try startSSH(alice, "alice", ["-N", "-o", "ControlMaster=yes", "-o", "ControlPath=\(socket)"])
        try waitFor("the master is connected") {
            try runProgram("/usr/bin/ssh", ["-S", socket, "-O", "check", "x"]).status == 0
        }
        var wrong: [String] = []
        for round in 0..<60 {
            let expected = Int32(round % 4)
            let extra = round % 2 == 0 ? ["-o", "ControlPath=\(socket)"] : ["-n", "-o", "ControlPath=none"]
            let result = try alice.ssh("alice", port: gateway.port, "exit \(expected)", extra: extra)
            if result.status != expected { wrong.append("round \(round) (\(extra[0])): \(result.status) \(result.stderr)") }
        }
        XCTAssertEqual(wrong, [], "exit statuses lost")
    }

    func testEnvironmentIsFilteredLikeOpenSSHAcceptEnv() throws {
        let result = try runShell(
            "LANG=C.UTF-8 LC_TIME=C.UTF-8 SECRET_TOKEN=leak " + alice.sshCommandLine(
                "alice", port: gateway.port, extra: ["-o", "SendEnv=LANG LC_* SECRET_TOKEN"])
            + " 'echo LANG=$LANG; echo LC_TIME=$LC_TIME; echo SECRET=${SECRET_TOKEN:-unset}'")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "LANG=C.UTF-8\nLC_TIME=C.UTF-8\nSECRET=unset\n")
    }

    /// 100 MB of random data up, down, and both ways at once, byte for byte.
    func testBulkDataIsIdenticalInEachDirectionAndBothAtOnce() throws {
        let file = keys.appendingPathComponent("random.bin").path
        XCTAssertEqual(try runShell("head -c 100M /dev/urandom > \(file)").status, 0)
        let localHash = try runShell("sha256sum < \(file) | cut -d' ' -f1").output
        let ssh = alice.sshCommandLine("alice", port: gateway.port)

        let upload = try runShell("\(ssh) 'cat > up.bin && sha256sum < up.bin | cut -d\" \" -f1' < \(file)")
        XCTAssertEqual(upload.status, 0, upload.stderr)
        XCTAssertEqual(upload.output, localHash, "upload")

        let download = try runShell("\(ssh) 'cat up.bin' | sha256sum | cut -d' ' -f1")
        XCTAssertEqual(download.output, localHash, "download")

        let echo = try runShell("\(ssh) cat < \(file) | sha256sum | cut -d' ' -f1")
        XCTAssertEqual(echo.output, localHash, "both directions at once")
    }

    func testSeveralChannelsAndConnectionsShareOneWorkspace() throws {
        let ssh = alice.sshCommandLine("alice", port: gateway.port)
        // Five concurrent connections, each leaving a mark the others can see.
        let script = (1...5).map { "\(ssh) 'echo \($0) >> marks; sleep 1' &" }.joined(separator: "\n") + "\nwait"
        XCTAssertEqual(try runShell(script).status, 0)
        let marks = try alice.ssh("alice", port: gateway.port, "sort -n marks | tr '\\n' ' '")
        XCTAssertEqual(marks.output, "1 2 3 4 5 ")
    }
}
