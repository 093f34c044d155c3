import Foundation
import TestSupport
import XCTest

/// SHA-256 and length of a byte stream, as `Scripts/integrity.py` prints them ("HEX BYTES").
struct StreamDigest: Equatable, CustomStringConvertible {
    let sha256: String
    let bytes: Int

    init(sha256: String, bytes: Int) {
        self.sha256 = sha256
        self.bytes = bytes
    }

    /// Parses the first "HEX BYTES" line of `text`; nil when there is none.
    init?(parsing text: String) {
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 2, words[0].count == 64, let bytes = Int(words[1]) {
                self.init(sha256: String(words[0]), bytes: bytes)
                return
            }
        }
        return nil
    }

    var description: String { "\(bytes) bytes, sha256 \(sha256.prefix(16))…" }
}

/// Deterministic pseudo-random data: the AES-128-CTR keystream of a passphrase, cut to a
/// length. OpenSSL makes the same stream on the host and in the workspace image, so either
/// end can produce it and the other can check it; never /dev/zero, which compresses and
/// hides reordering.
struct SeededData {
    let seed: String
    let bytes: Int

    /// A shell command writing the data to stdout (sh or bash, host or workspace).
    var command: String {
        "openssl enc -aes-128-ctr -pass pass:\(seed) -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c \(bytes)"
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var known: [String: StreamDigest] = [:]

    /// The digest of the data, computed on the host once per test process.
    func digest(file: StaticString = #filePath, line: UInt = #line) throws -> StreamDigest {
        let key = "\(seed)/\(bytes)"
        Self.lock.lock()
        defer { Self.lock.unlock() }
        if let known = Self.known[key] { return known }
        let result = try runBash("\(command) | \(IntegrityScripts.localDigest)", timeout: 120)
        guard result.status == 0, let digest = StreamDigest(parsing: result.output), digest.bytes == bytes else {
            XCTFail("generating \(bytes) bytes from seed \(seed) failed: \(result.output) \(result.stderr)",
                    file: file, line: line)
            throw CocoaError(.fileReadUnknown)
        }
        Self.known[key] = digest
        return digest
    }
}

/// The Python helpers next to these tests, run with Debian's python3 (it has paramiko).
enum IntegrityScripts {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts")
    static let integrity = directory.appendingPathComponent("integrity.py").path
    static let paramikoClient = directory.appendingPathComponent("paramiko_client.py").path
    static let python = "/usr/bin/python3"

    /// Reads stdin to its end and prints its digest, on the host.
    static var localDigest: String { "\(python) \(shellQuoted(integrity)) digest" }
    /// Where `IntegrityTestCase` puts integrity.py in the workspace (relative to the home).
    static let remotePath = ".integrity/integrity.py"
    /// The same, in the workspace.
    static let remoteDigest = "python3 \(remotePath) digest"
}

/// Runs a bash script under coreutils' `timeout`, which ends the script's whole process
/// group when time is up (status 124): a stuck transfer fails its test instead of hanging
/// the suite.
func runBash(_ script: String, timeout seconds: Int) throws -> ProgramResult {
    try runProgram("/usr/bin/timeout", ["-k", "5", "\(seconds)", "/bin/bash", "-c", script])
}

/// What a client program reported and what arrived at the other end.
struct TransferOutcome {
    /// The client's exit status (124: the transfer ran out of time).
    var status: Int32
    var stderr: String
    var received: StreamDigest?
    var seconds: TimeInterval

    init(status: Int32, stderr: String = "", received: StreamDigest?, seconds: TimeInterval) {
        self.status = status
        self.stderr = stderr
        self.received = received
        self.seconds = seconds
    }

    /// Reads the output of a transfer script: its first "HEX BYTES" line is the digest of
    /// what arrived, its last line `exit N` the client's status (else `status` stands).
    init(output: String, status: Int32, stderr: String, seconds: TimeInterval) {
        var status = status
        if status != 124, let last = output.split(separator: "\n").last, last.hasPrefix("exit "),
           let reported = Int32(last.dropFirst(5)) {
            status = reported
        }
        self.init(status: status, stderr: stderr, received: StreamDigest(parsing: output), seconds: seconds)
    }
}

/// Figures the kernel keeps for the gateway process.
enum ProcessFigures {
    /// Resident set size in bytes (VmRSS of /proc/PID/status).
    static func residentBytes(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ")[1]) else { return 0 }
        return kib * 1024
    }

    /// The largest RSS seen when sampling every 100 ms for `seconds`; stops early above
    /// `ceiling`, as a runaway would only take the machine's memory with it.
    static func peakResidentBytes(_ pid: pid_t, over seconds: TimeInterval, ceiling: Int = 1 << 30) -> Int {
        var peak = residentBytes(pid)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && peak < ceiling {
            usleep(100_000)
            peak = max(peak, residentBytes(pid))
        }
        return peak
    }

    /// User plus system CPU time in seconds (utime and stime of /proc/PID/stat).
    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return 0 }
        // After "pid (comm)": state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// True when a TCP socket listens on 127.0.0.1 or any address at `port`, found in
/// /proc/net/tcp without connecting (a probe connection would be forwarded and consume a
/// one-shot listener at the far end).
func isListeningWithoutConnecting(port: Int) -> Bool {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return false }
    let suffix = String(format: ":%04X", port)
    return table.split(separator: "\n").dropFirst().contains { row in
        let columns = row.split(separator: " ")
        return columns.count > 3 && columns[1].hasSuffix(suffix) && columns[3] == "0A"
    }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass; returns whether it held.
func waitUntil(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try condition() { return true }
        usleep(50_000)
    } while Date() < deadline
    return false
}

/// Gateway tests that move data with real clients and check every byte: alice is
/// registered, the gateway runs, her workspace exists and has `integrity.py`.
class IntegrityTestCase: GatewayTestCase {
    var alice: SSHClientIdentity!
    /// Scratch space for this test's files, removed with the key directory.
    var work: URL!

    /// Rekeying every MiB (or 256 KiB) on the client's hop: hundreds of key exchanges per
    /// transfer, each one a moment in which libssh takes no channel data.
    static let rekeyEveryMiB = ["-o", "RekeyLimit=1M"]
    static let rekeyEvery256KiB = ["-o", "RekeyLimit=256K"]

    /// How long one transfer of a few hundred MB may take before it counts as hung (about
    /// ten times what it takes here).
    static let transferTimeout = 60

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
        work = keys.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let copied = try inWorkspace("mkdir -p .integrity && cat > \(IntegrityScripts.remotePath)",
                                     stdin: IntegrityScripts.integrity)
        XCTAssertEqual(copied.status, 0, "copying integrity.py into the workspace: \(copied.stderr)")
    }

    var gatewayPID: pid_t { gateway.process?.processIdentifier ?? 0 }

    /// The ssh command line (shell words) to alice's workspace through the gateway.
    func ssh(_ extra: [String] = []) -> String {
        alice.sshCommandLine("alice", port: gateway.port, extra: extra)
    }

    /// Runs `command` in alice's workspace through the gateway, with stdin from a file on the
    /// host if given; like every step of these tests, under a time limit.
    func inWorkspace(_ command: String, stdin: String? = nil, timeout: Int = 60) throws -> ProgramResult {
        try runBash("\(ssh()) \(shellQuoted(command))" + (stdin.map { " < \(shellQuoted($0))" } ?? " < /dev/null"),
                    timeout: timeout)
    }

    /// Options for scp and sftp, which take the port as -P.
    func copyOptions(_ extra: [String] = []) -> [String] {
        var options = alice.sshOptions(port: gateway.port)
        options[options.firstIndex(of: "-p")!] = "-P"
        return options + extra
    }

    // MARK: - Transfers

    /// Runs `script`, whose last output line must be `exit N` (the client program's status)
    /// and whose first "HEX BYTES" line, if any, is the digest of what arrived.
    func transfer(_ script: String, timeout: Int) throws -> TransferOutcome {
        let started = Date()
        let result = try runBash(script, timeout: timeout)
        return TransferOutcome(output: result.output, status: result.status, stderr: result.stderr,
                               seconds: Date().timeIntervalSince(started))
    }

    /// A script in which `ssh … COMMAND` writes `data` to stdout and the client hashes what
    /// arrives; `ssh` is the command line (shell words) to run.
    func downloadScript(_ data: SeededData, ssh: String) -> String {
        "\(ssh) \(shellQuoted(data.command)) | \(IntegrityScripts.localDigest); echo \"exit ${PIPESTATUS[0]}\""
    }

    /// A script in which `data` is piped into `ssh … COMMAND` and the workspace hashes it.
    func uploadScript(_ data: SeededData, ssh: String) -> String {
        "{ \(data.command); } | \(ssh) \(shellQuoted(IntegrityScripts.remoteDigest)); echo \"exit ${PIPESTATUS[1]}\""
    }

    func download(_ data: SeededData, _ extra: [String] = [], timeout: Int = transferTimeout) throws -> TransferOutcome {
        try transfer(downloadScript(data, ssh: ssh(extra)), timeout: timeout)
    }

    func upload(_ data: SeededData, _ extra: [String] = [], timeout: Int = transferTimeout) throws -> TransferOutcome {
        try transfer(uploadScript(data, ssh: ssh(extra)), timeout: timeout)
    }

    /// Runs a client program (scp, sftp, rsync …) to its end; `received` is left for the caller.
    func runClient(_ executable: String, _ arguments: [String]) throws -> TransferOutcome {
        try transfer(([executable] + arguments).map(shellQuoted).joined(separator: " ") + "; echo \"exit $?\"",
                     timeout: Self.transferTimeout)
    }

    /// Checks that the client exited 0 and that exactly the data sent arrived, saying what
    /// differed, and prints the transfer's time for the record.
    func assertDelivered(_ name: String, _ outcome: TransferOutcome, _ sent: StreamDigest,
                         file: StaticString = #filePath, line: UInt = #line) {
        let received = outcome.received.map(\.description) ?? "no digest"
        print("[integrity] \(name): \(received) of \(sent.bytes) in \(String(format: "%.1f", outcome.seconds)) s, "
              + "exit \(outcome.status)")
        if outcome.status == 124 {
            XCTFail("\(name): timed out after \(Int(outcome.seconds)) s; \(outcome.stderr)", file: file, line: line)
        } else {
            XCTAssertEqual(outcome.status, 0, "\(name): client exit status; \(outcome.stderr)", file: file, line: line)
        }
        guard let got = outcome.received else {
            XCTFail("\(name): no digest of the data received came back (an upload's is reported by the workspace "
                    + "over the same connection); expected \(sent)", file: file, line: line)
            return
        }
        if got.bytes != sent.bytes {
            XCTFail("\(name): received \(got.bytes) bytes, expected \(sent.bytes) (\(sent.bytes - got.bytes) missing)",
                    file: file, line: line)
        }
        XCTAssertEqual(got.sha256, sent.sha256, "\(name): SHA-256 of the \(got.bytes) bytes received differs from "
                       + "that of the \(sent.bytes) bytes sent", file: file, line: line)
    }

    // MARK: - Files

    /// The digest of a file on the host (nil if it is missing).
    func localDigest(_ path: String) throws -> StreamDigest? {
        StreamDigest(parsing: try runBash("\(IntegrityScripts.localDigest) < \(shellQuoted(path))", timeout: 60).output)
    }

    /// The digest of a file in alice's workspace (nil if it is missing).
    func remoteDigest(_ path: String) throws -> StreamDigest? {
        StreamDigest(parsing: try inWorkspace("\(IntegrityScripts.remoteDigest) < \(shellQuoted(path))").output)
    }

    /// Writes `data` to a file on the host and returns its path.
    func makeLocalFile(_ data: SeededData, _ name: String) throws -> String {
        let path = work.appendingPathComponent(name).path
        XCTAssertEqual(try runBash("\(data.command) > \(shellQuoted(path))", timeout: 60).status, 0, "writing \(path)")
        return path
    }

    /// Generates `data` into a file in the workspace (no transfer) and checks that the
    /// workspace's OpenSSL made the same bytes as the host's.
    func makeRemoteFile(_ data: SeededData, _ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let made = try inWorkspace("\(data.command) > \(shellQuoted(path))")
        XCTAssertEqual(made.status, 0, "generating \(path) in the workspace: \(made.stderr)", file: file, line: line)
        XCTAssertEqual(try remoteDigest(path), try data.digest(),
                       "the workspace's generator must make the host's bytes", file: file, line: line)
    }

    // MARK: - Helpers driven through a control file

    /// Starts a Python client in the background with its output in a file; `control` is
    /// the path the client waits for before its next step (create it with `proceed`).
    func startScript(_ script: String, _ arguments: [String]) throws -> ScriptRun {
        let output = work.appendingPathComponent("script-\(UUID().uuidString).out").path
        let control = work.appendingPathComponent("control-\(UUID().uuidString)").path
        let process = try startBackground(IntegrityScripts.python, [script] + arguments.map {
            $0.replacingOccurrences(of: "{control}", with: control)
        }, outputPath: output)
        return ScriptRun(process: process, outputPath: output, controlPath: control)
    }
}

/// A Python client run in the background: its output so far, its control file.
struct ScriptRun {
    let process: BackgroundProcess
    let outputPath: String
    let controlPath: String

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    /// paramiko's debug log, written next to the control file.
    var log: String { (try? String(contentsOfFile: controlPath + ".log", encoding: .utf8)) ?? "" }

    /// Waits until the output has a line `marker`.
    func waitFor(_ marker: String, seconds: TimeInterval) -> Bool {
        waitUntil(seconds) { output.split(separator: "\n").contains { $0 == marker } || !process.isRunning }
            && output.split(separator: "\n").contains { $0 == marker }
    }

    /// Lets the client go on to its next step.
    func proceed() { _ = FileManager.default.createFile(atPath: controlPath, contents: nil) }

    /// The JSON object the client printed last (nil until it did).
    var result: [String: Any]? {
        output.split(separator: "\n").reversed().lazy.compactMap { line -> [String: Any]? in
            guard line.hasPrefix("{") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }.first
    }

    /// Waits for the client to end; false (after stopping it) when it did not within `seconds`.
    func finish(within seconds: TimeInterval) -> Bool {
        if waitUntil(seconds, { !process.isRunning }) { return true }
        process.stop()
        return false
    }
}
