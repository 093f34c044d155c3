import Foundation
import UserNames

/// Counts the gateway's connections, in total and per authenticated user, and enforces
/// `max-connections` and `max-connections-per-user`.
///
/// A connection takes a total slot when it is accepted and a user slot once it has
/// authenticated; each is given back exactly once, when the connection ends.
final class ConnectionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    private var perUser: [UserName: Int] = [:]
    let maxTotal: Int
    let maxPerUser: Int

    init(maxTotal: Int, maxPerUser: Int) {
        self.maxTotal = max(1, maxTotal)
        self.maxPerUser = max(1, maxPerUser)
    }

    /// The connections open now.
    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    /// The connections open now, and how many of them have logged in (hold a user slot).
    var counts: (total: Int, authenticated: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (total, perUser.values.reduce(0, +))
    }

    /// Takes a slot for a new connection; false at `maxTotal`.
    func admit() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard total < maxTotal else { return false }
        total += 1
        return true
    }

    /// Gives back a slot taken by `admit`.
    func release() {
        lock.lock()
        total -= 1
        lock.unlock()
    }

    /// Takes a slot of `user`'s; false when they already hold `maxPerUser` connections.
    func claim(_ user: UserName) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let held = perUser[user, default: 0]
        guard held < maxPerUser else { return false }
        perUser[user] = held + 1
        return true
    }

    /// Gives back a slot taken by `claim`.
    func unclaim(_ user: UserName) {
        lock.lock()
        defer { lock.unlock() }
        let held = perUser[user, default: 0] - 1
        perUser[user] = held > 0 ? held : nil
    }
}
