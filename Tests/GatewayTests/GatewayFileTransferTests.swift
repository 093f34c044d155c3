import Foundation
import TestSupport
import XCTest

/// sftp, scp, rsync and git through the gateway, with the real client programs.
final class GatewayFileTransferTests: GatewayTestCase {
    var alice: SSHClientIdentity!
    var file: String!
    var fileHash = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
        file = keys.appendingPathComponent("payload.bin").path
        XCTAssertEqual(try runShell("head -c 5M /dev/urandom > \(file!)").status, 0)
        fileHash = try sha256(file)
    }

    private func sha256(_ path: String) throws -> String {
        try runShell("sha256sum < \(shellQuoted(path)) | cut -d' ' -f1").output
    }

    private func remoteSHA256(_ path: String) throws -> String {
        try alice.ssh("alice", port: gateway.port, "sha256sum < \(path) | cut -d' ' -f1").output
    }

    /// scp and sftp take the port as -P.
    private var copyOptions: [String] {
        var options = alice.sshOptions(port: gateway.port)
        options[options.firstIndex(of: "-p")!] = "-P"
        return options
    }

    func testSFTPInBatchAndInteractiveMode() throws {
        let down = keys.appendingPathComponent("down.bin").path
        let batch = keys.appendingPathComponent("batch").path
        try "mkdir box\nput \(file!) box/payload.bin\nls -l box\nget box/payload.bin \(down)\n"
            .write(toFile: batch, atomically: true, encoding: .utf8)
        let result = try runProgram("/usr/bin/sftp", ["-b", batch] + copyOptions + ["alice@127.0.0.1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.output.contains("payload.bin"), result.output)
        XCTAssertEqual(try sha256(down), fileHash)
        XCTAssertEqual(try remoteSHA256("box/payload.bin"), fileHash)

        // Interactive mode: the command loop reading from a pipe, as a person would type.
        let interactive = try runProgram("/usr/bin/sftp", copyOptions + ["alice@127.0.0.1"],
                                         input: Data("cd box\npwd\nrm payload.bin\nls\nbye\n".utf8))
        XCTAssertEqual(interactive.status, 0, interactive.stderr)
        XCTAssertTrue(interactive.output.contains("/home/alice/box"), interactive.output)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "ls box | wc -l").output, "0\n")
    }

    func testSCPInSFTPAndLegacyMode() throws {
        for (mode, flags) in [("sftp", [String]()), ("legacy", ["-O"])] {
            let remote = "alice@127.0.0.1:scp-\(mode).bin"
            let up = try runProgram("/usr/bin/scp", flags + copyOptions + [file, remote])
            XCTAssertEqual(up.status, 0, "\(mode): \(up.stderr)")
            XCTAssertEqual(try remoteSHA256("scp-\(mode).bin"), fileHash, mode)
            let local = keys.appendingPathComponent("back-\(mode).bin").path
            let down = try runProgram("/usr/bin/scp", flags + copyOptions + [remote, local])
            XCTAssertEqual(down.status, 0, "\(mode): \(down.stderr)")
            XCTAssertEqual(try sha256(local), fileHash, mode)
        }
    }

    func testRsyncBothWays() throws {
        let tree = keys.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: file, toPath: tree.appendingPathComponent("sub/payload.bin").path)
        try "hello\n".write(to: tree.appendingPathComponent("small.txt"), atomically: true, encoding: .utf8)
        let ssh = (["/usr/bin/ssh"] + alice.sshOptions(port: gateway.port)).joined(separator: " ")
        let up = try runProgram("/usr/bin/rsync", ["-a", "-e", ssh, tree.path + "/", "alice@127.0.0.1:tree/"])
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertEqual(try remoteSHA256("tree/sub/payload.bin"), fileHash)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat tree/small.txt").output, "hello\n")

        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo changed > tree/small.txt").status, 0)
        let back = keys.appendingPathComponent("back")
        let down = try runProgram("/usr/bin/rsync", ["-a", "-e", ssh, "alice@127.0.0.1:tree/", back.path + "/"])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(try sha256(back.appendingPathComponent("sub/payload.bin").path), fileHash)
        XCTAssertEqual(try String(contentsOf: back.appendingPathComponent("small.txt"), encoding: .utf8), "changed\n")
    }

    func testGitCloneAndPushToABareRepositoryInTheWorkspace() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "git init -q --bare -b main project.git").status, 0)
        let ssh = (["ssh"] + alice.sshOptions(port: gateway.port)).map(shellQuoted).joined(separator: " ")
        let clone = keys.appendingPathComponent("clone").path
        let script = """
            set -e
            export GIT_SSH_COMMAND=\(shellQuoted(ssh))
            git clone -q ssh://alice@127.0.0.1/~/project.git \(clone)
            cd \(clone)
            git -c user.name=T -c user.email=t@example.com commit -q --allow-empty -m 'first commit'
            cp \(file!) payload.bin && git add payload.bin
            git -c user.name=T -c user.email=t@example.com commit -q -m 'add payload'
            git push -q origin HEAD:main
            """
        let result = try runShell(script)
        XCTAssertEqual(result.status, 0, result.stderr)
        let log = try alice.ssh("alice", port: gateway.port, "git --git-dir project.git log --format=%s main")
        XCTAssertEqual(log.output, "add payload\nfirst commit\n")
        let blob = try alice.ssh("alice", port: gateway.port,
                                 "git --git-dir project.git show main:payload.bin | sha256sum | cut -d' ' -f1")
        XCTAssertEqual(blob.output, fileHash)
    }
}
