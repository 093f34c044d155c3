import CurlHTTP
import DockerEngine
import Foundation
import TestSupport
import XCTest

/// `DockerClient` against a real dockerd started with `--tlsverify`: the right client
/// certificate works for real API calls, and every wrong piece is refused with an error
/// that names the engine and what failed.
final class DockerClientTLSTests: XCTestCase {
    /// One engine for the class: starting it takes about a second.
    private static var engine: Result<TLSTestEngine, Error>?

    override class func tearDown() {
        if case .success(let engine)? = engine { engine.remove() }
        engine = nil
        super.tearDown()
    }

    private var engine: TLSTestEngine!

    override func setUpWithError() throws {
        if Self.engine == nil { Self.engine = Result { try TLSTestEngine() } }
        engine = try XCTUnwrap(Self.engine).get()
    }

    private func client(_ directory: String, host: String? = nil) throws -> DockerClient {
        DockerClient(host: host ?? engine.endpoint, tls: try DockerTLS(directory: engine.directory(directory)),
                     requestTimeout: 10)
    }

    func testVersionAndRealOperationsOverTLS() throws {
        let docker = try client("good")
        XCTAssertFalse(docker.isPlainTCP)
        XCTAssertTrue(try docker.apiVersion().hasPrefix("1."))
        XCTAssertFalse(try docker.engineVersion().version.isEmpty)

        let volume = "devenv-tls-test-\(getpid())"
        let labels = ["devenv.instance": "tlstest"]
        XCTAssertEqual(try docker.createVolume(name: volume, labels: labels).name, volume)
        XCTAssertEqual(try docker.listVolumes(labels: ["devenv.instance=tlstest"]).map(\.name), [volume])
        XCTAssertEqual(try docker.listContainers(labels: []).count, 0, "a fresh engine runs no containers")
        try docker.removeVolume(volume)
        XCTAssertThrowsError(try docker.inspectVolume(volume)) { error in
            guard case DockerError.notFound = error else { return XCTFail("\(error)") }
        }

        // No port: Docker's TLS port, 2376, as the docker CLI assumes.
        XCTAssertNoThrow(try client("good", host: "tcp://\(engine.address)").apiVersion())
    }

    /// Repeated: with TLS 1.3 the engine's alert arrives after the handshake, or the
    /// connection is reset before it can be read; both must read as a refusal.
    func testClientWithoutCertificateIsRefused() throws {
        for _ in 0..<10 {
            // libcurl's level: no client certificate at all.
            let files = TLSFiles(caCertificate: engine.directory("good") + "/ca.pem", client: nil)
            let ping = HTTPRequest(url: "https://\(engine.address):2376/_ping", tls: files)
            XCTAssertThrowsError(try HTTPClient.perform(ping)) { error in
                XCTAssertEqual((error as? HTTPTransportError)?.tlsProblem, .clientCertificateRefused, "\(error)")
            }
            // The client's level: a certificate from a CA the engine does not trust.
            XCTAssertThrowsError(try client("rogue-client").apiVersion()) { error in
                guard case DockerError.tls(let endpoint, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(endpoint, self.engine.endpoint)
                let certificate = self.engine.directory("rogue-client") + "/cert.pem"
                XCTAssertTrue(reason.hasPrefix("the engine refused the client certificate \(certificate)"), reason)
                XCTAssertTrue("\(error)".hasPrefix("TLS with the Docker engine at \(self.engine.endpoint) failed: "), "\(error)")
            }
        }
    }

    func testServerCertificateFromUnknownCAIsRefused() throws {
        XCTAssertThrowsError(try client("unknown-server-ca").apiVersion()) { error in
            guard case DockerError.tls(let endpoint, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(endpoint, self.engine.endpoint)
            XCTAssertTrue(reason.contains("the engine's certificate is not trusted"), reason)
            XCTAssertTrue(reason.contains("\(self.engine.directory("unknown-server-ca"))/ca.pem"), reason)
            XCTAssertTrue(reason.contains("unable to get local issuer certificate"), reason)
        }
    }

    func testKeyThatDoesNotMatchTheCertificateIsNamed() throws {
        XCTAssertThrowsError(try client("mismatched-key").apiVersion()) { error in
            guard case DockerError.tls(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.hasPrefix("cannot use the client certificate \(self.engine.directory("mismatched-key"))/cert.pem"
                                           + " with the key \(self.engine.directory("mismatched-key"))/key.pem"), reason)
        }
    }

    func testPlainHTTPToATLSEngineSaysTLSIsRequired() throws {
        let plain = DockerClient(host: engine.endpoint, requestTimeout: 10)
        XCTAssertTrue(plain.isPlainTCP)
        XCTAssertThrowsError(try plain.apiVersion()) { error in
            guard case DockerError.tls(let endpoint, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(endpoint, self.engine.endpoint)
            XCTAssertTrue(reason.contains("the engine requires TLS"), reason)
        }
    }

    /// The admin's path: `devenv-gw ps` with DOCKER_HOST at the TLS engine and the
    /// certificates from the config file, or from Docker's own variables.
    func testAdminCommandReachesTheEngineThroughTheConfigFile() throws {
        let state = try makeTemporaryDirectory("devenv-tls-state")
        defer { try? FileManager.default.removeItem(at: state) }
        let config = state.appendingPathComponent("config.toml")
        try "docker-tls-dir = \"\(engine.directory("good"))\"\n".write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for name in ["DEVENV_GW_CONFIG", "DEVENV_GW_PREFIX", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH"] {
            environment[name] = nil
        }
        environment["DOCKER_HOST"] = engine.endpoint
        environment["DEVENV_GW_STATE_DIR"] = state.path
        let listed = try runProgram(DevenvBinary.path, ["ps", "--json", "--config", config.path], environment: environment)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        let workspaces = try JSONSerialization.jsonObject(with: listed.stdout) as? [Any]
        XCTAssertEqual(workspaces?.count, 0, listed.output)

        environment["DOCKER_TLS_VERIFY"] = "1"
        environment["DOCKER_CERT_PATH"] = engine.directory("good")
        let viaDocker = try runProgram(DevenvBinary.path, ["ps", "--json"], environment: environment)
        XCTAssertEqual(viaDocker.status, 0, viaDocker.stderr)

        environment["DOCKER_CERT_PATH"] = engine.directory("unknown-server-ca")
        let untrusted = try runProgram(DevenvBinary.path, ["ps"], environment: environment)
        XCTAssertEqual(untrusted.status, 1)
        XCTAssertTrue(untrusted.stderr.contains("TLS with the Docker engine at \(engine.endpoint) failed: "
                                                + "the engine's certificate is not trusted"), untrusted.stderr)
    }
}
