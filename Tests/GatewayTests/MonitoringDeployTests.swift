import Foundation
import TestSupport
import XCTest

/// deploy/grafana/devenv-gw.json and deploy/prometheus/alerts.yml: valid for their tools,
/// and every metric they query exists in a real gateway's scrape and in the README.
final class MonitoringDeployTests: GatewayTestCase {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    var alerts: String { repository.appendingPathComponent("deploy/prometheus/alerts.yml").path }
    var dashboard: String { repository.appendingPathComponent("deploy/grafana/devenv-gw.json").path }

    func testAlertRulesPassPromtool() throws {
        let checked = try runProgram("/usr/bin/promtool", ["check", "rules", alerts])
        XCTAssertEqual(checked.status, 0, checked.stdout.isEmpty ? checked.stderr : checked.output + checked.stderr)
        XCTAssertTrue(checked.output.contains("SUCCESS: 6 rules found"), checked.output)
        // The sample Prometheus config that loads them, with the job name they expect.
        let config = repository.appendingPathComponent("deploy/prometheus/prometheus.yml").path
        let configChecked = try runProgram("/usr/bin/promtool", ["check", "config", config])
        XCTAssertEqual(configChecked.status, 0, configChecked.output + configChecked.stderr)
    }

    /// Grafana 10+ imports a dashboard of schema 36 or later with panels that each query the
    /// datasource variable; every query is PromQL that promtool parses (checked as a
    /// recording rule, with the dashboard's variables filled in).
    func testDashboardIsValidGrafanaJSONWithValidQueries() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboard))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertGreaterThanOrEqual(json["schemaVersion"] as? Int ?? 0, 36)
        XCTAssertEqual(json["uid"] as? String, "devenv-gw")
        let panels = try XCTUnwrap(json["panels"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(panels.count, 10)
        var expressions: [String] = []
        for panel in panels {
            XCTAssertNotNil(panel["gridPos"] as? [String: Int], "\(panel["title"] ?? "?")")
            XCTAssertEqual((panel["datasource"] as? [String: String])?["uid"], "${datasource}")
            let targets = try XCTUnwrap(panel["targets"] as? [[String: Any]])
            XCTAssertFalse(targets.isEmpty)
            expressions += targets.compactMap { $0["expr"] as? String }
        }
        let titles = panels.compactMap { $0["title"] as? String }.joined(separator: "|")
        for wanted in ["Logins per minute", "Refusals", "Sessions", "cold vs warm", "Workspaces", "Bytes", "memory"] {
            XCTAssertTrue(titles.contains(wanted), "no panel for \(wanted): \(titles)")
        }
        let rules = "groups:\n  - name: dashboard\n    rules:\n" + expressions.enumerated().map { index, expression in
            let filled = expression.replacingOccurrences(of: "$job", with: ".*").replacingOccurrences(of: "$instance", with: ".*")
            return "      - record: dashboard_query_\(index)\n        expr: '\(filled.replacingOccurrences(of: "'", with: "''"))'\n"
        }.joined()
        let file = keys.appendingPathComponent("dashboard-rules.yml")
        try rules.write(to: file, atomically: true, encoding: .utf8)
        let checked = try runProgram("/usr/bin/promtool", ["check", "rules", file.path])
        XCTAssertEqual(checked.status, 0, checked.output + checked.stderr)
    }

    func testEveryMetricTheyQueryIsScrapedAndDocumented() throws {
        let metricsPort = try GatewayProcess.freePort()
        gateway.extraArguments = ["--metrics-listen", "127.0.0.1:\(metricsPort)"]
        try gateway.start()
        let scrape = try MetricsScrape(url: "http://127.0.0.1:\(metricsPort)/metrics")
        let scraped = Set(scrape.samples.keys.map { String($0.prefix { $0 != "{" }) })
        let text = try String(contentsOfFile: dashboard, encoding: .utf8) + String(contentsOfFile: alerts, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "devenv_gw_[a-z_]+")
        let referenced = Set(pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        })
        XCTAssertGreaterThan(referenced.count, 15)
        for name in referenced.sorted() {
            XCTAssertTrue(scraped.contains(name), "\(name) is queried but not in a scrape")
        }
        // The README explains every metric the gateway exports.
        let readme = try String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)
        for name in scraped.sorted() where name.hasPrefix("devenv_gw_") {
            let family = name.replacingOccurrences(of: "_bucket", with: "").replacingOccurrences(of: "_sum", with: "")
                .replacingOccurrences(of: "_count", with: "")
            XCTAssertTrue(readme.contains("`\(family)"), "README does not explain \(family)")
        }
    }
}
