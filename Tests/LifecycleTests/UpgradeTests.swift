import Foundation
import TestSupport
import XCTest

/// `upgrade` with the real binary, engine and ssh, to an image each test run builds from
/// the workspace image with a marker file (and removes afterwards).
final class UpgradeTests: GatewayTestCase {
    static var image = ""
    static var marker = ""
    var alice: SSHClientIdentity!

    override class func setUp() {
        super.setUp()
        marker = "upgrade-marker-\(UUID().uuidString)"
        image = "devenv-test-upgrade:\(UInt32.random(in: 0...UInt32.max))"
        let built = try? buildImage(image, dockerfile: """
            FROM \(DockerTestEnvironment.workspaceImage)
            RUN echo \(marker) > /etc/devenv-upgrade-marker
            """)
        if built?.status != 0 { print("building \(image) failed: \(built?.stderr ?? "")") }
    }

    override class func tearDown() {
        _ = try? removeImage(image)
        super.tearDown()
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
    }

    /// The marker of the new image is there, every data file is identical, and both the
    /// gateway's host key (strict known_hosts) and the workspace's host key are unchanged.
    func testUpgradeToANewImageKeepsDataAndHostKeys() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, HomeFixtures.makeFiles).status, 0)
        let home = try describeHome("alice", alice)
        let hostKey = try workspaceHostKey("alice")
        let gatewayKeys = try gatewayHostKeys()
        let oldID = try gateway.docker.inspectContainer("\(gateway.prefix)-alice").id

        let upgraded = try admin(["upgrade", "alice", "--image", Self.image])
        XCTAssertEqual(upgraded.output, "alice: upgraded\n")
        let details = try gateway.docker.inspectContainer("\(gateway.prefix)-alice")
        XCTAssertNotEqual(details.id, oldID)
        XCTAssertEqual(details.config.image, Self.image)
        XCTAssertTrue(details.state.running)
        XCTAssertEqual(try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"]).map(\.name),
                       ["\(gateway.prefix)-alice"], "the old and temporary containers are gone")

        let strict = ["-o", "StrictHostKeyChecking=yes"]
        let marker = try alice.ssh("alice", port: gateway.port, "cat /etc/devenv-upgrade-marker", extra: strict)
        XCTAssertEqual(marker.output, Self.marker + "\n", marker.stderr)
        XCTAssertEqual(try describeHome("alice", alice), home)
        XCTAssertEqual(try workspaceHostKey("alice"), hostKey)
        XCTAssertEqual(try gatewayHostKeys(), gatewayKeys)
        XCTAssertEqual(try admin(["upgrade", "alice", "--image", Self.image]).output,
                       "alice: skipped: already runs \(Self.image)\n")
    }

    /// A missing image: the upgrade fails, says so, and alice still logs in to the old workspace.
    func testUpgradeToAMissingImageLeavesTheOldWorkspaceWorking() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo data > f").status, 0)
        let before = try gateway.docker.inspectContainer("\(gateway.prefix)-alice")
        let missing = "devenv-test-missing:\(gateway.prefix)"
        let result = try gateway.admin(["upgrade", "--all", "--image", missing])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.output, "alice: failed: the workspace image \(missing) is not present on the Docker engine; "
                       + "the workspace is unchanged\nupgrade to \(missing): 0 upgraded, 0 skipped, 1 failed\n")
        let after = try gateway.docker.inspectContainer("\(gateway.prefix)-alice")
        XCTAssertEqual(after.id, before.id)
        XCTAssertTrue(after.state.running)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat f").output, "data\n")
    }

    /// An image whose containers do not come up: the new one is removed, the old one stays.
    func testUpgradeToAnImageThatDoesNotStartLeavesTheOldWorkspaceWorking() throws {
        let broken = "devenv-test-broken:\(gateway.prefix)"
        let built = try buildImage(broken, dockerfile: """
            FROM \(DockerTestEnvironment.workspaceImage)
            ENTRYPOINT ["/bin/sh", "-c", "echo broken on purpose >&2; exit 3"]
            """)
        XCTAssertEqual(built.status, 0, built.stderr)
        defer { _ = try? removeImage(broken) }
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        let before = try gateway.docker.inspectContainer("\(gateway.prefix)-alice").id
        let result = try gateway.admin(["upgrade", "alice", "--image", broken])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.output.hasPrefix("alice: failed: the new container from \(broken) did not come up: "
                                              + "it exited at start with code 3 (its last log lines: broken on purpose)"),
                      result.output)
        XCTAssertEqual(try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"]).map(\.id), [before])
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "id -un").output, "alice\n")
    }

    /// With --all: a workspace in use is skipped and said so, an idle one and a stopped one
    /// are upgraded (the stopped one stays stopped); --now then upgrades the busy one,
    /// ending its session.
    func testWorkspacesInUseAreSkippedUnlessNow() throws {
        let bob = try register("bob"), carol = try register("carol")
        for (user, identity) in [("alice", alice!), ("bob", bob), ("carol", carol)] {
            XCTAssertEqual(try identity.ssh(user, port: gateway.port, "true").status, 0)
        }
        try gateway.docker.stopContainer("\(gateway.prefix)-carol", timeout: 5)
        // alice keeps a session open (a shell running ssh, not a Foundation Process: see
        // BackgroundProcess); the shell writes ssh's output and exit status to a log.
        let log = keys.appendingPathComponent("session.log").path
        let session = try BackgroundProcess("/bin/sh", ["-c", alice.sshCommandLine("alice", port: gateway.port)
                                                        + " 'echo started; sleep 120' >\(shellQuoted(log)) 2>&1; echo exit=$? >>\(shellQuoted(log))"])
        defer { session.stop() }
        let sessionLog = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        XCTAssertTrue(waitFor(20) { sessionLog().contains("started") }, sessionLog())

        let all = try admin(["upgrade", "--all", "--image", Self.image])
        let lines = all.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, all.output)
        XCTAssertEqual(Set(lines.dropLast().filter { !$0.hasPrefix("alice") }), [
            "bob: upgraded",
            "carol: upgraded (stopped; the new container starts at the next login)",
        ])
        XCTAssertTrue(lines.contains { $0.hasPrefix("alice: skipped: in use (1 ssh connection and ") && $0.hasSuffix("; --now ends them") },
                      all.output)
        XCTAssertEqual(lines.last, "upgrade to \(Self.image): 2 upgraded, 1 skipped, 0 failed")
        XCTAssertEqual(sessionLog(), "started\n", "alice's session was not cut")
        let carolDetails = try gateway.docker.inspectContainer("\(gateway.prefix)-carol")
        XCTAssertEqual(carolDetails.config.image, Self.image)
        XCTAssertFalse(carolDetails.state.running)
        XCTAssertEqual(try carol.ssh("carol", port: gateway.port, "cat /etc/devenv-upgrade-marker").output, Self.marker + "\n")

        XCTAssertEqual(try admin(["upgrade", "alice", "--image", Self.image, "--now"]).output, "alice: upgraded\n")
        XCTAssertTrue(waitFor(20) { sessionLog().contains("exit=") }, "the session ended with the old container")
        XCTAssertEqual(sessionLog(), "started\nexit=255\n")
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat /etc/devenv-upgrade-marker").output, Self.marker + "\n")
    }

    /// `image` in the config file is the upgrade's image when neither `--image` nor
    /// DEVENV_GW_IMAGE says otherwise, as for `serve`; the upgrade is in the journal with
    /// both images and the admin who ran it.
    func testUpgradeTakesTheImageFromTheConfigFileAndIsAudited() throws {
        try Journal.requireJournald()
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        let config = keys.appendingPathComponent("config.toml")
        try "image = \"\(Self.image)\"\n".write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["DEVENV_GW_IMAGE"] = nil
        let upgraded = try runProgram(DevenvBinary.path, ["upgrade", "alice", "--config", config.path, "--audit", "journald"]
                                          + gateway.instanceArguments, environment: environment)
        XCTAssertEqual(upgraded.status, 0, upgraded.stderr)
        XCTAssertEqual(upgraded.output, "alice: upgraded\n")
        XCTAssertEqual(try gateway.docker.inspectContainer("\(gateway.prefix)-alice").config.image, Self.image)

        let container = "\(gateway.prefix)-alice"
        let entries = try Journal.entries(where: "DEVENV_CONTAINER", is: container)
            .filter { $0["DEVENV_EVENT"] == "workspace-upgraded" }
        XCTAssertEqual(entries.count, 1)
        let entry = try XCTUnwrap(entries.first)
        XCTAssertEqual(entry["MESSAGE_ID"], "6977e8ef45fc4eda910b1c00b03748f8")
        XCTAssertEqual(entry["DEVENV_USER"], "alice")
        XCTAssertEqual(entry["DEVENV_IMAGE"], Self.image)
        XCTAssertEqual(entry["DEVENV_PREVIOUS_IMAGE"], DockerTestEnvironment.workspaceImage)
        XCTAssertEqual(entry["DEVENV_ADMIN_UID"], String(getuid()))
        XCTAssertEqual(entry["DEVENV_ADMIN_USER"], String(cString: getpwuid(getuid()).pointee.pw_name))
    }

    func testUsageErrors() throws {
        for arguments in [["upgrade"], ["upgrade", "alice", "--all"], ["upgrade", "--all", "--parallel", "0"]] {
            let result = try gateway.admin(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: "), result.stderr)
        }
    }

    // MARK: - Helpers

    /// Polls `condition` for up to `seconds`.
    private func waitFor(_ seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    /// The gateway's own host keys: their files and what it presents to a client.
    private func gatewayHostKeys() throws -> String {
        let files = try FileManager.default.contentsOfDirectory(atPath: gateway.hostKeyDirectory).sorted()
        let contents = try files.map { try String(contentsOfFile: "\(gateway.hostKeyDirectory)/\($0)", encoding: .utf8) }
        let scan = try runProgram("/usr/bin/ssh-keyscan", ["-p", "\(gateway.port)", "127.0.0.1"])
        return (files + contents + scan.output.split(separator: "\n").map(String.init).sorted()).joined(separator: "\n")
    }
}
