import DockerEngine
import Foundation
import XCTest

/// The real `devenv-gw` binary built next to the tests.
public enum DevenvBinary {
    public static var path: String {
        // The xctest bundle sits in the build products directory beside the executable.
        let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL.deletingLastPathComponent()
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return products.appendingPathComponent("devenv-gw").path
    }
}

/// A gateway run as its own process, as an admin would run it, with its own state
/// directory, port and instance prefix, and real OpenSSH clients to talk to it.
public final class GatewayProcess {
    public let stateDirectory: URL
    public let prefix: String
    public let port: Int
    public let docker: DockerClient
    public private(set) var process: Process?
    public var extraEnvironment: [String: String] = [:]
    public var extraArguments: [String] = []
    /// A program that runs the gateway and execs it, keeping its PID, e.g.
    /// `["/usr/bin/prlimit", "--nofile=64:64"]`.
    public var wrapper: [String] = []
    private let logURL: URL

    public init(prefix: String? = nil) throws {
        stateDirectory = try makeTemporaryDirectory("devenv-gw-state")
        self.prefix = prefix ?? DockerTestEnvironment.uniquePrefix("gw")
        port = try Self.freePort()
        docker = try DockerTestEnvironment.client()
        logURL = stateDirectory.appendingPathComponent("gateway.log")
    }

    /// Arguments every command needs to find this instance.
    public var instanceArguments: [String] {
        ["--state-dir", stateDirectory.path, "--prefix", prefix]
    }

    public var hostKeyDirectory: String { stateDirectory.appendingPathComponent("hostkeys").path }

    /// Starts `devenv-gw serve` and waits until it answers SSH.
    public func start(file: StaticString = #filePath, line: UInt = #line) throws {
        let process = Process()
        let command = [DevenvBinary.path, "serve"] + instanceArguments + [
            "--listen", "127.0.0.1:\(port)", "--hostkeys", hostKeyDirectory,
            "--image", DockerTestEnvironment.workspaceImage,
        ] + extraArguments
        let commandLine = wrapper + command
        process.executableURL = URL(fileURLWithPath: commandLine[0])
        process.arguments = Array(commandLine.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extraEnvironment) { $1 }
        process.environment = environment
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !process.isRunning { break }
            if Self.answersSSH(port: port) { return }
            usleep(50_000)
        }
        XCTFail("gateway did not start: \(self.log)", file: file, line: line)
        throw CocoaError(.executableLoad)
    }

    /// Stops the gateway with SIGTERM and waits for it.
    public func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        self.process = nil
    }

    /// What the gateway logged so far.
    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Runs an admin subcommand of the same binary against this instance.
    public func admin(_ arguments: [String], input: Data? = nil) throws -> ProgramResult {
        guard let command = arguments.first else { throw CocoaError(.fileNoSuchFile) }
        return try runProgram(DevenvBinary.path, [command] + Array(arguments.dropFirst()) + instanceArguments,
                              input: input)
    }

    /// Stops the gateway and removes its state and every container, volume and network it made.
    public func tearDown() {
        stop()
        DockerTestEnvironment.removeInstance(prefix, client: docker)
        try? FileManager.default.removeItem(at: stateDirectory)
    }

    public static func freePort() throws -> Int {
        let (fd, port) = boundLoopbackSocket()
        close(fd)
        return port
    }

    /// A TCP socket bound to 127.0.0.1 on a port the kernel chose, and that port; the caller
    /// closes it (or listens on it, to hold the port).
    public static func boundLoopbackSocket() -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Connects to 127.0.0.1:`port`; the caller closes the returned descriptor.
    public static func connectLoopback(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); return nil }
        return fd
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool {
        guard let fd = connectLoopback(port: port) else { return false }
        close(fd)
        return true
    }

    public static func answersSSH(port: Int) -> Bool {
        guard let fd = connectLoopback(port: port) else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4)
        return recv(fd, &buffer, 4, Int32(MSG_WAITALL)) == 4 && buffer == Array("SSH-".utf8)
    }
}

/// A user's OpenSSH key pair on disk and an ssh command line for the gateway.
public struct SSHClientIdentity {
    public let privateKeyPath: String
    public let publicKeyLine: String
    public let knownHostsPath: String

    /// Generates a key with ssh-keygen in `directory`.
    public init(named name: String, in directory: URL, type: String = "ed25519") throws {
        let path = directory.appendingPathComponent("id_\(name)").path
        let generated = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "\(name)@test", "-f", path])
        guard generated.status == 0 else { throw CocoaError(.fileWriteUnknown) }
        privateKeyPath = path
        publicKeyLine = try String(contentsOfFile: path + ".pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        knownHostsPath = directory.appendingPathComponent("known_hosts_\(name)").path
    }

    /// The ssh arguments (before the destination) to reach the gateway on `port`.
    public func sshOptions(port: Int) -> [String] {
        ["-F", "/dev/null", "-p", "\(port)", "-i", privateKeyPath, "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=\(knownHostsPath)",
         "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR"]
    }

    /// Runs `command` as `user` through the gateway with the real OpenSSH client.
    public func ssh(_ user: String, port: Int, _ command: String, extra: [String] = [],
                    input: Data? = nil) throws -> ProgramResult {
        try runProgram("/usr/bin/ssh", sshOptions(port: port) + extra + ["\(user)@127.0.0.1", command], input: input)
    }

    /// The ssh command line as one shell string, for pipelines.
    public func sshCommandLine(_ user: String, port: Int, extra: [String] = []) -> String {
        (["/usr/bin/ssh"] + sshOptions(port: port) + extra + ["\(user)@127.0.0.1"]).map(shellQuoted).joined(separator: " ")
    }
}

/// Quotes a word for /bin/sh.
public func shellQuoted(_ word: String) -> String {
    "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Runs a /bin/sh pipeline.
public func runShell(_ script: String) throws -> ProgramResult {
    try runProgram("/bin/sh", ["-c", script])
}

/// A test with its own gateway process, state, prefix and key directory, torn down after
/// each test (printing the gateway's log when the test failed).
open class GatewayTestCase: XCTestCase {
    public var gateway: GatewayProcess!
    public var keys: URL!

    open override func setUpWithError() throws {
        gateway = try GatewayProcess()
        keys = try makeTemporaryDirectory("devenv-keys")
    }

    open override func tearDown() {
        backgroundProcesses.forEach { $0.stop() }
        backgroundProcesses.removeAll()
        if let gateway {
            // hasSucceeded is false until the run has stopped, which it has not in tearDown.
            if (testRun?.totalFailureCount ?? 0) > 0 { print("gateway log:\n\(gateway.log)") }
            gateway.tearDown()
        }
        if let keys { try? FileManager.default.removeItem(at: keys) }
    }

    private var backgroundProcesses: [BackgroundProcess] = []

    /// Starts a long-running program that is stopped at tear-down; its stdout goes to
    /// `outputPath` (a file), or nowhere.
    @discardableResult
    public func startBackground(_ executable: String, _ arguments: [String],
                                environment: [String: String]? = nil,
                                outputPath: String = "/dev/null") throws -> BackgroundProcess {
        let process = try BackgroundProcess(executable, arguments, environment: environment, outputPath: outputPath)
        backgroundProcesses.append(process)
        return process
    }

    /// Starts a long-running ssh (forwarding with -N, a ControlMaster …) that is ended at tear-down.
    @discardableResult
    public func startSSH(_ identity: SSHClientIdentity, _ user: String, _ arguments: [String]) throws -> BackgroundProcess {
        try startBackground("/usr/bin/ssh", identity.sshOptions(port: gateway.port) + arguments + ["\(user)@127.0.0.1"])
    }

    /// Waits until 127.0.0.1:`port` accepts connections.
    public func waitForListener(_ port: Int, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if GatewayProcess.isListening(port: port) { return }
            usleep(50_000)
        }
        XCTFail("nothing listens on port \(port)", file: file, line: line)
    }

    /// Starts a detached server process inside the user's workspace.
    public func startInWorkspace(_ identity: SSHClientIdentity, _ user: String, _ command: String) throws {
        let result = try identity.ssh(user, port: gateway.port,
                                      "setsid nohup sh -c \(shellQuoted(command)) </dev/null >/dev/null 2>&1 &")
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// Waits up to `timeout` seconds until `condition` holds; fails the test and throws if it never does.
    public func waitFor(_ what: String, timeout: TimeInterval = 15, file: StaticString = #filePath, line: UInt = #line,
                          _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(100_000)
        }
        XCTFail("timed out waiting until \(what)", file: file, line: line)
        throw CocoaError(.executableLoad)
    }

    /// Makes a key pair for `name` and registers it with `adduser`.
    public func register(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> SSHClientIdentity {
        let identity = try SSHClientIdentity(named: name, in: keys)
        let added = try gateway.admin(["adduser", name, "--key", identity.publicKeyLine])
        XCTAssertEqual(added.status, 0, added.stderr, file: file, line: line)
        return identity
    }
}
