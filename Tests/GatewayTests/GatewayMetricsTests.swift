import Foundation
import TestSupport
import XCTest

/// `serve --metrics-listen`: a real gateway, real logins and sessions, scraped with curl and
/// read with prometheus-client's parser; every counter moves by exactly what was done.
final class GatewayMetricsTests: GatewayTestCase {
    var alice: SSHClientIdentity!
    var metricsURL: String!

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        let port = try GatewayProcess.freePort()
        metricsURL = "http://127.0.0.1:\(port)/metrics"
        gateway.extraArguments = ["--metrics-listen", "127.0.0.1:\(port)"]
        try gateway.start()
    }

    func scrape(file: StaticString = #filePath, line: UInt = #line) throws -> MetricsScrape {
        try MetricsScrape(url: metricsURL, file: file, line: line)
    }

    /// Asserts that each series moved from `before` to `after` by exactly the given amount,
    /// and that every other counter named in `unchanged` did not move.
    func assertMoved(_ before: MetricsScrape, _ after: MetricsScrape, _ expected: [String: Double],
                     unchanged: [String], file: StaticString = #filePath, line: UInt = #line) {
        for (key, delta) in expected {
            XCTAssertEqual(after[key] - before[key], delta, key, file: file, line: line)
        }
        for key in unchanged where expected[key] == nil {
            XCTAssertEqual(after[key], before[key], "\(key) moved", file: file, line: line)
        }
    }

    /// The counters a login, a refusal or a session may move.
    let watched = [
        "devenv_gw_logins_accepted_total",
        "devenv_gw_logins_refused_total{reason=\"unknown_key\"}",
        "devenv_gw_logins_refused_total{reason=\"bad_signature\"}",
        "devenv_gw_logins_refused_total{reason=\"cap\"}",
        "devenv_gw_logins_refused_total{reason=\"engine_error\"}",
        "devenv_gw_logins_refused_total{reason=\"timeout\"}",
        "devenv_gw_login_duration_seconds_count{workspace=\"cold\"}",
        "devenv_gw_login_duration_seconds_count{workspace=\"warm\"}",
        "devenv_gw_sessions_started_total{kind=\"exec\"}",
        "devenv_gw_sessions_started_total{kind=\"shell\"}",
        "devenv_gw_sessions_started_total{kind=\"sftp\"}",
        "devenv_gw_bytes_total{direction=\"to_workspace\"}",
        "devenv_gw_bytes_total{direction=\"to_client\"}",
        "devenv_gw_workspaces_created_total",
        "devenv_gw_workspaces_started_total",
        "devenv_gw_preauth_evicted_total",
        "devenv_gw_engine_errors_total{operation=\"create_container\"}",
    ]

    func testCountersMoveByExactlyWhatWasDone() throws {
        let start = try scrape()
        XCTAssertEqual(start.families["devenv_gw_login_duration_seconds"], "histogram")
        XCTAssertEqual(start.families["devenv_gw_logins_accepted"], "counter")
        XCTAssertEqual(start.families["devenv_gw_connections_open"], "gauge")
        XCTAssertEqual(start["devenv_gw_build_info{version=\"0.9.0\"}"], 1)
        XCTAssertGreaterThan(start["devenv_gw_process_resident_memory_bytes"], 1_000_000)
        XCTAssertGreaterThan(start["devenv_gw_process_threads"], 1)
        XCTAssertGreaterThan(start["devenv_gw_process_open_fds"], 3)
        for key in watched { XCTAssertNotNil(start.samples[key], "\(key) exists at zero from the start") }
        XCTAssertFalse(start.text.contains("alice"), "no metric names a user")
        XCTAssertFalse(start.text.contains("127.0.0.1"), "no metric names an address")

        // A cold login with one exec session: 777 bytes in, 12345 out.
        let exec = try alice.ssh("alice", port: gateway.port, "cat >/dev/null; head -c 12345 /dev/zero",
                                 input: Data(repeating: 65, count: 777))
        XCTAssertEqual(exec.status, 0, exec.stderr)
        XCTAssertEqual(exec.stdout.count, 12345)
        let afterLogin = try scrape()
        assertMoved(start, afterLogin, [
            "devenv_gw_logins_accepted_total": 1,
            "devenv_gw_login_duration_seconds_count{workspace=\"cold\"}": 1,
            "devenv_gw_sessions_started_total{kind=\"exec\"}": 1,
            "devenv_gw_bytes_total{direction=\"to_workspace\"}": 777,
            "devenv_gw_bytes_total{direction=\"to_client\"}": 12345,
            "devenv_gw_workspaces_created_total": 1,
            "devenv_gw_workspaces_started_total": 1,
        ], unchanged: watched)
        XCTAssertGreaterThan(afterLogin["devenv_gw_login_duration_seconds_sum{workspace=\"cold\"}"], 0)
        XCTAssertEqual(afterLogin["devenv_gw_sessions_open{kind=\"exec\"}"], 0)

        // A refused login: a key nobody registered.
        let stranger = try SSHClientIdentity(named: "stranger", in: keys)
        XCTAssertEqual(try stranger.ssh("alice", port: gateway.port, "true").status, 255)
        let afterRefusal = try scrape()
        assertMoved(afterLogin, afterRefusal, ["devenv_gw_logins_refused_total{reason=\"unknown_key\"}": 1],
                    unchanged: watched)

        // A warm login holding a session open: the gauges show it, then let go of it.
        let held = try startBackground("/usr/bin/ssh", alice.sshOptions(port: gateway.port) + ["alice@127.0.0.1", "sleep 60"])
        try waitFor("the held session is counted") {
            let now = try scrape()
            return now["devenv_gw_sessions_open{kind=\"exec\"}"] == 1
                && now["devenv_gw_connections_open{state=\"authenticated\"}"] == 1
        }
        held.stop()
        try waitFor("the held session is gone from the gauges") {
            let now = try scrape()
            return now["devenv_gw_sessions_open{kind=\"exec\"}"] == 0
                && now["devenv_gw_connections_open{state=\"authenticated\"}"] == 0
        }

        // An sftp session on a third, warm login.
        let sftp = try runProgram("/usr/bin/sftp", ["-b", "-"] + sftpOptions() + ["alice@127.0.0.1"],
                                  input: Data("pwd\n".utf8))
        XCTAssertEqual(sftp.status, 0, sftp.stderr)
        let end = try scrape()
        assertMoved(afterRefusal, end, [
            "devenv_gw_logins_accepted_total": 2,
            "devenv_gw_login_duration_seconds_count{workspace=\"warm\"}": 2,
            "devenv_gw_sessions_started_total{kind=\"exec\"}": 1,
            "devenv_gw_sessions_started_total{kind=\"sftp\"}": 1,
        ], unchanged: watched.filter { !$0.hasPrefix("devenv_gw_bytes_total") })

        // The workspace gauge comes from the engine, at start and then every 30 s: a restart
        // counts the workspace the first login created, still running.
        gateway.stop()
        try gateway.start()
        try waitFor("the running workspace is counted") {
            let now = try scrape()
            return now["devenv_gw_workspaces{state=\"running\"}"] == 1 && now["devenv_gw_workspaces{state=\"stopped\"}"] == 0
        }
    }

    /// sftp's options for the gateway: ssh's, with the port flag sftp spells -P.
    func sftpOptions() -> [String] {
        alice.sshOptions(port: gateway.port).map { $0 == "-p" ? "-P" : $0 }
    }

    func testTheEndpointAnswersOnlyMetricsAndNeverStallsLogins() throws {
        let base = String(metricsURL.dropLast("/metrics".count))
        let notFound = try runProgram("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/other"])
        XCTAssertEqual(notFound.output, "404")
        let post = try runProgram("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", metricsURL])
        XCTAssertEqual(post.output, "405")
        // A scraper that connects and never sends its request holds no login up.
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        let metricsPort = Int(base.split(separator: ":").last!)!
        for _ in 0..<20 { if let fd = GatewayProcess.connectLoopback(port: metricsPort) { idle.append(fd) } }
        XCTAssertEqual(idle.count, 20)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo ok").output, "ok\n")
        XCTAssertEqual(try scrape()["devenv_gw_logins_accepted_total"], 1)
    }

    func testAWorkspaceThatCannotStartIsAnEngineErrorRefusal() throws {
        gateway.stop()
        gateway.extraArguments += ["--image", "devenv-missing-image:\(gateway.prefix)"]
        try gateway.start()
        let before = try scrape()
        let result = try alice.ssh("alice", port: gateway.port, "true")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("your workspace could not start"), result.stderr)
        let after = try scrape()
        assertMoved(before, after, ["devenv_gw_logins_refused_total{reason=\"engine_error\"}": 1], unchanged: watched)
    }

    func testAnAddressInUseStopsTheStartWithAClearMessage() throws {
        gateway.stop()
        // The test holds a listening socket on the port; a second listener cannot bind it.
        let (fd, taken) = GatewayProcess.boundLoopbackSocket()
        defer { close(fd) }
        XCTAssertEqual(listen(fd, 1), 0)
        let result = try runProgram(DevenvBinary.path, ["serve"] + gateway.instanceArguments + [
            "--listen", "127.0.0.1:\(try GatewayProcess.freePort())", "--hostkeys", gateway.hostKeyDirectory,
            "--metrics-listen", "127.0.0.1:\(taken)", "--egress-deny", "none",
        ])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: cannot listen for metrics on 127.0.0.1:\(taken): "),
                      result.stderr)
        XCTAssertFalse(GatewayProcess.answersSSH(port: gateway.port), "nothing was started")
    }
}
