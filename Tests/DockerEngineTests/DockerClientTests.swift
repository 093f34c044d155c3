import DockerEngine
import Foundation
import TestSupport
import XCTest

final class DockerClientTests: XCTestCase {
    var client: DockerClient!
    var prefix = ""

    override func setUpWithError() throws {
        client = try DockerTestEnvironment.client()
        prefix = DockerTestEnvironment.uniquePrefix("dc")
    }

    override func tearDown() {
        if let client { DockerTestEnvironment.removeInstance(prefix, client: client) }
    }

    private var labels: [String: String] { ["devenv.instance": prefix] }

    private func sleeperSpec() -> ContainerSpec {
        ContainerSpec(image: DockerTestEnvironment.baseImage, labels: labels, cmd: ["sleep", "infinity"],
                      hostConfig: HostConfig(init_: true))
    }

    func testNegotiatesAPIVersionFromPing() throws {
        let version = try client.apiVersion()
        XCTAssertTrue(version.hasPrefix("1."), version)
    }

    func testContainerLifecycleAndStatusMapping() throws {
        let name = "\(prefix)-life"
        let id = try client.createContainer(name: name, spec: sleeperSpec())
        XCTAssertThrowsError(try client.createContainer(name: name, spec: sleeperSpec())) { error in
            guard case DockerError.conflict(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("already in use"), message)
        }
        XCTAssertEqual(try client.inspectContainer(name).state.status, "created")
        XCTAssertTrue(try client.startContainer(id))
        XCTAssertFalse(try client.startContainer(id), "a second start is 304, reported as false")
        let running = try client.inspectContainer(id)
        XCTAssertTrue(running.state.running)
        XCTAssertEqual(running.name, "/\(name)")
        XCTAssertEqual(try client.listContainers(labels: ["devenv.instance=\(prefix)"]).map(\.id), [id])
        XCTAssertTrue(try client.stopContainer(id, timeout: 1))
        XCTAssertFalse(try client.stopContainer(id, timeout: 1))
        XCTAssertEqual(try client.inspectContainer(id).state.status, "exited")
        try client.removeContainer(id)
        XCTAssertThrowsError(try client.inspectContainer(id)) { error in
            guard case DockerError.notFound(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.lowercased().contains("no such container"), message)
        }
    }

    func testMissingImageIsNotFound() throws {
        XCTAssertThrowsError(try client.inspectImage("devenv-no-such-image:\(prefix)")) { error in
            guard case DockerError.notFound = error else { return XCTFail("\(error)") }
        }
    }

    func testVolumesAndNetworks() throws {
        let volume = "\(prefix)-vol"
        try client.createVolume(name: volume, labels: labels)
        XCTAssertEqual(try client.inspectVolume(volume).labels?["devenv.instance"], prefix)
        XCTAssertEqual(try client.listVolumes(labels: ["devenv.instance=\(prefix)"]).map(\.name), [volume])
        try client.removeVolume(volume)
        XCTAssertThrowsError(try client.inspectVolume(volume))

        try client.createNetwork(name: prefix, options: ["com.docker.network.bridge.enable_icc": "false"],
                                 labels: labels)
        let network = try client.inspectNetwork(prefix)
        XCTAssertEqual(network.driver, "bridge")
        XCTAssertEqual(network.options?["com.docker.network.bridge.enable_icc"], "false")
        XCTAssertThrowsError(try client.createNetwork(name: prefix)) { error in
            guard case DockerError.conflict = error else { return XCTFail("\(error)") }
        }
    }

    func testUnreachableEngineNamesTheSocketAndDoesNotHang() throws {
        let dead = DockerClient(host: "unix:///tmp/\(prefix)-no-engine.sock")
        let started = Date()
        XCTAssertThrowsError(try dead.inspectContainer("x")) { error in
            guard case DockerError.unreachable(let endpoint, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(endpoint.contains("\(prefix)-no-engine.sock"))
            XCTAssertTrue("\(error)".contains("\(prefix)-no-engine.sock"))
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    }

    /// A 20 MB random file goes in and out through streamed archives, byte for byte.
    func testArchiveRoundTripStreamsBinaryData() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let payload = try XCTUnwrap(FileHandle(forReadingAtPath: "/dev/urandom")).readData(ofLength: 20 * 1024 * 1024)
        try payload.write(to: source.appendingPathComponent("blob.bin"))
        let tarPath = dir.appendingPathComponent("in.tar").path
        XCTAssertEqual(try runProgram("/bin/tar", ["-C", source.path, "-cf", tarPath, "blob.bin"]).status, 0)

        let id = try client.createContainer(name: "\(prefix)-arch", spec: sleeperSpec())
        let input = try XCTUnwrap(FileHandle(forReadingAtPath: tarPath))
        try client.uploadArchive(container: id, path: "/tmp") { buffer in
            let chunk = input.readData(ofLength: buffer.count)
            chunk.copyBytes(to: buffer.bindMemory(to: UInt8.self))
            return chunk.count
        }
        try input.close()

        let outPath = dir.appendingPathComponent("out.tar").path
        FileManager.default.createFile(atPath: outPath, contents: nil)
        let output = try XCTUnwrap(FileHandle(forWritingAtPath: outPath))
        var chunks = 0
        try client.downloadArchive(container: id, path: "/tmp/blob.bin") { bytes in
            chunks += 1
            output.write(Data(bytes))
        }
        try output.close()
        XCTAssertGreaterThan(chunks, 10, "the body arrives in pieces, not as one buffer")
        let extracted = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: extracted, withIntermediateDirectories: true)
        XCTAssertEqual(try runProgram("/bin/tar", ["-C", extracted.path, "-xf", outPath]).status, 0)
        XCTAssertEqual(try Data(contentsOf: extracted.appendingPathComponent("blob.bin")), payload)
    }

    /// `top` gives each process's uid; `logs` is the container's output without stream framing.
    func testProcessesWithUidsAndLogs() throws {
        var spec = sleeperSpec()
        spec.cmd = ["sh", "-c", "echo to-stdout; sleep 0.3; echo to-stderr >&2; setpriv --reuid 2345 --regid 2345 --clear-groups sleep 600"]
        let id = try client.createContainer(name: "\(prefix)-top", spec: spec)
        XCTAssertThrowsError(try client.containerProcesses(id), "a created container has no processes") { error in
            guard case DockerError.conflict = error else { return XCTFail("\(error)") }
        }
        try client.startContainer(id)
        var processes: [ContainerProcess] = []
        for _ in 0..<100 where !processes.contains(where: { $0.uid == 2345 }) {
            usleep(50_000)
            processes = try client.containerProcesses(id)
        }
        XCTAssertEqual(processes.filter { $0.uid == 2345 }.map(\.command), ["sleep 600"], "\(processes)")
        XCTAssertTrue(processes.allSatisfy { $0.pid > 0 })
        XCTAssertEqual(try client.containerLogs(id, tail: 10), "to-stdout\nto-stderr\n")
        XCTAssertEqual(try client.containerLogs(id, tail: 1), "to-stderr\n")
    }

    func testArchiveOfMissingPathIsNotFound() throws {
        let id = try client.createContainer(name: "\(prefix)-miss", spec: sleeperSpec())
        XCTAssertThrowsError(try client.downloadArchive(container: id, path: "/no/such/path") { _ in }) { error in
            guard case DockerError.notFound = error else { return XCTFail("\(error)") }
        }
    }
}
