import Foundation
import TestSupport
import XCTest

/// Port and agent forwarding, multiplexing and keep-alives through the gateway.
final class GatewayForwardingTests: GatewayTestCase {
    var alice: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
    }

    /// Starts a threaded web server on 127.0.0.1:8000 inside alice's workspace.
    private func startWorkspaceWebServer() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port,
                                     "mkdir -p www && echo served-from-workspace > www/index.html").status, 0)
        try startInWorkspace(alice, "alice", "cd www && exec python3 -m http.server 8000 --bind 127.0.0.1")
        let ready = try alice.ssh("alice", port: gateway.port,
                                  "for i in $(seq 50); do curl -sf localhost:8000/ && exit 0; sleep 0.1; done; exit 1")
        XCTAssertEqual(ready.status, 0, "web server in the workspace")
    }

    private func curl(_ arguments: [String]) throws -> ProgramResult {
        try runProgram("/usr/bin/curl", ["-s", "--max-time", "10"] + arguments)
    }

    func testLocalForwardConnectsFromInsideTheWorkspace() throws {
        try gateway.start()
        try startWorkspaceWebServer()
        let port = try GatewayProcess.freePort()
        _ = try startSSH(alice, "alice", ["-N", "-L", "\(port):localhost:8000"])
        waitForListener(port)
        XCTAssertEqual(try curl(["http://127.0.0.1:\(port)/"]).output, "served-from-workspace\n")
    }

    func testDynamicForwardResolvesNamesInsideTheWorkspace() throws {
        try gateway.start()
        try startWorkspaceWebServer()
        let port = try GatewayProcess.freePort()
        _ = try startSSH(alice, "alice", ["-N", "-D", "127.0.0.1:\(port)"])
        waitForListener(port)
        let reply = try curl(["--socks5-hostname", "127.0.0.1:\(port)", "http://localhost:8000/"])
        XCTAssertEqual(reply.output, "served-from-workspace\n", reply.stderr)
    }

    /// What editors' remote modes do: many short channels at once to a server in the workspace.
    func testFiftyParallelForwardedConnections() throws {
        try gateway.start()
        try startWorkspaceWebServer()
        let port = try GatewayProcess.freePort()
        _ = try startSSH(alice, "alice", ["-N", "-L", "\(port):127.0.0.1:8000"])
        waitForListener(port)
        let out = keys.appendingPathComponent("replies").path
        let script = (1...50).map { "curl -s --max-time 20 http://127.0.0.1:\(port)/?n=\($0) > \(out)-\($0) &" }
            .joined(separator: "\n") + "\nwait"
        XCTAssertEqual(try runShell(script).status, 0)
        for n in 1...50 {
            XCTAssertEqual(try String(contentsOfFile: "\(out)-\(n)", encoding: .utf8), "served-from-workspace\n", "reply \(n)")
        }
    }

    func testRemoteForwardListensInsideTheWorkspaceAndCanBeCancelled() throws {
        try gateway.start()
        let served = keys.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
        try "served-from-client\n".write(to: served.appendingPathComponent("x.txt"), atomically: true, encoding: .utf8)
        let localPort = try GatewayProcess.freePort()
        try startBackground("/usr/bin/python3", ["-m", "http.server", "\(localPort)", "--bind", "127.0.0.1",
                                                  "--directory", served.path])
        waitForListener(localPort)

        let control = keys.appendingPathComponent("cm").path
        _ = try startSSH(alice, "alice", ["-N", "-M", "-S", control, "-R", "9000:127.0.0.1:\(localPort)"])
        let probe = "curl -s --max-time 5 http://127.0.0.1:9000/x.txt"
        var reply = ""
        for _ in 0..<50 where reply.isEmpty {
            reply = try alice.ssh("alice", port: gateway.port, probe).output
            if reply.isEmpty { usleep(100_000) }
        }
        XCTAssertEqual(reply, "served-from-client\n")

        let cancel = try runProgram("/usr/bin/ssh", ["-S", control, "-O", "cancel", "-R", "9000:127.0.0.1:\(localPort)",
                                                     "alice@127.0.0.1"])
        XCTAssertEqual(cancel.status, 0, cancel.stderr)
        let after = try alice.ssh("alice", port: gateway.port, probe)
        XCTAssertNotEqual(after.status, 0, "nothing listens after cancel")
        XCTAssertEqual(after.output, "")
    }

    func testAgentForwardingListsAndSignsWithTheClientsKeys() throws {
        try gateway.start()
        let agentSocket = keys.appendingPathComponent("agent.sock").path
        try startBackground("/usr/bin/ssh-agent", ["-D", "-a", agentSocket])
        for _ in 0..<50 where !FileManager.default.fileExists(atPath: agentSocket) { usleep(50_000) }
        let signer = try SSHClientIdentity(named: "signer", in: keys)
        var environment = ProcessInfo.processInfo.environment
        environment["SSH_AUTH_SOCK"] = agentSocket
        XCTAssertEqual(try runProgram("/usr/bin/ssh-add", ["-q", signer.privateKeyPath], environment: environment).status, 0)
        let fingerprint = try runProgram("/usr/bin/ssh-keygen", ["-lf", signer.privateKeyPath + ".pub"]).output
            .split(separator: " ")[1]

        let pub = signer.publicKeyLine
        let script = """
            ssh-add -l
            echo '\(pub)' > signer.pub && echo data > data.txt
            ssh-keygen -Y sign -q -f signer.pub -n test data.txt && echo signed
            for i in $(seq 8); do ssh-add -l > agent-$i.out & done; wait
            cat agent-*.out | grep -c '\(fingerprint)'
            """
        let result = try runProgram("/usr/bin/ssh", alice.sshOptions(port: gateway.port) + ["-A", "alice@127.0.0.1", script],
                                    environment: environment)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.output.split(separator: "\n")
        XCTAssertTrue(lines.first?.contains(fingerprint) == true, result.output)
        XCTAssertTrue(lines.contains("signed"), result.output)
        XCTAssertEqual(lines.last, "8", "eight concurrent agent requests all answered")
        let signature = try alice.ssh("alice", port: gateway.port, "cat data.txt.sig")
        XCTAssertTrue(signature.output.contains("BEGIN SSH SIGNATURE"))
    }

    func testMultiplexedSessionsAndForwardsShareOneConnection() throws {
        try gateway.start()
        try startWorkspaceWebServer()
        let control = keys.appendingPathComponent("mux").path
        let master = try startSSH(alice, "alice", ["-N", "-M", "-S", control])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: control) { usleep(50_000) }
        let mux = ["-S", control, "-o", "ControlMaster=no"]
        let results = try (1...3).map { n in
            try runProgram("/usr/bin/ssh", mux + ["alice@127.0.0.1", "echo session-\(n)"])
        }
        XCTAssertEqual(results.map(\.output), ["session-1\n", "session-2\n", "session-3\n"])
        let port = try GatewayProcess.freePort()
        XCTAssertEqual(try runProgram("/usr/bin/ssh", mux + ["-O", "forward", "-L", "\(port):localhost:8000",
                                                             "alice@127.0.0.1"]).status, 0)
        XCTAssertEqual(try curl(["http://127.0.0.1:\(port)/"]).output, "served-from-workspace\n")
        let logins = gateway.log.components(separatedBy: "auth accepted").count - 1
        XCTAssertTrue(master.isRunning)
        XCTAssertEqual(try runProgram("/usr/bin/ssh", ["-S", control, "-O", "exit", "alice@127.0.0.1"]).status, 0)
        XCTAssertEqual(gateway.log.components(separatedBy: "auth accepted").count - 1, logins,
                       "multiplexed sessions did not log in again")
    }

    func testTerminalFlagsAndKeepAlives() throws {
        try gateway.start()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "tty", extra: ["-T"]).output, "not a tty\n")
        XCTAssertTrue(try alice.ssh("alice", port: gateway.port, "tty", extra: ["-tt"]).output.hasPrefix("/dev/pts/"))
        // The client sends a keep-alive every second and gives up after one unanswered.
        let alive = try alice.ssh("alice", port: gateway.port, "sleep 4; echo still-here",
                                  extra: ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"])
        XCTAssertEqual(alive.status, 0, alive.stderr)
        XCTAssertEqual(alive.output, "still-here\n")
    }

    func testX11IsRefusedCleanlyAndTheSessionGoesOn() throws {
        try gateway.start()
        var environment = ProcessInfo.processInfo.environment
        environment["DISPLAY"] = ":99"
        let started = Date()
        let result = try runProgram("/usr/bin/ssh", alice.sshOptions(port: gateway.port)
                                        + ["-X", "-o", "LogLevel=INFO", "alice@127.0.0.1", "echo ran; echo ${DISPLAY:-no-display}"],
                                    environment: environment)
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        XCTAssertEqual(result.output, "ran\nno-display\n")
        XCTAssertTrue(result.stderr.contains("X11 forwarding request failed"), result.stderr)
    }

    func testPolicyRefusesEachKindCleanlyAndLogsIt() throws {
        gateway.extraArguments = ["--forwarding", "none"]
        try gateway.start()
        try startWorkspaceWebServer()
        let port = try GatewayProcess.freePort()
        _ = try startSSH(alice, "alice", ["-N", "-L", "\(port):localhost:8000"])
        waitForListener(port)
        let refused = try curl(["http://127.0.0.1:\(port)/"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertEqual(refused.output, "")
        let remote = try alice.ssh("alice", port: gateway.port, "true",
                                   extra: ["-o", "ExitOnForwardFailure=yes", "-R", "9001:127.0.0.1:9"])
        XCTAssertEqual(remote.status, 255)
        XCTAssertTrue(remote.stderr.contains("remote port forwarding failed"), remote.stderr)
        let agent = try alice.ssh("alice", port: gateway.port, "ssh-add -l", extra: ["-A"])
        XCTAssertEqual(agent.status, 2, "no agent is offered: \(agent.output) \(agent.stderr)")
        XCTAssertTrue(gateway.log.contains("forwarding refused by policy"), gateway.log)
    }

    /// Forwarded connections start inside alice's workspace, which cannot reach bob's; a
    /// forward that hangs on a filtered address does not hold up her other channels.
    func testLocalForwardCannotReachAnotherUsersWorkspace() throws {
        let bob = try register("bob")
        try gateway.start()
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "true").status, 0)
        let bobAddress = try gateway.docker.inspectContainer("\(gateway.prefix)-bob").ipAddress(on: gateway.prefix)
        let address = try XCTUnwrap(bobAddress)
        let toBob = try GatewayProcess.freePort(), toOwn = try GatewayProcess.freePort()
        try startSSH(alice, "alice", ["-N", "-L", "\(toBob):\(address):22", "-L", "\(toOwn):localhost:22"])
        waitForListener(toBob)
        waitForListener(toOwn)
        let readBanner = { (port: Int) in
            try runShell("timeout 8 bash -c 'exec 3<>/dev/tcp/127.0.0.1/\(port); head -c 4 <&3' 2>/dev/null").output
        }
        let stalled = try startBackground("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(toBob); sleep 30"])
        usleep(300_000)
        let started = Date()
        XCTAssertEqual(try readBanner(toOwn), "SSH-", "alice reaches her own workspace's sshd")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "a stalled forward does not block the connection")
        XCTAssertNotEqual(try readBanner(toBob), "SSH-", "alice must not reach bob's sshd")
        stalled.stop()
    }
}
