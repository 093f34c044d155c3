import Egress
import XCTest

/// The `egress-deny` list and the chain it becomes, without touching the firewall.
final class EgressPolicyTests: XCTestCase {
    func testParsingAndExpansion() throws {
        XCTAssertEqual(EgressPolicy.default.description, "host,169.254.0.0/16")
        XCTAssertTrue(try EgressPolicy(parsing: "none").isOff)
        XCTAssertTrue(try EgressPolicy(parsing: [String]()).isOff)
        let policy = try EgressPolicy(parsing: "host, 10.1.2.3/8,192.168.0.9")
        XCTAssertEqual(policy.description, "host,10.0.0.0/8,192.168.0.9/32")
        let hostAddresses: [UInt32] = [0x0a01_0203, 0xac11_0001, 0xac11_0001]
        XCTAssertEqual(policy.deniedNetworks(hostAddresses: hostAddresses).map(\.description),
                       ["10.1.2.3/32", "172.17.0.1/32", "10.0.0.0/8", "192.168.0.9/32"])
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.0/33", "a.b.c.d", "10.0.0.0/", "host,none", " ", "::1"] {
            XCTAssertThrowsError(try EgressPolicy(parsing: bad), bad)
        }
    }

    func testChainRulesLetRepliesThroughFirst() {
        let firewall = EgressFirewall(iptables: IPTables(path: "/nonexistent"), prefix: "abcdefghijklmnop")
        XCTAssertEqual(firewall.chain, "DEVENV-EG-abcdefghijklmnop")
        XCTAssertLessThanOrEqual(firewall.chain.count, 28, "iptables' limit for chain names")
        XCTAssertEqual(firewall.chainRules(denying: [try! IPv4Network(parsing: "169.254.0.0/16")]), [
            "-N DEVENV-EG-abcdefghijklmnop",
            "-A DEVENV-EG-abcdefghijklmnop -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            "-A DEVENV-EG-abcdefghijklmnop -d 169.254.0.0/16 -j DROP",
        ])
    }
}
