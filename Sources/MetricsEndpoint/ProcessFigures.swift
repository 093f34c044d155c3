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
        if let bytes = memoryLimit() { GatewayMetric.memoryLimit.gauge().record(bytes) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            GatewayMetric.maxFileDescriptors.gauge().record(Double(limit.rlim_cur))
        }
    }

    /// The cgroup's memory limit (v2, then v1), else the host's memory: what "near the
    /// limit" means for the gateway's resident memory.
    static func memoryLimit() -> Double? {
        let host = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { Double($0.split(separator: " ").dropFirst().first ?? "") }
            .map { $0 * 1024 }
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let bytes = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            // v1 reports "no limit" as a huge number.
            if let host, bytes >= host { return host }
            return bytes
        }
        return host
    }
}
