import Foundation
import GatewayMetrics

/// The gateway process's memory, threads and descriptors, read from /proc at each scrape.
enum ProcessFigures {
    /// Records the current figures in their gauges.
    static func record() {
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            GatewayMetric.residentMemory.gauge().record(pages * pageSize)
        }
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") }),
           let count = Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) {
            GatewayMetric.threads.gauge().record(count)
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // The directory listing holds one descriptor of its own while it runs.
            GatewayMetric.openFileDescriptors.gauge().record(max(0, entries.count - 1))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            GatewayMetric.maxFileDescriptors.gauge().record(Double(limit.rlim_cur))
        }
    }
}
