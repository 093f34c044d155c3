import Foundation
import TestSupport
import XCTest

/// The caps that keep a busy gateway answering: connections in total and per user,
/// channels per connection, and file descriptors. Each refusal is told to the real
/// OpenSSH client, logged, and recorded in the real journald.
final class GatewayCapsTests: GatewayTestCase {
    /// A user name no other test run uses, so journal queries find only this test's events.
    private func uniqueUser(_ stem: String) -> String { "\(stem)\(UInt32.random(in: 0..<1_000_000))" }

    func testConnectionsPerUserAreCapped() throws {
        try Journal.requireJournald()
        let name = uniqueUser("capuser")
        let user = try register(name)
        let bob = try register("bob")
        gateway.extraArguments = ["--max-connections-per-user", "2", "--audit", "journald"]
        try gateway.start()
        let first = try startMaster(user, name, "first")
        _ = try startMaster(user, name, "second")

        let third = try user.ssh(name, port: gateway.port, "true")
        XCTAssertEqual(third.status, 255)
        XCTAssertTrue(third.stderr.contains("devenv-gw: \(name) already has 2 connections open (the limit per user)"),
                      third.stderr)
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "id -un").output, "bob\n", "other users are not capped")
        XCTAssertEqual(try user.ssh(name, port: gateway.port, "echo shared", extra: ["-S", first]).output, "shared\n",
                       "sessions multiplexed on a held connection still work")

        try checkRefusal("DEVENV_USER=\(name)", event: "connection-refused", messageID: "6ba090dedbf74973af4920333bac20b6",
                         limit: "max-connections-per-user", value: 2)

        // A closed connection gives its slot back.
        XCTAssertEqual(try runProgram("/usr/bin/ssh", ["-S", first, "-O", "exit", "x"]).status, 0)
        try waitFor("the first connection's slot is free") {
            try user.ssh(name, port: gateway.port, "true").status == 0
        }
    }

    func testChannelsPerConnectionAreCapped() throws {
        try Journal.requireJournald()
        let name = uniqueUser("capchan")
        let user = try register(name)
        gateway.extraArguments = ["--max-channels-per-connection", "3", "--audit", "journald"]
        try gateway.start()
        let master = try startMaster(user, name, "master")
        var sessions: [BackgroundProcess] = []
        for index in 0..<3 {
            let output = keys.appendingPathComponent("session\(index).out").path
            // Each session runs until its stop file appears in the home.
            sessions.append(try startBackground("/usr/bin/ssh", user.sshOptions(port: gateway.port) + [
                "-S", master, "\(name)@127.0.0.1", "echo ready; while [ ! -e stop\(index) ]; do sleep 0.1; done"],
                outputPath: output))
            try waitFor("session \(index) runs") {
                (try? String(contentsOfFile: output, encoding: .utf8)) == "ready\n"
            }
        }

        // A refused multiplexed session makes ssh fall back to a connection of its own;
        // a ProxyCommand that fails keeps that from hiding the refusal.
        let muxOnly = ["-S", master, "-o", "ProxyCommand=/bin/false"]
        let fourth = try user.ssh(name, port: gateway.port, "echo fourth", extra: muxOnly)
        XCTAssertEqual(fourth.status, 255)
        XCTAssertEqual(fourth.output, "")
        XCTAssertTrue(fourth.stderr.contains("Session open refused by peer"), fourth.stderr)
        XCTAssertTrue(sessions.allSatisfy(\.isRunning), "the first three sessions go on")

        let refusal = try checkRefusal("DEVENV_USER=\(name)", event: "channel-refused",
                                       messageID: "39c51f229e2a4ce1b72d85cc08a7b29e",
                                       limit: "max-channels-per-connection", value: 3)
        XCTAssertEqual(refusal["DEVENV_CHANNEL_TYPE"], "session")

        // A closed channel gives its slot back. (A second connection has channels of its own.)
        XCTAssertEqual(try user.ssh(name, port: gateway.port, "touch stop0").status, 0)
        try waitFor("a fourth session fits once one ended") {
            try user.ssh(name, port: gateway.port, "echo fourth", extra: muxOnly).output == "fourth\n"
        }
    }

    func testConnectionsInTotalAreCapped() throws {
        try Journal.requireJournald()
        let alice = try register("alice")
        gateway.extraArguments = ["--max-connections", "2", "--audit", "journald"]
        try gateway.start()
        let pid = try XCTUnwrap(gateway.process?.processIdentifier)
        usleep(300_000)  // the start's own probe connection has ended
        // One authenticated connection and one that never even starts key exchange.
        _ = try startMaster(alice, "alice", "alice")
        let idle = try XCTUnwrap(GatewayProcess.connectLoopback(port: gateway.port))
        defer { close(idle) }
        XCTAssertTrue(Self.read(idle, for: 0.3).hasPrefix("SSH-2.0-"), "the idle connection is accepted")

        let refused = try alice.ssh("alice", port: gateway.port, "true")
        XCTAssertEqual(refused.status, 255)
        XCTAssertTrue(refused.stderr.contains("devenv-gw: the gateway is at its connection limit; try again later"),
                      refused.stderr)
        let refusal = try checkRefusal("_PID=\(pid)", event: "connection-refused",
                                       messageID: "6ba090dedbf74973af4920333bac20b6", limit: "max-connections", value: 2)
        XCTAssertEqual(refusal["DEVENV_SOURCE_ADDRESS"], "127.0.0.1")
        XCTAssertNil(refusal["DEVENV_USER"], "refused before anyone authenticated")

        shutdown(idle, Int32(SHUT_RDWR))
        try waitFor("the idle connection's slot is free") { try alice.ssh("alice", port: gateway.port, "true").status == 0 }
    }

    /// A few dozen descriptors short of its limit the gateway refuses new connections before
    /// it runs out, stays idle while clients keep knocking, and serves logins again once
    /// connections close.
    func testConnectionsAreRefusedBeforeDescriptorsRunOut() throws {
        let alice = try register("alice")
        // Its periodic egress check runs iptables, which cannot start while descriptors run out.
        gateway.extraArguments = ["--egress-deny", "none"]
        try gateway.start()
        let pid = try XCTUnwrap(gateway.process?.processIdentifier)
        // The limit is set under the running gateway, relative to what it holds: the test
        // runner hands its children descriptors of its own, and closing them in a wrapper
        // would close the pipe that tells Foundation the child exited.
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        var limit = open + 40
        while limit - min(64, limit / 4) < open + 40 { limit += 1 }  // the gateway's reserve
        let hard = try Self.hardDescriptorLimit(pid)
        XCTAssertEqual(try runProgram("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(limit):\(hard)"]).status, 0)

        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        var refusal: String?
        for _ in 0..<(limit - open) where refusal == nil {
            let fd = try XCTUnwrap(GatewayProcess.connectLoopback(port: gateway.port))
            held.append(fd)
            let answer = Self.read(fd, for: 0.5)
            if answer.contains("connection limit") { refusal = answer }
        }
        XCTAssertNotNil(refusal, "no connection was refused: \(gateway.log)")
        XCTAssertGreaterThan(held.count, 30, "the reserve leaves room for connections")

        // At the limit, clients that keep knocking cost next to no CPU.
        let before = try Self.cpuTicks(pid)
        for _ in 0..<15 {
            if let fd = GatewayProcess.connectLoopback(port: gateway.port) { held.append(fd) }
            usleep(200_000)
        }
        let used = try Self.cpuTicks(pid) - before
        XCTAssertLessThan(used, 30, "\(used) ticks of CPU in 3 s at the descriptor limit")
        let atLimit = try alice.ssh("alice", port: gateway.port, "true")
        XCTAssertEqual(atLimit.status, 255)
        XCTAssertTrue(atLimit.stderr.contains("the gateway is at its connection limit"), atLimit.stderr)

        held.forEach { close($0) }
        held.removeAll()
        try waitFor("logins work once the connections closed") {
            try alice.ssh("alice", port: gateway.port, "id -un").output == "alice\n"
        }
    }

    /// When accept itself fails for lack of descriptors (the limit lowered under the running
    /// gateway), it backs off instead of spinning, and recovers when descriptors free up.
    func testAcceptBacksOffWhenDescriptorsRunOut() throws {
        let alice = try register("alice")
        // Its periodic egress check runs iptables, which cannot start while descriptors run out.
        gateway.extraArguments = ["--egress-deny", "none"]
        try gateway.start()
        let pid = try XCTUnwrap(gateway.process?.processIdentifier)
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<4 { held.append(try XCTUnwrap(GatewayProcess.connectLoopback(port: gateway.port))) }
        usleep(300_000)
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        // Only the soft limit: raising a hard limit again needs CAP_SYS_RESOURCE.
        let hard = try Self.hardDescriptorLimit(pid)
        XCTAssertEqual(try runProgram("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(open):\(hard)"]).status, 0)
        // These wait in the listen backlog: accept has no descriptor to give them.
        for _ in 0..<4 { held.append(try XCTUnwrap(GatewayProcess.connectLoopback(port: gateway.port))) }

        let before = try Self.cpuTicks(pid)
        sleep(3)
        let used = try Self.cpuTicks(pid) - before
        XCTAssertLessThan(used, 30, "\(used) ticks of CPU in 3 s while accept fails")
        XCTAssertTrue(gateway.log.contains("accept failed, retrying in"), gateway.log)

        XCTAssertEqual(try runProgram("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(hard):\(hard)"]).status, 0)
        held.forEach { close($0) }
        held.removeAll()
        try waitFor("logins work once descriptors are free") {
            try alice.ssh("alice", port: gateway.port, "id -un").output == "alice\n"
        }
    }

    /// A connection whose thread cannot start (a pids cgroup at its maximum) is refused with
    /// the message and leaves no descriptor or thread behind.
    func testConnectionWithoutAThreadIsRefusedAndLeaksNothing() throws {
        let pids = "/sys/fs/cgroup/pids"
        // These machines (and CI) run cgroup v1 as root: a missing controller is a failure.
        let writable = FileManager.default.isWritableFile(atPath: pids)
        guard writable else {
            XCTFail("no writable pids cgroup (v1) at \(pids): cannot make a thread start fail")
            return
        }
        let alice = try register("alice")
        try gateway.start()
        let pid = try XCTUnwrap(gateway.process?.processIdentifier)
        let group = "\(pids)/devenv-caps-\(pid)"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer {
            try? "\(pid)".write(toFile: "\(pids)/cgroup.procs", atomically: false, encoding: .utf8)
            rmdir(group)
        }
        try "\(pid)".write(toFile: "\(group)/cgroup.procs", atomically: false, encoding: .utf8)
        usleep(300_000)  // the start's own probe connection has ended
        func counts() throws -> (threads: Int, fds: Int) {
            (try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count,
             try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count)
        }
        let before = try counts()
        try "\(before.threads)".write(toFile: "\(group)/pids.max", atomically: false, encoding: .utf8)

        for _ in 0..<3 {
            let refused = try alice.ssh("alice", port: gateway.port, "true")
            XCTAssertEqual(refused.status, 255)
            XCTAssertTrue(refused.stderr.contains("the gateway is at its connection limit"), refused.stderr)
        }
        XCTAssertTrue(gateway.log.contains("cannot start a thread"), gateway.log)
        try waitFor("the refused sockets are closed") { try counts() == before }

        try "max".write(toFile: "\(group)/pids.max", atomically: false, encoding: .utf8)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "id -un").output, "alice\n")
    }

    // MARK: - Helpers

    /// Starts a ControlMaster connection (no session) and waits until it is authenticated;
    /// returns its control socket.
    private func startMaster(_ identity: SSHClientIdentity, _ user: String, _ label: String) throws -> String {
        let path = keys.appendingPathComponent("mux-\(label)").path
        try startSSH(identity, user, ["-N", "-o", "ControlMaster=yes", "-o", "ControlPath=\(path)"])
        try waitFor("the \(label) master is connected") {
            try runProgram("/usr/bin/ssh", ["-S", path, "-O", "check", "x"]).status == 0
        }
        return path
    }

    /// Checks that a refusal of kind `event` at cap `limit` (of `value`) is in the journal
    /// (the first entry that also matches `match`) and in the gateway's log; returns it.
    @discardableResult
    private func checkRefusal(_ match: String, event: String, messageID: String, limit: String,
                              value: Int) throws -> JournalEntry {
        var found: JournalEntry?
        try waitFor("the journal has a \(event) event") {
            found = try Journal.read([match, "DEVENV_EVENT=\(event)"]).first
            return found != nil
        }
        let entry = try XCTUnwrap(found)
        XCTAssertEqual(entry["MESSAGE_ID"], messageID)
        XCTAssertEqual(entry["PRIORITY"], "5")
        XCTAssertEqual(entry["DEVENV_LIMIT"], limit)
        XCTAssertEqual(entry["DEVENV_LIMIT_VALUE"], "\(value)")
        XCTAssertTrue(gateway.log.contains(event.replacingOccurrences(of: "-", with: " ")), gateway.log)
        return entry
    }

    /// What arrives on `fd` within `seconds`, until the gateway closes it or pauses after
    /// sending something, as text.
    private static func read(_ fd: Int32, for seconds: TimeInterval) -> String {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 20) > 0 else {
                if received.isEmpty { continue } else { break }
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[..<count]
        }
        return String(decoding: received.map { $0 < 0x20 || $0 > 0x7e ? UInt8(ascii: ".") : $0 }, as: UTF8.self)
    }

    /// The hard RLIMIT_NOFILE of `pid`, from /proc/PID/limits.
    private static func hardDescriptorLimit(_ pid: pid_t) throws -> Int {
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = try XCTUnwrap(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        return try XCTUnwrap(numbers.count == 2 ? numbers[1] : nil)
    }

    /// The process's user and system CPU time so far, in clock ticks (1/100 s).
    private static func cpuTicks(_ pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name (which may hold spaces), from field 3 on.
        let fields = stat[stat.index(after: try XCTUnwrap(stat.lastIndex(of: ")")))...].split(separator: " ")
        return try XCTUnwrap(Int(fields[11])) + XCTUnwrap(Int(fields[12]))
    }
}
