import Foundation

/// How long the accept thread waits after accept failed for lack of descriptors or memory:
/// 100 ms, doubling to at most 1 s, and back to 100 ms after the next success.
struct AcceptBackoff {
    static let first: TimeInterval = 0.1
    static let longest: TimeInterval = 1

    private var current: TimeInterval?

    /// The wait before the next attempt.
    mutating func next() -> TimeInterval {
        let delay = current.map { min($0 * 2, Self.longest) } ?? Self.first
        current = delay
        return delay
    }

    /// Called after a successful accept.
    mutating func reset() {
        current = nil
    }
}
