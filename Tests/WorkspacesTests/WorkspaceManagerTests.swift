import DockerEngine
import Foundation
import SSHKeys
import TestSupport
import UserNames
import Workspaces
import XCTest

/// `ensure` against the real engine and the real workspace image.
final class WorkspaceManagerTests: XCTestCase {
    var docker: DockerClient!
    var prefix = ""
    var manager: WorkspaceManager!
    var gatewayKey: PrivateKey!
    var directory: URL!

    override func setUpWithError() throws {
        docker = try DockerTestEnvironment.client()
        prefix = DockerTestEnvironment.uniquePrefix("ws")
        manager = WorkspaceManager(docker: docker, settings: WorkspaceSettings(
            prefix: prefix, image: DockerTestEnvironment.workspaceImage))
        gatewayKey = try PrivateKey.generate(.ed25519)
        directory = try makeTemporaryDirectory()
    }

    override func tearDown() {
        if let docker { DockerTestEnvironment.removeInstance(prefix, client: docker) }
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func identity(_ name: String, uid: Int = 2345) throws -> WorkspaceIdentity {
        WorkspaceIdentity(user: try UserName(name), uid: uid, gatewayPublicKey: gatewayKey.publicKey.line,
                          hostKeyPEM: try PrivateKey.generate(.ed25519).pemText)
    }

    func testEnsureCreatesHardenedWorkspaceWithHomeVolumeAndIsolatedNetwork() throws {
        let alice = try identity("alice")
        let first = try manager.ensure(alice)
        XCTAssertTrue(first.created)
        XCTAssertEqual(first.containerName, "\(prefix)-alice")

        let details = try docker.inspectContainer(first.containerID)
        XCTAssertTrue(details.state.running)
        let host = details.hostConfig
        XCTAssertEqual(host.memory, 536_870_912)
        XCTAssertEqual(host.memorySwap, 536_870_912)
        XCTAssertEqual(host.pidsLimit, 1024)
        XCTAssertEqual(host.capDrop, ["ALL"])
        XCTAssertEqual(Set(host.capAdd ?? []), Set(["SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "KILL", "AUDIT_WRITE"]))
        XCTAssertEqual(host.securityOpt, ["no-new-privileges"])
        XCTAssertEqual(host.mounts, [Mount(volume: "\(prefix)-alice-home", at: "/home/alice")])
        XCTAssertEqual(details.config.hostname, "\(prefix)-alice")
        XCTAssertEqual(details.config.labels?["devenv.user"], "alice")
        XCTAssertEqual(details.config.labels?["devenv.instance"], prefix)
        XCTAssertEqual(try docker.inspectVolume("\(prefix)-alice-home").labels?["devenv.user"], "alice")
        let network = try docker.inspectNetwork(prefix)
        XCTAssertEqual(network.options?["com.docker.network.bridge.enable_icc"], "false")

        let second = try manager.ensure(alice)
        XCTAssertFalse(second.created)
        XCTAssertFalse(second.started)
        XCTAssertEqual(second.containerID, first.containerID)
    }

    func testTenConcurrentEnsuresMakeOneContainerAndOneVolume() throws {
        let bob = try identity("bob")
        let results = ConcurrentResults()
        DispatchQueue.concurrentPerform(iterations: 10) { _ in
            results.append(Result { try self.manager.ensure(bob) })
        }
        let endpoints = try results.values.map { try $0.get() }
        XCTAssertEqual(endpoints.count, 10)
        XCTAssertEqual(Set(endpoints.map(\.containerID)).count, 1)
        XCTAssertEqual(endpoints.filter(\.created).count, 1)
        XCTAssertEqual(try docker.listContainers(labels: ["devenv.instance=\(prefix)"]).count, 1)
        XCTAssertEqual(try docker.listVolumes(labels: ["devenv.instance=\(prefix)"]).count, 1)
    }

    /// The workspace's sshd lets in exactly the gateway's key, as the user, presenting the injected host key.
    func testWorkspaceSSHDAcceptsOnlyTheGatewayKey() throws {
        let carol = try identity("carol", uid: 2400)
        let endpoint = try manager.ensure(carol)
        let hostKey = try PrivateKey(pemText: carol.hostKeyPEM).publicKey
        let knownHosts = directory.appendingPathComponent("known_hosts")
        try "\(endpoint.address) \(hostKey.type) \(hostKey.base64)\n".write(to: knownHosts, atomically: true, encoding: .utf8)
        let gatewayKeyFile = directory.appendingPathComponent("gateway")
        try gatewayKey.write(to: gatewayKeyFile.path)
        let otherKeyFile = directory.appendingPathComponent("other")
        try PrivateKey.generate(.ed25519).write(to: otherKeyFile.path)

        func ssh(_ key: URL, user: String = "carol") throws -> ProgramResult {
            try runProgram("/usr/bin/ssh", [
                "-F", "/dev/null", "-i", key.path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=\(knownHosts.path)", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", "\(user)@\(endpoint.address)", "id -u; id -un; echo $HOME; hostname",
            ])
        }
        let accepted = try ssh(gatewayKeyFile)
        XCTAssertEqual(accepted.status, 0, accepted.stderr)
        XCTAssertEqual(accepted.output.split(separator: "\n"), ["2400", "carol", "/home/carol", "\(prefix)-carol"])
        let refused = try ssh(otherKeyFile)
        XCTAssertEqual(refused.status, 255)
        XCTAssertTrue(refused.stderr.contains("Permission denied"), refused.stderr)
        XCTAssertEqual(try ssh(gatewayKeyFile, user: "root").status, 255, "no root login, even with the gateway key")
    }

    func testStopAndListReportStateAndEnsureRestarts() throws {
        let dave = try identity("dave")
        _ = try manager.ensure(dave)
        XCTAssertTrue(try manager.stop(dave.user, timeout: 2))
        let listed = try manager.list()
        XCTAssertEqual(listed.map(\.user), ["dave"])
        XCTAssertEqual(listed.first?.state, "exited")
        XCTAssertEqual(listed.first?.volume, "\(prefix)-dave-home")
        let again = try manager.ensure(dave)
        XCTAssertFalse(again.created)
        XCTAssertTrue(again.started)
        XCTAssertFalse(try manager.stop(try UserName("nobody")))
    }

    /// Relays the engine's socket, but while the FLAG file exists answers every archive upload
    /// with the engine's 500: `failing_relay SOCKET FLAG`. Each request of the client comes
    /// on a connection of its own, so the request line decides.
    static let failingRelay = """
        import os, socket, sys, threading
        path, flag = sys.argv[1], sys.argv[2]
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(64)
        def pipe(source, sink):
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        def serve(client):
            head = b""
            while b"\\r\\n\\r\\n" not in head:
                data = client.recv(65536)
                if not data:
                    return client.close()
                head += data
            line = head.split(b"\\r\\n", 1)[0]
            if os.path.exists(flag) and line.startswith(b"PUT ") and b"/archive" in line:
                body = b'{"message":"injected upload failure"}'
                client.sendall(b"HTTP/1.1 500 Internal Server Error\\r\\nContent-Type: application/json\\r\\n"
                               + b"Content-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
                return client.close()
            engine = socket.socket(socket.AF_UNIX)
            engine.connect("/var/run/docker.sock")
            engine.sendall(head)
            threading.Thread(target=pipe, args=(engine, client), daemon=True).start()
            pipe(client, engine)
        while True:
            connection, _ = server.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
        """

    /// When the identity cannot be put into a new container, the container is removed again,
    /// so the next login creates a complete one instead of starting a broken one.
    func testAFailedIdentityUploadLeavesNoContainerAndTheNextLoginWorks() throws {
        let socket = directory.appendingPathComponent("engine.sock").path
        let flag = directory.appendingPathComponent("fail-uploads").path
        XCTAssertTrue(FileManager.default.createFile(atPath: flag, contents: nil))
        let relay = try BackgroundProcess("/usr/bin/python3", ["-c", Self.failingRelay, socket, flag])
        defer { relay.stop() }
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(20_000) }
        let flaky = WorkspaceManager(docker: DockerClient(host: "unix://\(socket)"), settings: manager.settings)
        let dave = try identity("dave")

        XCTAssertThrowsError(try flaky.ensure(dave)) { error in
            XCTAssertTrue("\(error)".contains("injected upload failure"), "\(error)")
        }
        let name = manager.settings.containerName(for: dave.user)
        XCTAssertThrowsError(try docker.inspectContainer(name), "no half-made container is left") { error in
            guard case DockerError.notFound = error else { return XCTFail("\(error)") }
        }

        try FileManager.default.removeItem(atPath: flag)
        let endpoint = try flaky.ensure(dave)
        XCTAssertTrue(endpoint.created, "created anew, and its sshd answered")
    }

    func testMissingImageIsAClearErrorAndCreatesNoContainer() throws {
        let broken = WorkspaceManager(docker: docker, settings: WorkspaceSettings(prefix: prefix, image: "devenv-missing:\(prefix)"))
        XCTAssertThrowsError(try broken.ensure(try identity("erin"))) { error in
            XCTAssertTrue("\(error)".contains("devenv-missing:\(prefix)"), "\(error)")
        }
        XCTAssertEqual(try docker.listContainers(labels: ["devenv.instance=\(prefix)"]).count, 0)
    }

    /// Reading, replacing and removing home volumes through the archive API.
    func testHomeStatesReplacementAndRemoval() throws {
        let dave = try UserName("dave")
        XCTAssertFalse(try manager.readHome(of: dave) { _ in XCTFail("no volume, nothing to read") })
        XCTAssertFalse(try manager.homeHasData(dave))
        try docker.createVolume(name: "\(prefix)-dave-home", labels: manager.settings.labels(for: dave))
        XCTAssertFalse(try manager.homeHasData(dave), "an empty volume holds no data")

        let tree = directory.appendingPathComponent("tree")
        XCTAssertEqual(try runShell("mkdir -p \(tree.path)/dave/sub && echo hi > \(tree.path)/dave/sub/f "
                                    + "&& chown -R 2345:2345 \(tree.path)/dave").status, 0)
        let tar = try runProgram("/usr/bin/tar", ["--numeric-owner", "-C", tree.path, "-cf", "-", "dave"]).stdout
        var offset = 0
        var sawHelper = false
        try manager.replaceHome(of: dave, beforeWrite: {
            // While the home is written, the user's container name is taken by a helper that
            // cannot start: a login (another process, its own manager) fails instead of
            // running a workspace on a half-written home.
            let details = try docker.inspectContainer("\(prefix)-dave")
            sawHelper = details.config.labels?[WorkspaceManager.helperLabel] != nil
            let gateway = WorkspaceManager(docker: docker, settings: manager.settings)
            let identity = WorkspaceIdentity(user: dave, uid: 2345, gatewayPublicKey: gatewayKey.publicKey.line,
                                             hostKeyPEM: try PrivateKey.generate(.ed25519).pemText)
            XCTAssertThrowsError(try gateway.ensure(identity)) {
                XCTAssertTrue("\($0)".contains("devenv-gw-helper-for-a-backup-or-restore"), "\($0)")
            }
            XCTAssertEqual(try docker.inspectContainer("\(prefix)-dave").state.status, "created", "never started")
        }, from: { buffer in
            let count = min(buffer.count, tar.count - offset)
            tar.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: offset..<offset + count)
            offset += count
            return count
        })
        XCTAssertTrue(sawHelper)
        XCTAssertThrowsError(try docker.inspectContainer("\(prefix)-dave"), "the helper is gone")
        XCTAssertTrue(try manager.homeHasData(dave))
        var read = Data()
        XCTAssertTrue(try manager.readHome(of: dave) { read.append(contentsOf: $0) })
        let file = directory.appendingPathComponent("read.tar")
        try read.write(to: file)
        XCTAssertEqual(try runProgram("/usr/bin/tar", ["--numeric-owner", "-tvf", file.path]).output
                        .split(separator: "\n").map { $0.split(separator: " ")[1] + " " + $0.split(separator: " ").last! },
                       ["2345/2345 dave/", "2345/2345 dave/sub/", "2345/2345 dave/sub/f"])

        XCTAssertTrue(try manager.removeHomeVolume(of: dave))
        XCTAssertFalse(try manager.removeHomeVolume(of: dave))
        XCTAssertEqual(try docker.listContainers(labels: ["devenv.instance=\(prefix)"]).count, 0, "no helper left")
    }
}

/// Collects results from concurrent work.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<WorkspaceEndpoint, Error>] = []
    func append(_ value: Result<WorkspaceEndpoint, Error>) { lock.lock(); storage.append(value); lock.unlock() }
    var values: [Result<WorkspaceEndpoint, Error>] { lock.lock(); defer { lock.unlock() }; return storage }
}
