import Foundation

/// Decides when an authenticated connection looks up again whether its login still stands.
///
/// `deluser` and `keys remove` run in other processes (often through `docker exec`), so the
/// registry is the only thing they share with `serve`. Reading its revocation count is one
/// small query; the login itself is looked up only when that count moved, so idle
/// connections cost next to nothing between revocations.
struct RevocationWatch {
    /// How often the count is read.
    let interval: TimeInterval
    private var nextReading: Date
    /// The count at the last reading; nil before the first (a removal may have happened
    /// between the login and it) and after a failed lookup, so the next reading is due.
    private var seenCount: Int?

    init(interval: TimeInterval, now: Date = Date()) {
        self.interval = interval
        nextReading = now.addingTimeInterval(interval)
    }

    /// True when the login must be looked up now: `interval` has passed since the last
    /// reading, and `count` (read only then) moved since the one before, or cannot be read.
    mutating func isDue(now: Date = Date(), count: () throws -> Int) -> Bool {
        guard now >= nextReading else { return false }
        nextReading = now.addingTimeInterval(interval)
        let current = try? count()
        defer { seenCount = current }
        return current == nil || current != seenCount
    }

    /// The lookup could not be done: the next reading is due whatever the count says.
    mutating func lookupFailed() {
        seenCount = nil
    }
}

/// The registry's revocation count, read at most once per `maxAge` for every connection of
/// the gateway: each connection's watch asks every two seconds, and one query answers them all.
final class SharedRevocationCount: @unchecked Sendable {
    private let maxAge: TimeInterval
    private let read: () throws -> Int
    private let lock = NSLock()
    private var reading: (count: Int, at: Date)?

    init(maxAge: TimeInterval, read: @escaping () throws -> Int) {
        self.maxAge = maxAge
        self.read = read
    }

    func current(now: Date = Date()) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        if let reading, now.timeIntervalSince(reading.at) < maxAge { return reading.count }
        let count = try read()
        reading = (count, now)
        return count
    }
}
