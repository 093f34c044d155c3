import DockerEngine
import Foundation
import TestSupport
import XCTest

/// The three-node test swarm that `scripts/swarm-cluster.sh up` runs. A missing cluster
/// fails the test: CI brings it up before these tests, so skipping would hide a break.
enum TestSwarm {
    static let runDirectory = ProcessInfo.processInfo.environment["DEVENV_SWARM_RUN"] ?? "/run/devenv-swarm"
    static let nodes = ["devenv-swarm-node1", "devenv-swarm-node2", "devenv-swarm-node3"]
    static let network = "devenv-ws"
    /// This host's address on the nodes' network (scripts/swarm-cluster.sh): where the
    /// gateway's connections to workspaces come from.
    static let hostAddress = "10.213.0.1"

    static func endpoint(_ node: String) -> String { "unix://\(runDirectory)/\(node)/docker.sock" }
    static var manager: DockerClient { DockerClient(host: endpoint(nodes[0])) }
    static func engine(_ node: String) -> DockerClient { DockerClient(host: endpoint(node)) }

    /// The config file that puts a gateway on the test swarm, with the default egress
    /// rules and the node guard from this build's gateway image.
    /// With `overTLS`, every engine is its `tcp://` address with the test CA's client
    /// certificate (scripts/swarm-cluster.sh), as production nodes would be reached.
    static func config(prefix: String, stateDirectory: String, overTLS: Bool = false) throws -> String {
        let endpoint = overTLS ? tlsEndpoint : self.endpoint
        return """
        backend = "swarm"
        swarm-manager = "\(endpoint(nodes[0]))"
        swarm-network = "\(network)"
        swarm-node-engines = [\(nodes.map { "\"\($0)=\(endpoint($0))\"" }.joined(separator: ", "))]
        swarm-node-guard = "\(try nodeGuardImage())"
        audit = "stderr"
        \(overTLS ? "docker-tls-dir = \"\(runDirectory)/tls/client\"" : "")

        """
    }

    /// A node's engine over TCP with TLS (its address on the nodes' network).
    static func tlsEndpoint(_ node: String) -> String {
        let number = Int(node.suffix(1)) ?? 0
        return "tcp://10.213.0.\(10 + number):2376"
    }

    private static let imageLock = NSLock()
    nonisolated(unsafe) private static var loadedImage: String?

    /// The gateway image of this build (`GatewayImage`), loaded into every node's engine
    /// once per test process: the node guard runs it.
    static func nodeGuardImage() throws -> String {
        try imageLock.withLock {
            if let loadedImage { return loadedImage }
            let image = try GatewayImage.ensureBuilt()
            let wanted = try runProgram("/usr/bin/docker", ["image", "inspect", "-f", "{{.Id}}", image]).output
            for node in nodes {
                let present = try runProgram("/usr/bin/docker", ["-H", endpoint(node), "image", "inspect", "-f", "{{.Id}}", image])
                if present.status == 0 && present.output == wanted { continue }
                let loaded = try runShell("docker save \(shellQuoted(image)) | docker exec -i \(node) docker load -q")
                guard loaded.status == 0 else {
                    throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "loading \(image) into \(node): \(loaded.stderr)"])
                }
            }
            loadedImage = image
            return image
        }
    }

    /// Removes every service, secret and volume of the instance `prefix` from the swarm.
    static func removeInstance(_ prefix: String) {
        let label = "devenv.instance=\(prefix)"
        let manager = self.manager
        for service in (try? manager.listServices(labels: [label])) ?? [] { try? manager.removeService(service.id) }
        // A removed service's containers go a moment later; their volumes only after them.
        let deadline = Date().addingTimeInterval(30)
        for node in nodes {
            let engine = engine(node)
            while Date() < deadline, !((try? engine.listContainers(labels: [label])) ?? []).isEmpty { usleep(200_000) }
            for container in (try? engine.listContainers(labels: [label])) ?? [] { try? engine.removeContainer(container.id, force: true) }
            for volume in (try? engine.listVolumes(labels: [label])) ?? [] { try? engine.removeVolume(volume.name) }
        }
        for name in ((try? manager.listServices(labels: [label])) ?? []).map(\.name) { try? manager.removeService(name) }
        for id in secrets(prefix) { try? manager.removeSecret(id) }
        removeNodeGuards(prefix)
    }

    /// The instance's node guards and the chains they left (a guard leaves its rules when
    /// it stops, on purpose).
    static func removeNodeGuards(_ prefix: String) {
        for node in nodes {
            try? engine(node).removeContainer("\(prefix)-node-guard", force: true)
            _ = try? runShell("""
                for chain in DEVENV-IN-\(prefix) DEVENV-EG-\(prefix); do
                  for entry in INPUT DOCKER-USER; do
                    docker exec \(node) iptables -w 5 -S $entry | grep -- "-j $chain\\$" | sed 's/^-A //' \\
                      | while read -r rule; do docker exec \(node) iptables -w 5 -D $rule; done
                  done
                  docker exec \(node) iptables -w 5 -F $chain 2>/dev/null && docker exec \(node) iptables -w 5 -X $chain
                done
                """)
        }
    }

    private static func secrets(_ prefix: String) -> [String] {
        struct Secret: Decodable { let ID: String; struct Spec: Decodable { let Labels: [String: String]? }; let Spec: Spec }
        guard let data = try? runProgram("/usr/bin/curl", ["-s", "--unix-socket", "\(runDirectory)/\(nodes[0])/docker.sock",
                                                         "http://localhost/v1.41/secrets"]).stdout,
              let secrets = try? JSONDecoder().decode([Secret].self, from: data) else { return [] }
        return secrets.filter { $0.Spec.Labels?["devenv.instance"] == prefix }.map(\.ID)
    }
}

/// A gateway process on the test swarm (backend = "swarm"), with its config file named in
/// the environment so that its admin commands use the swarm too.
class SwarmGatewayTestCase: GatewayTestCase {
    var configPath: String!
    /// Images a test built on a node (node, tag), removed once the instance's services are gone.
    var nodeImages: [(node: String, tag: String)] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        do {
            _ = try TestSwarm.manager.listNodes()
        } catch {
            XCTFail("no test swarm (\(error)); run scripts/swarm-cluster.sh up")
            throw error
        }
        configPath = gateway.stateDirectory.appendingPathComponent("config.toml").path
        try TestSwarm.config(prefix: gateway.prefix, stateDirectory: gateway.stateDirectory.path)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        setenv("DEVENV_GW_CONFIG", configPath, 1)
    }

    override func tearDown() {
        super.tearDown()
        TestSwarm.removeInstance(gateway?.prefix ?? "")
        for (node, tag) in nodeImages { _ = try? runShell("docker -H \(TestSwarm.endpoint(node)) rmi -f \(tag)") }
        unsetenv("DEVENV_GW_CONFIG")
    }

    /// Registers each user, starts the gateway and logs each in once, in order (a first
    /// login places the workspace); returns their identities.
    func registerStartAndLogIn(_ users: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [SSHClientIdentity] {
        let identities = try users.map { try register($0) }
        try gateway.start()
        for (user, identity) in zip(users, identities) {
            XCTAssertEqual(try identity.ssh(user, port: gateway.port, "true").status, 0, file: file, line: line)
        }
        return identities
    }

    /// Each user's node and state, from `devenv-gw ps --json`.
    func workspaces(file: StaticString = #filePath, line: UInt = #line) throws -> [String: (node: String?, state: String)] {
        struct Row: Decodable { let user: String; let node: String?; let state: String }
        let ps = try gateway.admin(["ps", "--json"])
        XCTAssertEqual(ps.status, 0, ps.stderr, file: file, line: line)
        let rows = try JSONDecoder().decode([Row].self, from: ps.stdout)
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.user, ($0.node, $0.state)) })
    }

    /// The address of the user's running workspace on the workspace network, from its node.
    func address(of user: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let node = try workspaces()[user]?.node else {
            XCTFail("\(user) has no node", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        let containers = try TestSwarm.engine(node).listContainers(labels: ["com.docker.swarm.service.name=\(gateway.prefix)-\(user)"])
        for summary in containers where summary.state == "running" {
            if let address = try TestSwarm.engine(node).inspectContainer(summary.id).ipAddress(on: TestSwarm.network) {
                return address
            }
        }
        XCTFail("no running container of \(user) on \(node)", file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
}
