import DockerEngine
import Foundation
import TestSupport
import XCTest

/// The node guard (`devenv-gw node-guard`, run by `serve` on every node): workspaces on a
/// swarm node cannot open connections to the gateway's host, to any node, or to cloud
/// metadata, yet reach other addresses; a flushed chain comes back; a guard that cannot
/// run stops the gateway from starting.
final class SwarmNodeFirewallTests: SwarmGatewayTestCase {
    /// ECS's task metadata address, on the host's `lo` for the test (EgressFirewallTests
    /// uses 169.254.169.254 on the same host, perhaps at the same time).
    static let metadataAddress = "169.254.170.2"
    var listeners: [Int32] = []
    var elsewhere: String?

    override func tearDown() {
        listeners.forEach { close($0) }
        _ = try? runProgram("/usr/sbin/ip", ["addr", "del", "\(Self.metadataAddress)/32", "dev", "lo"])
        if let elsewhere { _ = try? runProgram("/usr/bin/docker", ["rm", "-f", elsewhere]) }
        super.tearDown()
    }

    func testWorkspacesReachNeitherTheGatewayHostNorNodesNorMetadataButReachElsewhere() throws {
        // Added before the gateway starts: an address the host gains later changes the guards'
        // plan, and the gateway's next check replaces them (repairing the chain flushed below).
        _ = try? runProgram("/usr/sbin/ip", ["addr", "del", "\(Self.metadataAddress)/32", "dev", "lo"])
        XCTAssertEqual(try runProgram("/usr/sbin/ip", ["addr", "add", "\(Self.metadataAddress)/32", "dev", "lo"]).status, 0)
        let users = ["ann", "ben"]
        let identities = try registerStartAndLogIn(users)
        let placed = try workspaces()
        let annNode = try XCTUnwrap(placed["ann"]?.node)
        XCTAssertNotEqual(placed["ben"]?.node, annNode, "two first logins go to two nodes")
        let nodes = Dictionary(uniqueKeysWithValues: try TestSwarm.manager.listNodes().map { ($0.hostname, $0.address ?? "") })
        let otherNode = try XCTUnwrap(nodes.keys.sorted().first { $0 != annNode })

        // The gateway host: a listener on every address of this host, reached at its address
        // on the nodes' network, and a metadata address on its lo.
        let host = try ListeningSocket(on: "0.0.0.0")
        listeners.append(host.fd)
        let gatewayHost = TestSwarm.hostAddress
        // Elsewhere: a container of this host's engine on the nodes' network.
        let started = try runProgram("/usr/bin/docker", [
            "run", "-d", "--rm", "--network", "devenv-swarm", "--entrypoint", "python3", "--label", "devenv.instance=\(gateway.prefix)",
            DockerTestEnvironment.workspaceImage, "-c",
            "import socket, time\ns = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(16); time.sleep(600)"])
        XCTAssertEqual(started.status, 0, started.stderr)
        elsewhere = started.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let elsewhereAddress = try runProgram("/usr/bin/docker", [
            "inspect", "-f", "{{(index .NetworkSettings.Networks \"devenv-swarm\").IPAddress}}", elsewhere!,
        ]).output.trimmingCharacters(in: .whitespacesAndNewlines)

        let ann = { (address: String, port: Int) in try self.connects(identities[0], "ann", to: address, port) }
        XCTAssertTrue(try ann(elsewhereAddress, 8080), "an address outside the denied ones is reached")
        XCTAssertFalse(try ann(gatewayHost, host.port), "the gateway's host is out of reach: \(rules(on: annNode))")
        XCTAssertFalse(try ann(Self.metadataAddress, host.port), "\(Self.metadataAddress) is out of reach: \(rules(on: annNode))")
        // Every swarm node listens on 7946 (its gossip port), as this host sees.
        for (node, address) in nodes {
            let direct = try runProgram("/usr/bin/python3", ["-c", "import socket; socket.create_connection(('\(address)', 7946), 3)"])
            XCTAssertEqual(direct.status, 0, "\(node) does not listen on 7946: \(direct.stderr)")
        }
        XCTAssertFalse(try ann(try XCTUnwrap(nodes[annNode]), 7946), "ann's own node is out of reach")
        XCTAssertFalse(try ann(try XCTUnwrap(nodes[otherNode]), 7946), "another node is out of reach")

        // The rules make the difference: without the egress chain's rules on ann's node the
        // host answers; the guard puts them back within its interval (10 s).
        // The guard's own 10 s check may land between the flush and the probe: up to three tries.
        var answered = false
        for _ in 1...3 where !answered {
            XCTAssertEqual(try runProgram("/usr/bin/docker", ["exec", annNode, "iptables", "-w", "5", "-F",
                                                              "DEVENV-EG-\(gateway.prefix)"]).status, 0)
            answered = try ann(gatewayHost, host.port)
        }
        XCTAssertTrue(answered, "with the chain flushed the host answers: \(rules(on: annNode))")
        try waitFor("the guard to repair the chain", timeout: 25) { try !ann(gatewayHost, host.port) }
        let guardLog = try runProgram("/usr/bin/docker", ["-H", TestSwarm.endpoint(annNode), "logs", "\(gateway.prefix)-node-guard"])
        // Repaired by the guard's own check, or by the gateway replacing the guard (its plan
        // follows this host's addresses, which other tests' networks change meanwhile).
        XCTAssertTrue(guardLog.output.contains("repaired: DEVENV-EG-\(gateway.prefix)")
                      || gateway.log.contains("node guard on \(annNode) started"), guardLog.output)
    }

    func testAGuardThatCannotRunStopsTheStart() throws {
        let config = try TestSwarm.config(prefix: gateway.prefix, stateDirectory: gateway.stateDirectory.path)
            .replacingOccurrences(of: "swarm-node-guard = \"\(try TestSwarm.nodeGuardImage())\"",
                                  with: "swarm-node-guard = \"devenv-gw:no-such-tag\"")
        XCTAssertTrue(config.contains("no-such-tag"))
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let serve = try runProgram("/usr/bin/timeout", ["60", DevenvBinary.path, "serve"] + gateway.instanceArguments
                                   + ["--listen", "127.0.0.1:\(gateway.port)", "--hostkeys", gateway.hostKeyDirectory])
        XCTAssertEqual(serve.status, 1, "serve must refuse to start: \(serve.stderr)")
        XCTAssertTrue(serve.stderr.contains("devenv-gw:no-such-tag is not on devenv-swarm-node"), serve.stderr)
        XCTAssertFalse(GatewayProcess.answersSSH(port: gateway.port))
    }

    /// The node's rules of every devenv instance, for a failure's message.
    private func rules(on node: String) -> String {
        let listing = (try? runProgram("/usr/bin/docker", ["exec", node, "iptables", "-w", "5", "-S"]).output) ?? ""
        return listing.split(separator: "\n").filter { $0.contains("DEVENV") }.joined(separator: "\n")
    }

    /// Whether a TCP connect from the user's workspace succeeds within 3 s.
    private func connects(_ identity: SSHClientIdentity, _ user: String, to host: String, _ port: Int) throws -> Bool {
        let result = try identity.ssh(user, port: gateway.port,
                                      "python3 -c 'import socket; socket.create_connection((\"\(host)\", \(port)), 3)'")
        XCTAssertTrue([0, 1].contains(result.status), "ssh itself failed: \(result.stderr)")
        return result.status == 0
    }
}
