import Foundation

/// The process's file descriptors: RLIMIT_NOFILE and how many are open.
///
/// Every connection holds at least two descriptors (the client's socket and the one to its
/// workspace) and briefly a third (an Engine API call), so 500 users need more than the
/// usual soft limit of 1024. The gateway raises the soft limit to the hard limit at start
/// and refuses new connections while fewer than `reserve` descriptors are left, so the
/// connections it already has can still reach their workspaces and accept never fails.
public enum FileDescriptorLimit {
    /// Raises the soft limit to the hard limit. Returns the limit in force afterwards and
    /// the one before, or nil when the limits cannot be read.
    public static func raiseSoftLimitToHard() -> (limit: UInt64, previous: UInt64)? {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return nil }
        let previous = UInt64(limits.rlim_cur)
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limits = raised }
        }
        return (UInt64(limits.rlim_cur), previous)
    }

    /// The soft limit now (read each time: an admin may change it with `prlimit --pid`).
    static var softLimit: Int {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return Int.max }
        return limits.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limits.rlim_cur)
    }

    /// Descriptors kept free for the connections already open: 64, or a quarter of a very
    /// low limit.
    static func reserve(for limit: Int) -> Int {
        min(64, limit / 4)
    }

    /// The number of descriptors open in this process, from /proc/self/fd (the count
    /// includes the directory's own descriptor, which is closed again at once).
    static func openCount() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != 0x2e { count += 1 }  // not "." or ".."
        }
        return count
    }

    /// The open count and the soft limit when fewer than `reserve` descriptors are left,
    /// else nil.
    static func exhaustion() -> (open: Int, limit: Int)? {
        let limit = softLimit
        guard limit != Int.max, let open = openCount(), open > limit - reserve(for: limit) else { return nil }
        return (open, limit)
    }
}
