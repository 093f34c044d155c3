import DockerEngine
import Foundation
import TestSupport
import XCTest

/// The egress rules `serve` installs, tested from inside a real workspace with real
/// listeners: on the host's bridge address, on 169.254.169.254 (added to `lo`, as these
/// machines have no dummy interfaces) and, outside both, in a network namespace of the
/// test's own behind a veth pair.
final class EgressFirewallTests: GatewayTestCase {
    static let metadataAddress = "169.254.169.254"
    var alice: SSHClientIdentity!
    var namespace: String!
    var hostSide: String!
    /// The listener address inside the namespace.
    var outsideAddress: String!
    var listeners: [Int32] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        let tag = String(UInt32.random(in: 0...0xffff), radix: 16)
        let namespace = "devenv-eg-\(tag)", hostSide = "veg\(tag)", peer = "veg\(tag)n"
        let subnet = "10.\(200 + Int.random(in: 0...50)).\(Int.random(in: 0...255))"
        let outsideAddress = "\(subnet).2"
        (self.namespace, self.hostSide, self.outsideAddress) = (namespace, hostSide, outsideAddress)
        // Left over from an interrupted run, the address would make `ip addr add` fail.
        _ = try? runProgram("/usr/sbin/ip", ["addr", "del", "\(Self.metadataAddress)/32", "dev", "lo"])
        for command in [["ip", "addr", "add", "\(Self.metadataAddress)/32", "dev", "lo"],
                        ["ip", "netns", "add", namespace],
                        ["ip", "link", "add", hostSide, "type", "veth", "peer", "name", peer],
                        ["ip", "link", "set", peer, "netns", namespace],
                        ["ip", "addr", "add", "\(subnet).1/30", "dev", hostSide],
                        ["ip", "link", "set", hostSide, "up"],
                        ["ip", "netns", "exec", namespace, "ip", "addr", "add", "\(outsideAddress)/30", "dev", peer],
                        ["ip", "netns", "exec", namespace, "ip", "link", "set", peer, "up"],
                        ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"]] {
            let result = try runProgram("/usr/sbin/ip", Array(command.dropFirst()))
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
        }
    }

    override func tearDown() {
        listeners.forEach { close($0) }
        _ = try? runProgram("/usr/sbin/ip", ["addr", "del", "\(Self.metadataAddress)/32", "dev", "lo"])
        if let hostSide { _ = try? runProgram("/usr/sbin/ip", ["link", "del", hostSide]) }
        if let namespace { _ = try? runProgram("/usr/sbin/ip", ["netns", "del", namespace]) }
        super.tearDown()
    }

    /// By default the host (its address on the workspace bridge) and 169.254.169.254 are
    /// out of reach, an address elsewhere is not, and the gateway itself still reaches the
    /// workspace. A restart installs the rules again without a second copy.
    func testWorkspaceCannotReachTheHostOrMetadataButReachesElsewhere() throws {
        try gateway.start()
        let (bridgeAddress, hostPort, metadataPort, outsidePort) = try startListeners()

        XCTAssertFalse(try connects(to: bridgeAddress, hostPort), "the host's bridge address is out of reach")
        XCTAssertFalse(try connects(to: Self.metadataAddress, metadataPort), "169.254.169.254 is out of reach")
        XCTAssertTrue(try connects(to: outsideAddress, outsidePort), "an address outside both is reached")

        let rules = try firewallRules()
        XCTAssertEqual(rules.jumps, 2, "one jump from INPUT and one from DOCKER-USER: \(rules.listing)")
        gateway.stop()
        try gateway.start()
        // The host's addresses may change meanwhile (other tests make networks), so the
        // check is for copies rather than for the same listing.
        let again = try firewallRules()
        XCTAssertEqual(again.jumps, 2, again.listing)
        let lines = again.listing.split(separator: "\n")
        XCTAssertEqual(Set(lines).count, lines.count, "no rule twice: \(again.listing)")
        XCTAssertFalse(try connects(to: Self.metadataAddress, metadataPort))
    }

    /// `egress-deny = []` (here its flag, none) lets workspaces reach the host again.
    func testEgressDenyNoneTurnsTheRulesOff() throws {
        gateway.extraArguments = ["--egress-deny", "none"]
        try gateway.start()
        let (bridgeAddress, hostPort, metadataPort, _) = try startListeners()
        XCTAssertTrue(try connects(to: bridgeAddress, hostPort))
        XCTAssertTrue(try connects(to: Self.metadataAddress, metadataPort))
    }

    // MARK: - Helpers

    /// Logs alice in (creating her workspace and the network), then listens on the host
    /// (all addresses), on 169.254.169.254 and in the namespace. Returns the host's address
    /// on the workspace bridge and the ports.
    private func startListeners() throws -> (String, Int, Int, Int) {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)
        let inspected = try runProgram("/usr/bin/docker", ["network", "inspect", gateway.prefix,
                                                           "-f", "{{(index .IPAM.Config 0).Gateway}}"])
        let bridgeAddress = inspected.output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(bridgeAddress.isEmpty, inspected.stderr)
        let hostPort = try listen(on: "0.0.0.0")
        let metadataPort = try listen(on: Self.metadataAddress)
        let outsidePort = try GatewayProcess.freePort()
        try startBackground("/usr/sbin/ip", ["netns", "exec", namespace, "python3", "-c", """
            import socket, time
            s = socket.socket(); s.bind(("\(outsideAddress!)", \(outsidePort))); s.listen(16); time.sleep(600)
            """])
        // Wait until the namespace's listener is up.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let probe = try runProgram("/usr/sbin/ip", ["netns", "exec", namespace, "python3", "-c",
                                                        "import socket; socket.create_connection(('\(outsideAddress!)', \(outsidePort)), 1)"])
            if probe.status == 0 { break }
            usleep(100_000)
        }
        return (bridgeAddress, hostPort, metadataPort, outsidePort)
    }

    private func listen(on address: String) throws -> Int {
        let listener = try ListeningSocket(on: address)
        listeners.append(listener.fd)
        return listener.port
    }

    /// Whether a TCP connect from alice's workspace succeeds within 3 s.
    private func connects(to host: String, _ port: Int) throws -> Bool {
        let result = try alice.ssh("alice", port: gateway.port,
                                   "python3 -c 'import socket; socket.create_connection((\"\(host)\", \(port)), 3)'")
        XCTAssertTrue([0, 1].contains(result.status), "ssh itself failed: \(result.stderr)")
        return result.status == 0
    }

    /// This instance's chain and the jumps to it, as iptables lists them.
    private func firewallRules() throws -> (listing: String, jumps: Int) {
        let chain = "DEVENV-EG-\(gateway.prefix)"
        var listing = try runProgram("/usr/sbin/iptables", ["-w", "5", "-S", chain]).output
        var jumps = 0
        for entry in ["INPUT", "DOCKER-USER"] {
            let lines = try runProgram("/usr/sbin/iptables", ["-w", "5", "-S", entry]).output
                .split(separator: "\n").filter { $0.hasSuffix("-j \(chain)") }
            jumps += lines.count
            listing += lines.joined(separator: "\n") + "\n"
        }
        return (listing, jumps)
    }
}
