import Foundation
import XCTest

/// The gateway image `scripts/build-gateway-image.sh` builds, and the repository's files.
public enum GatewayImage {
    /// The repository this test build comes from.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: String?

    /// The image to test: DEVENV_GW_TEST_GATEWAY_IMAGE when `scripts/test.sh` built it
    /// already in this run, else built now with the script (once per test process; the
    /// release build and Docker's layer cache make a rebuild of unchanged sources quick)
    /// under a tag of this checkout's own, as checkouts may share one engine.
    public static func ensureBuilt(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let given = ProcessInfo.processInfo.environment["DEVENV_GW_TEST_GATEWAY_IMAGE"], !given.isEmpty {
            return given
        }
        lock.lock()
        defer { lock.unlock() }
        if let built { return built }
        // FNV-1a of the checkout's path: a tag no other checkout builds over.
        let hash = repositoryRoot.path.utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        let tag = "devenv-gw:test-" + String(hash, radix: 16)
        let script = repositoryRoot.appendingPathComponent("scripts/build-gateway-image.sh").path
        let result = try runProgram("/bin/bash", [script, tag])
        guard result.status == 0 else {
            XCTFail("building the gateway image failed: \(result.stderr)", file: file, line: line)
            throw CocoaError(.executableLoad)
        }
        built = tag
        return tag
    }
}

/// A systemd unit file, read as systemd reads the parts the tests use: continuation lines
/// joined, `Environment=` assignments collected, `${NAME}` expanded as one word.
public struct SystemdUnit {
    public let environment: [String: String]
    private let settings: [(String, String)]

    public init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines: [String] = []
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (line.hasPrefix("#") || line.hasPrefix(";")) { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
            } else {
                lines.append(pending + line)
                pending = ""
            }
        }
        var settings: [(String, String)] = []
        var environment: [String: String] = [:]
        for line in lines {
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("[") else { continue }
            let key = String(line[..<equals]), value = String(line[line.index(after: equals)...])
            settings.append((key, value))
            if key == "Environment", let inner = value.firstIndex(of: "=") {
                environment[String(value[..<inner])] = String(value[value.index(after: inner)...])
            }
        }
        self.settings = settings
        self.environment = environment
    }

    /// Every value of a setting such as `ExecStart`, in order.
    public func values(_ key: String) -> [String] {
        settings.filter { $0.0 == key }.map(\.1)
    }

    /// A command line of the unit as argv, with `${NAME}` taken from `overrides`, else from
    /// the unit's Environment=; a leading '-' (failure ignored) is dropped.
    public func command(_ line: String, overrides: [String: String] = [:]) -> [String] {
        var line = line
        if line.hasPrefix("-") { line.removeFirst() }
        let values = environment.merging(overrides) { $1 }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { word in
            var word = String(word)
            for (name, value) in values { word = word.replacingOccurrences(of: "${\(name)}", with: value) }
            return word
        }
    }
}
