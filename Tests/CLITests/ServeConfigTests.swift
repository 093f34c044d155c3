import Foundation
import TestSupport
import XCTest

/// The config file of the real binary: every serve setting can come from it, flags and
/// environment variables override it, and a bad value stops the start with the file,
/// the key and the reason.
final class ServeConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-config")
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Every key set to something other than its default, as `serve --print-config` prints it.
    var everyKey: String {
        """
        state-dir = "\(directory.path)/state"
        prefix = "cfgtest"
        audit = "stderr"
        listen = ["127.0.0.1:2201", "[::1]:2202"]
        hostkeys = "\(directory.path)/hostkeys"
        auth-timeout = 2.5
        max-auth-tries = 3
        max-startups = "10:30:100"
        max-startups-per-source = 7
        max-connections = 900
        max-connections-per-user = 4
        max-channels-per-connection = 16
        client-alive-interval = 20.0
        client-alive-count-max = 5
        compression = "yes"
        idle-timeout = 5.0
        forwarding = "local,agent"
        image = "example/workspace:2"
        memory-mib = 256
        pids-limit = 200
        cpu-shares = 512
        egress-deny = ["10.0.0.0/8", "host"]
        metrics-listen = "127.0.0.1:9122"

        """
    }

    func testEveryServeSettingComesFromTheFile() throws {
        let config = try write(everyKey)
        let printed = try serve(["--print-config", "--config", config])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertEqual(printed.output, "# devenv-gw serve settings (config file \(config))\n" + everyKey)
        // What it prints is a config file that gives the same settings.
        let again = try serve(["--print-config", "--config", try write(printed.output, name: "printed.toml")])
        XCTAssertEqual(settings(again.output), settings(printed.output))
        // The environment names the file as well.
        XCTAssertEqual(try serve(["--print-config"], environment: ["DEVENV_GW_CONFIG": config]).output, printed.output)
    }

    func testFlagsOverrideEnvironmentOverridesFileOverridesDefaults() throws {
        let config = try write(everyKey)
        let flags = ["--state-dir", "/flag/state", "--prefix", "flagged", "--audit", "journald",
                     "--listen", "0.0.0.0:2022", "--hostkeys", "/flag/keys", "--auth-timeout", "9",
                     "--max-auth-tries", "4", "--max-startups", "50", "--max-startups-per-source", "5",
                     "--max-connections", "20", "--max-connections-per-user", "2", "--max-channels-per-connection", "3",
                     "--client-alive-interval", "7", "--client-alive-count-max", "2",
                     "--compression", "no", "--idle-timeout", "0", "--forwarding", "none",
                     "--image", "flag/image:1", "--memory-mib", "1024", "--pids-limit", "300", "--cpu-shares", "100",
                     "--egress-deny", "none", "--metrics-listen", "[::1]:9200"]
        let flagged = try serve(["--print-config", "--config", config] + flags)
        XCTAssertEqual(flagged.status, 0, flagged.stderr)
        XCTAssertEqual(settings(flagged.output), [
            "state-dir": "\"/flag/state\"", "prefix": "\"flagged\"", "audit": "\"journald\"", "listen": "[\"0.0.0.0:2022\"]",
            "hostkeys": "\"/flag/keys\"", "auth-timeout": "9.0", "max-auth-tries": "4", "max-startups": "50",
            "max-startups-per-source": "5", "max-connections": "20", "max-connections-per-user": "2",
            "max-channels-per-connection": "3", "client-alive-interval": "7.0", "client-alive-count-max": "2",
            "compression": "\"no\"", "idle-timeout": "0.0", "forwarding": "\"none\"", "image": "\"flag/image:1\"", "memory-mib": "1024", "pids-limit": "300",
            "cpu-shares": "100", "egress-deny": "[]", "metrics-listen": "\"[::1]:9200\"",
        ])

        let environment = ["DEVENV_GW_STATE_DIR": "/env/state", "DEVENV_GW_PREFIX": "envp", "DEVENV_GW_AUDIT": "auto",
                           "DEVENV_GW_IMAGE": "env/image:3"]
        let fromEnvironment = settings(try serve(["--print-config", "--config", config], environment: environment).output)
        var expected = settings(everyKey)
        expected["state-dir"] = "\"/env/state\""
        expected["prefix"] = "\"envp\""
        expected["audit"] = "\"auto\""
        expected["image"] = "\"env/image:3\""
        XCTAssertEqual(fromEnvironment, expected)

        // No file: the defaults, and hostkeys follows the state directory.
        let partial = try write("state-dir = \"/srv/devenv\"\n", name: "partial.toml")
        XCTAssertEqual(settings(try serve(["--print-config", "--config", partial]).output), [
            "state-dir": "\"/srv/devenv\"", "prefix": "\"devenv\"", "audit": "\"auto\"", "listen": "[\"0.0.0.0:22\"]",
            "hostkeys": "\"/srv/devenv/hostkeys\"", "auth-timeout": "30.0", "max-auth-tries": "10",
            "max-startups": "\"128:30:256\"", "max-startups-per-source": "64", "max-connections": "1000",
            "max-connections-per-user": "10", "max-channels-per-connection": "64", "client-alive-interval": "15.0",
            "client-alive-count-max": "3", "compression": "\"no\"", "idle-timeout": "3600.0", "forwarding": "\"local,remote,agent\"",
            "image": "\"devenv-workspace:latest\"", "memory-mib": "512",
            "pids-limit": "1024", "cpu-shares": "1024", "egress-deny": "[\"host\", \"169.254.0.0/16\"]",
            "metrics-listen": "\"\"",
        ])
        // A single listen address may be a plain string; an integer is a number of seconds too.
        let short = try write("listen = \":2222\"\nauth-timeout = 7\n", name: "short.toml")
        let shortSettings = settings(try serve(["--print-config", "--config", short]).output)
        XCTAssertEqual(shortSettings["listen"], "[\":2222\"]")
        XCTAssertEqual(shortSettings["auth-timeout"], "7.0")
        // egress-deny: an empty list or "none" turns the firewall off; one string may list several.
        for (text, printed) in [("egress-deny = []\n", "[]"), ("egress-deny = \"none\"\n", "[]"),
                                ("egress-deny = \"host, 192.168.1.7\"\n", "[\"host\", \"192.168.1.7/32\"]")] {
            let file = try write(text, name: "egress.toml")
            XCTAssertEqual(settings(try serve(["--print-config", "--config", file]).output)["egress-deny"], printed, text)
        }
    }

    func testBadValuesFailTheStartWithFileKeyAndReason() throws {
        let cases: [(text: String, key: String?, reason: String)] = [
            ("memory-mib = \"512\"\n", "memory-mib", "must be an integer, not a string"),
            ("memory-mib = 512.5\n", "memory-mib", "must be an integer, not a floating-point number"),
            ("memory-mib = 16\n", "memory-mib", "must be at least 64"),
            ("pids-limit = 1\n", "pids-limit", "must be at least 32"),
            ("cpu-shares = 1\n", "cpu-shares", "must be 2 to 262144"),
            ("max-auth-tries = 0\n", "max-auth-tries", "must be 1 to 1000"),
            ("max-startups = -1\n", "max-startups", "must be 1 to 1000000"),
            ("max-startups = \"10:30\"\n", "max-startups", "use START:RATE:FULL (e.g. 128:30:256) or a number"),
            ("max-startups = \"20:30:10\"\n", "max-startups", "start must be 1 to full (10)"),
            ("max-startups = 1.5\n", "max-startups",
             "must be an integer or a \"START:RATE:FULL\" string, not a floating-point number"),
            ("client-alive-interval = -1\n", "client-alive-interval", "must be 0 (never) to 86400"),
            ("client-alive-count-max = 0\n", "client-alive-count-max", "must be 1 to 1000"),
            ("compression = \"delayed\"\n", "compression", "use yes or no"),
            ("compression = true\n", "compression", "must be a string, not a boolean"),
            ("max-startups-per-source = true\n", "max-startups-per-source", "must be an integer, not a boolean"),
            ("max-connections = 0\n", "max-connections", "must be 1 to 1000000"),
            ("max-connections-per-user = \"10\"\n", "max-connections-per-user", "must be an integer, not a string"),
            ("max-channels-per-connection = 0\n", "max-channels-per-connection", "must be 1 to 100000"),
            ("auth-timeout = 0\n", "auth-timeout", "must be more than 0 and at most 3600"),
            ("auth-timeout = \"30s\"\n", "auth-timeout", "must be a number of seconds, not a string"),
            ("idle-timeout = -1\n", "idle-timeout", "must be 0 (never) to 31622400"),
            ("forwarding = \"local,x11\"\n", "forwarding",
             "unknown forwarding kind 'x11': use local, remote, agent, all or none"),
            ("forwarding = [\"local\"]\n", "forwarding", "must be a string, not an array of strings"),
            ("listen = [2222]\n", "listen", "must be an array of \"HOST:PORT\" strings, not an array of integers"),
            ("listen = []\n", "listen", "give at least one address"),
            ("listen = [\"0.0.0.0\"]\n", "listen", "0.0.0.0 is not HOST:PORT with a port from 1 to 65535"),
            ("listen = [\":70000\"]\n", "listen", ":70000 is not HOST:PORT with a port from 1 to 65535"),
            ("prefix = \"Bad\"\n", "prefix", "use a lowercase letter, then up to 15 lowercase letters, digits or '-'"),
            ("audit = \"syslog\"\n", "audit", "use stderr, journald or auto"),
            ("state-dir = \"\"\n", "state-dir", "must not be empty"),
            ("image = 3\n", "image", "must be a string, not an integer"),
            ("egress-deny = [\"10.0.0.300/8\"]\n", "egress-deny",
             "10.0.0.300/8 is not an IPv4 address or network (A.B.C.D or A.B.C.D/N)"),
            ("egress-deny = [\"10.0.0.0/33\"]\n", "egress-deny", "10.0.0.0/33: the prefix length must be 0 to 32"),
            ("egress-deny = [\"host\", \"none\"]\n", "egress-deny", "none cannot be combined with other entries"),
            ("egress-deny = 10\n", "egress-deny", "must be an array of strings, or \"none\", not an integer"),
            ("metrics-listen = \"localhost:9122\"\n", "metrics-listen",
             "'localhost:9122': the host must be a numeric IPv4 or IPv6 address"),
            ("metrics-listen = \"127.0.0.1:0\"\n", "metrics-listen", "'127.0.0.1:0': the port must be 1 to 65535"),
            ("metrics-listen = \"127.0.0.1\"\n", "metrics-listen", "'127.0.0.1' is not HOST:PORT (e.g. 127.0.0.1:9122)"),
            ("memory_mib = 512\n", "memory_mib", "unknown key (did you mean memory-mib?)"),
            ("port = 22\n", "port", "unknown key"),
            ("[workspace]\nimage = \"x\"\n", "workspace", "unknown key"),
            ("memory-mib = 512\nmemory-mib = 256\n", nil,
             "line 2, column 14: Error while parsing key-value pair: cannot redefine existing integer 'memory-mib'"),
            ("listen = \n", nil, "line 1, column 10: "),
        ]
        for (index, (text, key, reason)) in cases.enumerated() {
            let config = try write(text, name: "bad\(index).toml")
            let result = try serve(["--config", config, "--state-dir", directory.appendingPathComponent("state").path,
                                    "--listen", "127.0.0.1:\(try GatewayProcess.freePort())"])
            XCTAssertEqual(result.status, 1, "\(text): \(result.stderr)")
            let expected = "devenv-gw: error: \(config): " + (key.map { "\($0): " } ?? "") + reason
            XCTAssertTrue(result.stderr.hasPrefix(expected), "expected \(expected)\ngot \(result.stderr)")
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr)
        }
        // The admin commands read the same file and refuse it the same way.
        let bad = try write("memory-mib = \"512\"\n", name: "admin.toml")
        let users = try runProgram(DevenvBinary.path, ["users", "--config", bad])
        XCTAssertEqual(users.status, 1)
        XCTAssertEqual(users.stderr, "devenv-gw: error: \(bad): memory-mib: must be an integer, not a string\n")

        let missing = directory.appendingPathComponent("missing.toml").path
        let result = try serve(["--config", missing])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "devenv-gw: error: \(missing): no such file\n")

        // A bad flag is a usage error, checked with the file's rules.
        for (flag, value, reason) in [("--memory-mib", "10", "must be at least 64"), ("--auth-timeout", "0", "must be more"),
                                      ("--max-startups", "5:200:10", "rate must be 0 to 100"),
                                      ("--listen", "nowhere", "nowhere is not HOST:PORT"),
                                      ("--egress-deny", "host,metadata", "metadata is not an IPv4 address")] {
            let flagged = try serve(["--print-config", flag, value])
            XCTAssertEqual(flagged.status, 2, flagged.stderr)
            XCTAssertTrue(flagged.stderr.hasPrefix("devenv-gw: error: \(flag): \(reason)"), flagged.stderr)
        }
    }

    /// A gateway started with nothing but `--config` listens, keeps its keys and state, and
    /// makes workspaces as the file says; the admin commands find the state through it too.
    func testServeRunsWithTheConfigFile() throws {
        let gateway = try GatewayProcess()
        defer { gateway.tearDown() }
        let imageID = try runProgram("/usr/local/bin/docker", ["image", "inspect", "-f", "{{.Id}}",
                                                               DockerTestEnvironment.workspaceImage])
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(imageID.hasPrefix("sha256:"), imageID)
        let hostkeys = directory.appendingPathComponent("gateway-keys").path
        let config = try write("""
            state-dir = "\(gateway.stateDirectory.path)"
            prefix = "\(gateway.prefix)"
            listen = "127.0.0.1:\(gateway.port)"
            hostkeys = "\(hostkeys)"
            audit = "stderr"
            auth-timeout = 2
            image = "\(imageID)"
            memory-mib = 256
            pids-limit = 200
            cpu-shares = 512

            """)
        let identity = try SSHClientIdentity(named: "alice", in: directory)
        let added = try runProgram(DevenvBinary.path, ["adduser", "alice", "--key", identity.publicKeyLine, "--config", config])
        XCTAssertEqual(added.status, 0, added.stderr)

        let log = directory.appendingPathComponent("serve.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DevenvBinary.path)
        process.arguments = ["serve", "--config", config]
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try process.run()
        defer {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
        }
        let deadline = Date().addingTimeInterval(20)
        while !GatewayProcess.answersSSH(port: gateway.port) && process.isRunning && Date() < deadline { usleep(50_000) }
        let serveLog = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        XCTAssertTrue(GatewayProcess.answersSSH(port: gateway.port), serveLog())
        XCTAssertTrue(FileManager.default.fileExists(atPath: hostkeys + "/ssh_host_ed25519_key"),
                      "host keys where the file says: \((try? FileManager.default.contentsOfDirectory(atPath: hostkeys)) ?? [])")

        let login = try identity.ssh("alice", port: gateway.port, "id -un")
        XCTAssertEqual(login.status, 0, login.stderr + serveLog())
        XCTAssertEqual(login.output, "alice\n")
        let inspected = try runProgram("/usr/local/bin/docker", [
            "inspect", "-f", "{{.Config.Image}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}",
            "\(gateway.prefix)-alice",
        ])
        XCTAssertEqual(inspected.output, "\(imageID) \(256 * 1024 * 1024) 200 512\n", inspected.stderr)

        // auth-timeout = 2: a connection that never authenticates is closed soon after.
        let started = Date()
        let silent = try runProgram("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(gateway.port) || exit 9; cat <&3 >/dev/null"])
        let waited = Date().timeIntervalSince(started)
        XCTAssertNotEqual(silent.status, 9)
        XCTAssertTrue(waited >= 1.5 && waited < 10, "closed after \(waited) s")
        XCTAssertTrue(serveLog().contains("audit events go to stderr"), serveLog())
        XCTAssertTrue(serveLog().contains("settings from \(config)"), serveLog())
    }

    // MARK: - Helpers

    func write(_ text: String, name: String = "config.toml") throws -> String {
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func serve(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProgramResult {
        var environment = ProcessInfo.processInfo.environment
        for name in ["DEVENV_GW_STATE_DIR", "DEVENV_GW_PREFIX", "DEVENV_GW_AUDIT", "DEVENV_GW_CONFIG", "DEVENV_GW_IMAGE"] {
            environment[name] = nil
        }
        environment.merge(extra) { $1 }
        return try runProgram(DevenvBinary.path, ["serve"] + arguments, environment: environment)
    }

    /// `key = value` lines of a printed configuration.
    func settings(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            result[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return result
    }
}
