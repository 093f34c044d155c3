import Foundation
import TestSupport
import XCTest

/// The gateway image, run exactly as deploy/devenv-gw.service runs it (its own docker run
/// command, with the test's volumes, config file, name and port), and the real `ssh`
/// client logging in through it.
final class GatewayImageTests: XCTestCase {
    var prefix: String!
    var directory: URL!
    var container: String { "\(prefix!)-gateway" }

    override func setUpWithError() throws {
        prefix = DockerTestEnvironment.uniquePrefix("img")
        directory = try makeTemporaryDirectory("devenv-image")
    }

    override func tearDown() {
        _ = try? runProgram("/usr/bin/docker", ["rm", "--force", container])
        if let client = try? DockerTestEnvironment.client() { DockerTestEnvironment.removeInstance(prefix, client: client) }
        for volume in ["\(prefix!)-gw-state", "\(prefix!)-gw-hostkeys"] {
            _ = try? runProgram("/usr/bin/docker", ["volume", "rm", "--force", volume])
        }
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func testTheDeployUnitRunsTheGatewayImageAndSSHWorksThroughIt() throws {
        let started = Date()
        let image = try GatewayImage.ensureBuilt()
        let built = Date()
        let unit = try SystemdUnit(path: GatewayImage.repositoryRoot.appendingPathComponent("deploy/devenv-gw.service").path)
        let port = try GatewayProcess.freePort()
        let config = directory.appendingPathComponent("config.toml")
        try """
            prefix = "\(prefix!)"
            listen = ["127.0.0.1:\(port)"]
            image = "\(DockerTestEnvironment.workspaceImage)"
            audit = "journald"

            """.write(to: config, atomically: true, encoding: .utf8)
        for volume in ["\(prefix!)-gw-state", "\(prefix!)-gw-hostkeys"] {
            let created = try runProgram("/usr/bin/docker", ["volume", "create", "--label", "devenv.instance=\(prefix!)", volume])
            XCTAssertEqual(created.status, 0, created.stderr)
        }
        // The unit's paths and names, pointed at this test's volumes, file and container.
        let overrides = ["DEVENV_GW_CONTAINER": container, "DEVENV_GW_GATEWAY_IMAGE": image,
                         "DEVENV_GW_STATE": "\(prefix!)-gw-state", "DEVENV_GW_HOSTKEYS": "\(prefix!)-gw-hostkeys",
                         "DEVENV_GW_CONFIG_FILE": config.path]
        let startPre = try XCTUnwrap(unit.values("ExecStartPre").first.map { unit.command($0, overrides: overrides) })
        let start = unit.command(try XCTUnwrap(unit.values("ExecStart").first), overrides: overrides)
        let stop = unit.command(try XCTUnwrap(unit.values("ExecStop").first), overrides: overrides)
        XCTAssertTrue(start.contains("--network") && start.contains("host"), "\(start)")
        XCTAssertEqual(start.last, "serve")

        _ = try runProgram(startPre[0], Array(startPre.dropFirst()))
        let first = try startService(start, port: port, log: "first.log")
        let running = Date()

        // An admin command in the container finds the registry and the prefix through the
        // same state volume and config file.
        let user = "i\(UInt32.random(in: 0..<UInt32.max) % 100_000_000)"
        let identity = try SSHClientIdentity(named: user, in: directory)
        let added = try runProgram("/usr/bin/docker", ["exec", container, "devenv-gw", "adduser", user,
                                                       "--key", identity.publicKeyLine])
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.output.hasPrefix("added \(user) (uid 2000)"), added.output)

        let login = try identity.ssh(user, port: port, "id -un; echo $HOME")
        XCTAssertEqual(login.status, 0, login.stderr + log("first.log"))
        XCTAssertEqual(login.output, "\(user)\n/home/\(user)\n")
        let loggedIn = Date()
        let workspace = try runProgram("/usr/bin/docker", ["inspect", "-f", "{{.State.Running}}", "\(prefix!)-\(user)"])
        XCTAssertEqual(workspace.output, "true\n", "the workspace is the gateway's sibling on the host's engine")

        // The admin change and the login reached the host's journal through the mounted socket.
        let events = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 7)
        XCTAssertEqual(events.map { $0["DEVENV_EVENT"] }, ["user-added", "key-added", "auth-accepted", "workspace-created",
                                                           "workspace-started", "session-start", "session-end"])
        XCTAssertEqual(events.first?["DEVENV_ADMIN_UID"], "0")
        XCTAssertEqual(events.first?["SYSLOG_IDENTIFIER"], "devenv-gw")

        // ExecStop ends it gracefully (SIGTERM to the gateway as PID 1), well before the
        // 20 s after which docker would kill it.
        let stopping = Date()
        let stopped = try runProgram(stop[0], Array(stop.dropFirst()))
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let stopTime = Date().timeIntervalSince(stopping)
        XCTAssertLessThan(stopTime, 10)
        first.waitUntilExit()
        XCTAssertTrue(log("first.log").contains("shutting down"), log("first.log"))

        // Started again on the same volumes: the same host key (accept-new would refuse a
        // changed one) and the same registry.
        _ = try runProgram(startPre[0], Array(startPre.dropFirst()))
        let second = try startService(start, port: port, log: "second.log")
        let again = try identity.ssh(user, port: port, "echo again")
        XCTAssertEqual(again.status, 0, again.stderr + log("second.log"))
        XCTAssertEqual(again.output, "again\n")
        _ = try runProgram(stop[0], Array(stop.dropFirst()))
        second.waitUntilExit()

        print(String(format: "gateway image: ready in %.1f s, gateway answering after %.1f s, first login %.1f s, "
                         + "docker stop %.1f s, whole test %.1f s",
                     built.timeIntervalSince(started), running.timeIntervalSince(built),
                     loggedIn.timeIntervalSince(running), stopTime, Date().timeIntervalSince(started)))
    }

    func testDeployFilesAreValid() throws {
        let deploy = GatewayImage.repositoryRoot.appendingPathComponent("deploy")
        let verified = try runProgram("/usr/bin/systemd-analyze", ["verify", deploy.appendingPathComponent("devenv-gw.service").path])
        XCTAssertEqual(verified.status, 0, verified.stderr)
        XCTAssertEqual(verified.stderr, "", "no warnings")

        // The example config is one the gateway accepts.
        let printed = try runProgram(DevenvBinary.path, ["serve", "--print-config", "--config",
                                                         deploy.appendingPathComponent("config.toml").path])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertTrue(printed.output.contains("audit = \"journald\"\n"), printed.output)
        XCTAssertTrue(printed.output.contains("metrics-listen = \"127.0.0.1:9122\"\n"), printed.output)

        // The Butane config: the spec's shape, and every local file it embeds is there.
        let checker = """
            import sys, os, yaml
            bu = yaml.safe_load(open(sys.argv[1]))
            base = os.path.dirname(sys.argv[1])
            assert bu["variant"] == "fcos" and bu["version"] == "1.5.0", "variant/version"
            assert set(bu) <= {"variant", "version", "ignition", "storage", "systemd", "passwd"}, sorted(bu)
            dirs = {d["path"]: d.get("mode") for d in bu["storage"]["directories"]}
            assert dirs["/var/lib/devenv-gw"] == 0o700 and dirs["/etc/devenv-gw/hostkeys"] == 0o700, dirs
            for f in bu["storage"]["files"]:
                assert set(f) <= {"path", "mode", "contents", "overwrite", "user", "group"}, f
                assert os.path.isfile(os.path.join(base, f["contents"]["local"])), f
            units = {u["name"]: u for u in bu["systemd"]["units"]}
            assert units["devenv-gw.service"]["enabled"] is True
            assert os.path.isfile(os.path.join(base, units["devenv-gw.service"]["contents_local"]))
            assert units["docker.service"]["enabled"] is True
            print("ok")
            """
        let checked = try runProgram("/usr/bin/python3", ["-c", checker, deploy.appendingPathComponent("devenv-gw.bu").path])
        XCTAssertEqual(checked.output, "ok\n", checked.stderr)
        let shell = try runProgram("/bin/sh", ["-n", deploy.appendingPathComponent("devenv-gw-admin.sh").path])
        XCTAssertEqual(shell.status, 0, shell.stderr)
    }

    // MARK: - Helpers

    /// Runs the unit's ExecStart in the background and waits until the gateway answers SSH.
    func startService(_ command: [String], port: Int, log name: String) throws -> Process {
        let logURL = directory.appendingPathComponent(name)
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardOutput = try FileHandle(forWritingTo: logURL)
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            if GatewayProcess.answersSSH(port: port) { return process }
            usleep(100_000)
        }
        XCTFail("the gateway container did not answer on port \(port): \(log(name))")
        throw CocoaError(.executableLoad)
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }
}
