import Foundation
import TestSupport
import XCTest

/// `devenv-gw status` against a real gateway: from its metrics endpoint when it has one,
/// from the engine, registry and state directory otherwise, and it says which.
final class StatusCommandTests: GatewayTestCase {
    func status() throws -> (json: [String: Any], text: String) {
        let json = try gateway.admin(["status", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let text = try gateway.admin(["status"])
        XCTAssertEqual(text.status, 0, text.stderr)
        return (try XCTUnwrap(JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]), text.output)
    }

    func testStatusReadsTheMetricsEndpointAndOtherwiseTheEngine() throws {
        let alice = try register("alice")
        let metricsPort = try GatewayProcess.freePort()
        gateway.extraArguments = ["--metrics-listen", "127.0.0.1:\(metricsPort)"]
        try gateway.start()
        XCTAssertEqual(try alice.ssh("mallory", port: gateway.port, "true").status, 255)
        try startBackground("/usr/bin/ssh", alice.sshOptions(port: gateway.port) + ["alice@127.0.0.1", "sleep 60"])
        var report: (json: [String: Any], text: String) = ([:], "")
        try waitFor("status shows the session and the refusal") {
            report = try status()
            let sessions = report.json["sessions"] as? [String: Int]
            let refused = report.json["refusedLogins"] as? [[String: Any]]
            return sessions?["exec"] == 1 && refused?.count == 1
        }
        let gatewayInfo = try XCTUnwrap(report.json["gateway"] as? [String: Any])
        XCTAssertEqual(gatewayInfo["running"] as? Bool, true)
        XCTAssertEqual(gatewayInfo["pid"] as? Int, Int(gateway.process?.processIdentifier ?? 0))
        XCTAssertEqual(gatewayInfo["version"] as? String, "0.9.0")
        XCTAssertEqual(gatewayInfo["listen"] as? [String], ["127.0.0.1:\(gateway.port)"])
        XCTAssertEqual(gatewayInfo["metrics"] as? String, "127.0.0.1:\(metricsPort)")
        XCTAssertNotNil(gatewayInfo["uptimeSeconds"] as? Int)
        let connections = try XCTUnwrap(report.json["connections"] as? [String: Int])
        XCTAssertEqual(connections["authenticated"], 1)
        let workspaces = try XCTUnwrap(report.json["workspaces"] as? [String: Any])
        XCTAssertEqual(workspaces["running"] as? Int, 1)
        XCTAssertEqual(workspaces["stopped"] as? Int, 0)
        XCTAssertEqual(workspaces["source"] as? String, "engine")
        let engine = try XCTUnwrap(report.json["engine"] as? [String: Any])
        XCTAssertEqual(engine["reachable"] as? Bool, true)
        XCTAssertFalse((engine["version"] as? String ?? "").isEmpty)
        XCTAssertEqual(report.json["users"] as? Int, 1)
        let refusal = try XCTUnwrap((report.json["refusedLogins"] as? [[String: Any]])?.first)
        XCTAssertEqual(refusal["user"] as? String, "mallory")
        XCTAssertEqual(refusal["address"] as? String, "127.0.0.1")
        XCTAssertEqual(refusal["reason"] as? String, "unknown_key")
        let sources = try XCTUnwrap(report.json["sources"] as? [String]).joined(separator: "; ")
        XCTAssertTrue(sources.contains("metrics endpoint http://127.0.0.1:\(metricsPort)/metrics"), sources)
        XCTAssertTrue(report.text.contains("connections   1 open (1 logged in, 0 before login)"), report.text)
        XCTAssertTrue(report.text.contains("sessions      1 open (exec 1)"), report.text)
        XCTAssertTrue(report.text.contains("mallory  127.0.0.1  unknown_key"), report.text)

        // Without a metrics endpoint: what the engine, registry and state directory tell.
        gateway.stop()
        gateway.extraArguments = []
        try gateway.start()
        let plain = try status()
        XCTAssertNil(plain.json["connections"])
        XCTAssertNil(plain.json["sessions"])
        XCTAssertEqual((plain.json["gateway"] as? [String: Any])?["running"] as? Bool, true)
        XCTAssertEqual((plain.json["workspaces"] as? [String: Any])?["source"] as? String, "engine")
        let plainSources = try XCTUnwrap(plain.json["sources"] as? [String]).joined(separator: "; ")
        XCTAssertFalse(plainSources.contains("metrics"), plainSources)
        XCTAssertTrue(plain.text.contains("connections   unknown (needs the metrics endpoint)"), plain.text)
        XCTAssertTrue(plain.text.contains("refused logins (last 1, newest first)"), plain.text)
    }
}
