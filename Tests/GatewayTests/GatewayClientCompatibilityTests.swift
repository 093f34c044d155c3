import Foundation
import TestSupport
import XCTest

/// Other SSH client implementations log in and run a command.
final class GatewayClientCompatibilityTests: GatewayTestCase {
    var alice: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
    }

    func testPuTTYPlink() throws {
        let ppk = keys.appendingPathComponent("alice.ppk").path
        XCTAssertEqual(try runProgram("/usr/bin/puttygen", [alice.privateKeyPath, "-O", "private", "-o", ppk]).status, 0)
        let scan = try runShell("ssh-keyscan -p \(gateway.port) -t ed25519 127.0.0.1 2>/dev/null | ssh-keygen -lf - | cut -d' ' -f2")
        let result = try runProgram("/usr/bin/plink", ["-batch", "-ssh", "-P", "\(gateway.port)", "-i", ppk,
                                                       "-hostkey", scan.output.trimmingCharacters(in: .whitespacesAndNewlines),
                                                       "alice@127.0.0.1", "echo plink $(id -un)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "plink alice\n")
    }

    func testDropbearClient() throws {
        let key = keys.appendingPathComponent("alice.dropbear").path
        XCTAssertEqual(try runProgram("/usr/lib/dropbear/dropbearconvert", ["openssh", "dropbear", alice.privateKeyPath, key]).status, 0)
        let result = try runProgram("/usr/bin/dbclient", ["-y", "-y", "-p", "\(gateway.port)", "-i", key,
                                                          "alice@127.0.0.1", "echo dropbear $(id -un)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "dropbear alice\n")
    }

    func testParamiko() throws {
        let script = """
            import sys, paramiko
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            client.connect("127.0.0.1", port=int(sys.argv[1]), username="alice", key_filename=sys.argv[2],
                           allow_agent=False, look_for_keys=False)
            _, out, _ = client.exec_command("echo paramiko $(id -un); exit 5")
            print(out.read().decode(), end="")
            print(out.channel.recv_exit_status())
            """
        let result = try runProgram("/usr/bin/python3", ["-c", script, "\(gateway.port)", alice.privateKeyPath])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "paramiko alice\n5\n")
    }

    func testAsyncSSH() throws {
        let script = """
            import asyncio, sys, asyncssh
            async def main():
                async with asyncssh.connect("127.0.0.1", port=int(sys.argv[1]), username="alice",
                                            client_keys=[sys.argv[2]], known_hosts=None, agent_path=None) as conn:
                    result = await conn.run("echo asyncssh $(id -un)")
                    print(result.stdout, end="")
                    print(result.exit_status)
            asyncio.run(main())
            """
        let result = try runProgram("/usr/bin/python3", ["-W", "ignore", "-c", script, "\(gateway.port)", alice.privateKeyPath])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.output, "asyncssh alice\n0\n")
    }
}
