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
