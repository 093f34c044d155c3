import DockerEngine
import Foundation
import TestSupport
import XCTest

/// A TLS directory is checked when it is loaded, so a bad one stops the gateway at start
/// with the file and the reason, before any engine is asked.
final class DockerTLSDirectoryTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-tls-dir")
        let openssl = try runProgram("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=test", "-keyout", path("key.pem"), "-out", path("cert.pem"),
        ])
        XCTAssertEqual(openssl.status, 0, openssl.stderr)
        try FileManager.default.copyItem(atPath: path("cert.pem"), toPath: path("ca.pem"))
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func assertRefused(_ file: String, _ reason: String, line: UInt = #line) {
        XCTAssertThrowsError(try DockerTLS(directory: directory.path), line: line) { error in
            XCTAssertEqual(error as? DockerTLSError, DockerTLSError(path: file, reason: reason), "\(error)", line: line)
        }
    }

    func testCompleteDirectoryLoads() throws {
        let tls = try DockerTLS(directory: directory.path)
        XCTAssertEqual(tls.files.caCertificate, path("ca.pem"))
        XCTAssertEqual(tls.files.client?.certificate, path("cert.pem"))
        XCTAssertEqual(tls.files.client?.key, path("key.pem"))
    }

    func testMissingKeyFileIsNamed() throws {
        try FileManager.default.removeItem(atPath: path("key.pem"))
        assertRefused(path("key.pem"), "no such file")
        XCTAssertEqual("\(try XCTUnwrap(Result { try DockerTLS(directory: self.directory.path) }.failure))",
                       "\(path("key.pem")): no such file")
    }

    func testUnusableFilesAreNamed() throws {
        try "not a key\n".write(toFile: path("key.pem"), atomically: true, encoding: .utf8)
        assertRefused(path("key.pem"), "holds no PEM private key (-----BEGIN PRIVATE KEY-----)")

        try "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .write(toFile: path("key.pem"), atomically: true, encoding: .utf8)
        assertRefused(path("key.pem"), "is encrypted with a passphrase, which the gateway cannot ask for")

        try FileManager.default.removeItem(atPath: path("ca.pem"))
        try FileManager.default.createDirectory(atPath: path("ca.pem"), withIntermediateDirectories: false)
        assertRefused(path("ca.pem"), "is a directory, not a file")

        try FileManager.default.removeItem(atPath: path("ca.pem"))
        try "".write(toFile: path("ca.pem"), atomically: true, encoding: .utf8)
        assertRefused(path("ca.pem"), "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")

        XCTAssertThrowsError(try DockerTLS(directory: path("nowhere"))) { error in
            XCTAssertEqual(error as? DockerTLSError, DockerTLSError(path: self.path("nowhere"), reason: "no such directory"))
        }
    }
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
