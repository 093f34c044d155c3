import Foundation
import TestSupport
import XCTest

/// The gateway's own log (stderr) holds text clients choose: forwarding hosts, subsystem
/// names, commands, terminal types. A newline in any of them must not start a log line.
final class GatewayLogEscapingTests: GatewayTestCase {
    /// Opens channels whose every client-chosen string carries "\nFAKE …", as OpenSSH's
    /// client cannot send them.
    static let client = """
        import sys, paramiko
        port, key = int(sys.argv[1]), sys.argv[2]
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=port, username="alice", key_filename=key, look_for_keys=False,
                       allow_agent=False)
        transport = client.get_transport()
        try:
            transport.open_channel("direct-tcpip", ("127.0.0.1\\nFAKE forwarding host", 9), ("127.0.0.1", 1)).close()
        except Exception as error:
            print("direct-tcpip:", error)
        try:
            transport.request_port_forward("127.0.0.1\\nFAKE listen address", 0)
        except Exception as error:
            print("tcpip-forward:", error)
        channel = transport.open_session()
        try:
            channel.invoke_subsystem("none\\nFAKE subsystem")
        except Exception as error:
            print("subsystem:", error)
        channel = transport.open_session()
        channel.get_pty(term="xterm\\nFAKE terminal")
        channel.exec_command("echo ran\\nFAKE=command")
        print(channel.makefile().read().decode().strip(), channel.recv_exit_status())
        client.close()
        """

    func testClientTextCannotForgeALogLine() throws {
        let alice = try register("alice")
        try gateway.start()
        let ran = try runProgram("/usr/bin/python3", ["-c", Self.client, String(gateway.port), alice.privateKeyPath])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        XCTAssertTrue(ran.output.contains("ran"), ran.output)
        usleep(300_000)  // the log of the last channel's close
        let log = gateway.log
        let forged = log.split(separator: "\n").filter { $0.hasPrefix("FAKE") }
        XCTAssertEqual(forged, [], "forged log lines in:\n\(log)")
        XCTAssertTrue(log.contains("127.0.0.1\\x0aFAKE forwarding host"), "the host is logged, escaped:\n\(log)")
    }
}
