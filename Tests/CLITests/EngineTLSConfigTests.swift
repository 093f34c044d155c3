import Foundation
import TestSupport
import XCTest

/// How the real binary chooses TLS for tcp:// engines: `docker-tls-dir` in the config file
/// or Docker's DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; a bad directory stops every command
/// before it changes anything, and `serve` warns about a tcp:// engine without TLS.
final class EngineTLSConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-tls-config")
        let tls = directory.appendingPathComponent("tls").path
        try FileManager.default.createDirectory(atPath: tls, withIntermediateDirectories: true)
        let openssl = try runProgram("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=test", "-keyout", "\(tls)/key.pem", "-out", "\(tls)/cert.pem",
        ])
        XCTAssertEqual(openssl.status, 0, openssl.stderr)
        try FileManager.default.copyItem(atPath: "\(tls)/cert.pem", toPath: "\(tls)/ca.pem")
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private var tls: String { directory.appendingPathComponent("tls").path }
    private var state: String { directory.appendingPathComponent("state").path }

    private func config(_ text: String) throws -> String {
        let path = directory.appendingPathComponent("config.toml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs the binary with none of the settings' environment variables but `extra`.
    private func run(_ arguments: [String], environment extra: [String: String] = [:],
                     through wrapper: [String] = []) throws -> ProgramResult {
        var environment = ProcessInfo.processInfo.environment
        for name in ["DEVENV_GW_STATE_DIR", "DEVENV_GW_PREFIX", "DEVENV_GW_AUDIT", "DEVENV_GW_CONFIG", "DEVENV_GW_IMAGE",
                     "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH"] {
            environment[name] = nil
        }
        let command = wrapper + [DevenvBinary.path] + arguments
        return try runProgram(command[0], Array(command.dropFirst()), environment: environment.merging(extra) { $1 })
    }

    /// `serve` for three seconds at most (its log is on stderr), then SIGTERM.
    private func serveBriefly(environment extra: [String: String]) throws -> ProgramResult {
        try run(["serve", "--state-dir", state, "--audit", "stderr", "--egress-deny", "none", "--prefix", "tlswarn",
                 "--listen", "127.0.0.1:\(try GatewayProcess.freePort())"],
                environment: extra, through: ["/usr/bin/timeout", "-s", "TERM", "3"])
    }

    func testMissingKeyFileStopsEveryCommandAndChangesNothing() throws {
        try FileManager.default.removeItem(atPath: "\(tls)/key.pem")
        let file = try config("docker-tls-dir = \"\(tls)\"\n")
        for command in [["serve", "--listen", "127.0.0.1:\(try GatewayProcess.freePort())"], ["users"], ["ps"]] {
            let result = try run(command + ["--config", file, "--state-dir", state])
            XCTAssertEqual(result.status, 1, "\(command): \(result.stderr)")
            XCTAssertEqual(result.stderr, "devenv-gw: error: \(file): docker-tls-dir: \(tls)/key.pem: no such file\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: state), "\(command) created the state directory")
        }
        // Docker's variables name the directory the same way, and are checked the same way.
        let viaDocker = try run(["users", "--state-dir", state],
                                environment: ["DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": tls])
        XCTAssertEqual(viaDocker.status, 1)
        XCTAssertEqual(viaDocker.stderr, "devenv-gw: error: DOCKER_CERT_PATH: \(tls)/key.pem: no such file\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: state))
    }

    func testPrintConfigShowsTheDirectory() throws {
        let file = try config("docker-tls-dir = \"\(tls)\"\n")
        let printed = try run(["serve", "--print-config", "--config", file])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertTrue(printed.output.contains("\ndocker-tls-dir = \"\(tls)\"\n"), printed.output)
        let viaDocker = try run(["serve", "--print-config"], environment: ["DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": tls])
        XCTAssertTrue(viaDocker.output.contains("\ndocker-tls-dir = \"\(tls)\"\n"), viaDocker.output + viaDocker.stderr)
    }

    /// `serve` names a tcp:// engine it would reach without TLS, and says nothing of the
    /// kind once a TLS directory is configured.
    func testServeWarnsAboutPlainTCPEngines() throws {
        let engine = "tcp://127.0.0.1:\(try GatewayProcess.freePort())"
        let plain = try serveBriefly(environment: ["DOCKER_HOST": engine])
        XCTAssertTrue(plain.stderr.contains("the Docker engine at \(engine) is reached over plain HTTP"), plain.stderr)
        let withTLS = try serveBriefly(environment: ["DOCKER_HOST": engine, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": tls])
        XCTAssertFalse(withTLS.stderr.contains("plain HTTP"), withTLS.stderr)
        XCTAssertTrue(withTLS.stderr.contains("tcp:// Docker engines are reached over TLS with the certificates in \(tls)"),
                      withTLS.stderr)
    }
}
