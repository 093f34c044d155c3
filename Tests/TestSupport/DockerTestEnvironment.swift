import DockerEngine
import Foundation
import XCTest

/// Shared set-up for tests against the real Docker engine that `scripts/setup.sh` starts.
/// A missing engine fails the test: CI always provides one, so skipping would hide a break.
public enum DockerTestEnvironment {
    /// The workspace image built by `scripts/setup.sh`.
    public static var workspaceImage: String {
        ProcessInfo.processInfo.environment["DEVENV_GW_TEST_IMAGE"] ?? "devenv-workspace:latest"
    }

    /// A plain base image for client tests that need no sshd.
    public static let baseImage = "debian:bookworm-slim"

    /// A client for the engine, failing the calling test when none answers.
    public static func client(file: StaticString = #filePath, line: UInt = #line) throws -> DockerClient {
        let client = DockerClient()
        do {
            _ = try client.apiVersion()
        } catch {
            XCTFail("no Docker engine: \(error); run scripts/setup.sh", file: file, line: line)
            throw error
        }
        return client
    }

    /// A prefix unique to one test, so tests never touch each other's or real users' workspaces.
    public static func uniquePrefix(_ base: String = "t") -> String {
        "\(base)\(UInt32.random(in: 0..<UInt32.max) % 1_000_000)"
    }

    /// Removes every container, volume and network labelled with this instance prefix.
    public static func removeInstance(_ prefix: String, client: DockerClient) {
        let label = "devenv.instance=\(prefix)"
        for container in (try? client.listContainers(labels: [label])) ?? [] {
            try? client.removeContainer(container.id, force: true)
        }
        for volume in (try? client.listVolumes(labels: [label])) ?? [] {
            try? client.removeVolume(volume.name)
        }
        try? client.removeNetwork(prefix)
        removeEgressRules(prefix)
    }

    /// Removes the egress chain `serve` installed for `prefix` and the jumps to it (a real
    /// gateway leaves them, as the rules must outlive it; tests should not).
    public static func removeEgressRules(_ prefix: String) {
        let chain = "DEVENV-EG-\(prefix)"
        let iptables = "/usr/sbin/iptables"
        for entry in ["INPUT", "DOCKER-USER"] {
            let listing = (try? runProgram(iptables, ["-w", "5", "-S", entry]))?.output ?? ""
            for rule in listing.split(separator: "\n") where rule.hasSuffix(" -j \(chain)") {
                _ = try? runProgram(iptables, ["-w", "5", "-D"] + rule.split(separator: " ").dropFirst().map(String.init))
            }
        }
        _ = try? runProgram(iptables, ["-w", "5", "-F", chain])
        _ = try? runProgram(iptables, ["-w", "5", "-X", chain])
    }
}

/// Runs a program and captures its output; for driving real clients (ssh, tar, ssh-keygen).
public struct ProgramResult {
    public let status: Int32
    public let stdout: Data
    public let stderr: String
    public var output: String { String(decoding: stdout, as: UTF8.self) }
}

public func runProgram(_ executable: String, _ arguments: [String], input: Data? = nil,
                environment: [String: String]? = nil) throws -> ProgramResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    try process.run()
    if let input {
        DispatchQueue.global().async {
            inPipe.fileHandleForWriting.write(input)
            try? inPipe.fileHandleForWriting.close()
        }
    }
    // Drain stderr on another thread so a chatty program cannot block on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let stderrBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        stderrBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let stderrData = stderrBox.data
    process.waitUntilExit()
    return ProgramResult(status: process.terminationStatus, stdout: stdout,
                         stderr: String(decoding: stderrData, as: UTF8.self))
}

/// A fresh temporary directory, removed by the caller.
public func makeTemporaryDirectory(_ name: String = "devenv-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Builds an image tagged `tag` from a Dockerfile given as text (no build context), with
/// the docker CLI. Tests that build images remove them with `removeImage`.
public func buildImage(_ tag: String, dockerfile: String) throws -> ProgramResult {
    try runProgram("/bin/sh", ["-c", "docker build -q -t \(shellQuoted(tag)) - 2>&1"], input: Data(dockerfile.utf8))
}

/// Removes an image by tag with the docker CLI.
@discardableResult
public func removeImage(_ tag: String) throws -> ProgramResult {
    try runProgram("/bin/sh", ["-c", "docker rmi \(shellQuoted(tag))"])
}
