import Foundation
import XCTest

/// One scrape of a gateway's `/metrics`, fetched with curl and parsed by the Prometheus
/// text parser of `prometheus-client` (Debian's python3-prometheus-client), as a scraper
/// would read it.
public struct MetricsScrape {
    /// Every sample, keyed `name{label="value",…}` with labels sorted (`name` alone without).
    public let samples: [String: Double]
    /// Every metric family the parser saw, with its type (`counter`, `gauge`, `histogram`).
    public let families: [String: String]
    /// The text as served.
    public let text: String

    /// Scrapes `url` with curl; fails (throws) when curl or the parser does.
    public init(url: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fetched = try runProgram("/usr/bin/curl", ["-sS", "--fail", "--max-time", "10", url])
        guard fetched.status == 0 else {
            XCTFail("curl \(url): \(fetched.stderr)", file: file, line: line)
            throw CocoaError(.fileReadUnknown)
        }
        text = fetched.output
        let parsed = try runProgram("/usr/bin/python3", ["-c", Self.parser], input: fetched.stdout)
        guard parsed.status == 0,
              let object = try? JSONSerialization.jsonObject(with: parsed.stdout) as? [String: [String: Any]] else {
            XCTFail("prometheus_client could not parse the scrape: \(parsed.stderr)\n\(text)", file: file, line: line)
            throw CocoaError(.fileReadCorruptFile)
        }
        samples = (object["samples"] ?? [:]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
        families = (object["families"] ?? [:]).compactMapValues { $0 as? String }
    }

    /// The sample's value, or 0 when the series does not exist.
    public subscript(_ key: String) -> Double { samples[key] ?? 0 }

    /// Python reading the exposition text on stdin, writing samples and families as JSON.
    static let parser = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        samples, families = {}, {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            families[family.name] = family.type
            for sample in family.samples:
                labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(sample.labels.items()))
                samples[sample.name + ("{%s}" % labels if labels else "")] = sample.value
        json.dump({"samples": samples, "families": families}, sys.stdout)
        """
}
