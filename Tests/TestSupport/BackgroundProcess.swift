import Foundation

/// A long-running helper program (ssh -N, ssh-agent, a web server) started with
/// posix_spawn and stopped by PID.
///
/// Not Foundation's `Process`: OpenSSH's programs close every inherited descriptor at
/// start, which makes Foundation's child monitor block in wait4 on them and stalls every
/// other `Process` of the test run until they exit.
public final class BackgroundProcess {
    public let pid: pid_t
    private var exited = false

    /// Starts `executable` with `arguments`; stdin and stderr go to /dev/null, stdout to
    /// `outputPath` or /dev/null (a file, never a pipe: a daemonizing program such as tmux
    /// would keep a pipe open long after the command ended).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                outputPath: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, env)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        pid = child
    }

    /// True while the program runs.
    public var isRunning: Bool {
        if exited { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { exited = true }
        return !exited
    }

    /// Sends SIGTERM, then SIGKILL after two seconds, and reaps the process.
    public func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(2)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            exited = true
        }
    }

    /// Waits for the program to end and returns its exit status.
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exited = true
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs a short program to its end without Foundation's `Process` and returns its
    /// status and standard output.
    public static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UUID().uuidString)").path
        defer { unlink(output) }
        let process = try BackgroundProcess(executable, arguments, outputPath: output)
        let status = process.wait()
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    deinit { stop() }
}
