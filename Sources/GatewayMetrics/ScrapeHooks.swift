import Foundation

/// Work done just before each scrape: gauges that are cheaper to read from their source
/// when asked (open connections, process figures) than to keep up to date on every change.
///
/// A hook runs on the metrics listener's thread and must return quickly: it may take a
/// short lock, never make a blocking call.
public enum ScrapeHooks {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var hooks: [@Sendable () -> Void] = []

    /// Adds `hook` to those run before every scrape, for the life of the process.
    public static func add(_ hook: @escaping @Sendable () -> Void) {
        lock.lock()
        hooks.append(hook)
        lock.unlock()
    }

    /// Runs every hook, in the order they were added.
    public static func run() {
        lock.lock()
        let current = hooks
        lock.unlock()
        current.forEach { $0() }
    }
}
