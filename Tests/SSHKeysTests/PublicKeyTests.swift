import XCTest
@testable import SSHKeys

final class PublicKeyTests: XCTestCase {
    func testParsesGeneratedEd25519KeyAndComputesOpenSSHFingerprint() throws {
        let generated = try PrivateKey.generate(.ed25519)
        let line = "\(generated.publicKey.type) \(generated.publicKey.base64) alice@laptop"
        let key = try PublicKey(parsing: line)
        XCTAssertEqual(key.type, "ssh-ed25519")
        XCTAssertEqual(key.comment, "alice@laptop")
        XCTAssertEqual(key.line, line)
        XCTAssertTrue(key.fingerprint.hasPrefix("SHA256:"))
        XCTAssertEqual(key.fingerprint, generated.publicKey.fingerprint)
    }

    func testFingerprintMatchesSSHKeygen() throws {
        let generated = try PrivateKey.generate(.ed25519)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fp-\(UUID()).pub")
        try (generated.publicKey.line + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        process.arguments = ["-l", "-E", "sha256", "-f", file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(output.contains(generated.publicKey.fingerprint), output)
    }

    func testRefusesBadKeysWithSpecificReasons() throws {
        let good = try PrivateKey.generate(.ed25519).publicKey
        let truncated = "ssh-ed25519 " + good.base64.dropLast(10)
        XCTAssertThrowsError(try PublicKey(parsing: "")) { XCTAssertEqual($0 as? PublicKeyError, .empty) }
        XCTAssertThrowsError(try PublicKey(parsing: "ssh-dss AAAAB3NzaC1kc3MAAACBAP")) {
            XCTAssertEqual($0 as? PublicKeyError, .dsaRefused)
        }
        XCTAssertThrowsError(try PublicKey(parsing: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----")) {
            XCTAssertEqual($0 as? PublicKeyError, .privateKey)
        }
        XCTAssertThrowsError(try PublicKey(parsing: String(truncated)))
        XCTAssertThrowsError(try PublicKey(parsing: "ssh-ed25519 !!!notbase64!!!"))
        XCTAssertThrowsError(try PublicKey(parsing: "ssh-ed25519")) {
            XCTAssertEqual($0 as? PublicKeyError, .missingKeyData)
        }
        XCTAssertThrowsError(try PublicKey(parsing: "frobnicate AAAA")) {
            XCTAssertEqual($0 as? PublicKeyError, .unsupportedType("frobnicate"))
        }
        // An ed25519 blob declared as RSA.
        XCTAssertThrowsError(try PublicKey(parsing: "ssh-rsa \(good.base64)"))
    }

    func testRefusesShortRSAKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rsa-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        process.arguments = ["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", dir.appendingPathComponent("k").path]
        try process.run()
        process.waitUntilExit()
        let line = try String(contentsOf: dir.appendingPathComponent("k.pub"), encoding: .utf8)
        XCTAssertThrowsError(try PublicKey(parsing: line)) {
            XCTAssertEqual($0 as? PublicKeyError, .rsaTooShort(bits: 1024))
        }
    }

    func testPrivateKeyRoundTripsThroughFileAndNeverOverwrites() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hk-\(UUID())").path
        defer { unlink(path) }
        let first = try PrivateKey.loadOrCreate(path: path, kind: .ed25519)
        XCTAssertTrue(first.created)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let second = try PrivateKey.loadOrCreate(path: path, kind: .ed25519)
        XCTAssertFalse(second.created)
        XCTAssertEqual(second.key.publicKey.base64, first.key.publicKey.base64)
        XCTAssertThrowsError(try first.key.write(to: path))
    }

    func testCorruptKeyFileIsAnErrorAndIsKept() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID())").path
        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        XCTAssertThrowsError(try PrivateKey.loadOrCreate(path: path, kind: .ed25519))
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "garbage")
    }
}
