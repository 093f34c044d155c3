import Foundation

/// A pending connection as the limiter sees it: something it can push out.
protocol PreAuthEvictable: AnyObject {
    /// Ends the connection (its own thread notices and cleans up).
    func evict()
}

/// Tracks connections that have not authenticated yet and shares their places fairly
/// between sources, so that idle sockets cannot lock registered users out.
///
/// - From `limits.start` pending connections on, a new connection from an address that
///   already has one pending is dropped at random, with OpenSSH's MaxStartups chance:
///   `limits.rate` percent at `start`, rising linearly to 100 at `limits.full`. An address
///   with nothing pending is never dropped: the early drop aims at sources that open many
///   connections at once, not at a user's one login.
/// - A network (/24, /64) holding `maxPerNetwork` pending connections, or a full table,
///   makes room by pushing out the most expendable pending connection, in this order:
///   the busiest network, within it the busiest address, then one that has not finished
///   key exchange, then the oldest. A flood therefore mostly pushes out its own sockets,
///   and a user who has finished key exchange is pushed out only by a source that holds
///   no more than that user's own.
final class PreAuthLimiter: @unchecked Sendable {
    /// What happened to a new connection.
    struct Admission {
        /// The connection's token for `keyExchangeCompleted` and `remove`; nil when it was
        /// dropped and must be closed.
        let token: UInt64?
        /// Where the connection pushed out to make room came from, if one was.
        let evicted: PreAuthSource?
    }

    private struct Entry {
        let id: UInt64
        let source: PreAuthSource
        let connection: PreAuthEvictable
        var keyExchanged = false
    }

    private let lock = NSLock()
    private var entries: [Entry] = []  // oldest first
    private var nextID: UInt64 = 0
    let limits: StartupLimits
    let maxPerNetwork: Int
    /// A uniform random number in 0..<1 (injected by tests).
    private let random: () -> Double

    init(limits: StartupLimits, maxPerNetwork: Int, random: @escaping () -> Double = { Double.random(in: 0..<1) }) {
        self.limits = limits
        self.maxPerNetwork = max(1, maxPerNetwork)
        self.random = random
    }

    /// Decides about a new connection from `source`; `connection` is pushed out if it has
    /// to make room later.
    func admit(from source: PreAuthSource, connection: PreAuthEvictable) -> Admission {
        lock.lock()
        let addressBusy = entries.contains { $0.source.address == source.address }
        if entries.count >= limits.start && addressBusy && random() < dropChance(pending: entries.count) {
            lock.unlock()
            return Admission(token: nil, evicted: nil)
        }
        var victim: Entry?
        if entries.lazy.filter({ $0.source.network == source.network }).count >= maxPerNetwork {
            // A network only ever competes with itself for its own share.
            victim = removeMostExpendable { $0.source.network == source.network }
        } else if entries.count >= limits.full {
            victim = removeMostExpendable { _ in true }
        }
        nextID += 1
        entries.append(Entry(id: nextID, source: source, connection: connection))
        let token = nextID
        lock.unlock()
        // Outside the lock: the connection's own lock is taken there.
        victim?.connection.evict()
        return Admission(token: token, evicted: victim?.source)
    }

    /// Notes that a connection finished key exchange: it is pushed out only after those
    /// that have not, from sources as busy as its own.
    func keyExchangeCompleted(_ token: UInt64) {
        lock.lock()
        if let index = entries.firstIndex(where: { $0.id == token }) { entries[index].keyExchanged = true }
        lock.unlock()
    }

    /// Forgets a connection that authenticated or ended.
    func remove(_ token: UInt64) {
        lock.lock()
        entries.removeAll { $0.id == token }
        lock.unlock()
    }

    /// Connections pending now.
    var pendingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }

    /// OpenSSH's MaxStartups chance of dropping a connection with `pending` ones waiting.
    func dropChance(pending: Int) -> Double {
        if pending < limits.start { return 0 }
        if pending >= limits.full { return 1 }
        let rising = Double(100 - limits.rate) * Double(pending - limits.start) / Double(limits.full - limits.start)
        return (Double(limits.rate) + rising) / 100
    }

    /// Removes and returns the most expendable entry among those `eligible` (lock held).
    private func removeMostExpendable(_ eligible: (Entry) -> Bool) -> Entry? {
        var perNetwork: [String: Int] = [:]
        var perAddress: [String: Int] = [:]
        for entry in entries {
            perNetwork[entry.source.network, default: 0] += 1
            perAddress[entry.source.address, default: 0] += 1
        }
        // Larger is more expendable; the negated index makes the oldest win a tie.
        func rank(_ index: Int) -> (Int, Int, Int, Int) {
            let entry = entries[index]
            return (perNetwork[entry.source.network] ?? 0, perAddress[entry.source.address] ?? 0,
                    entry.keyExchanged ? 0 : 1, -index)
        }
        let chosen = entries.indices.filter { eligible(entries[$0]) }.max { rank($0) < rank($1) }
        return chosen.map { entries.remove(at: $0) }
    }
}

/// A connection's socket as the pre-auth limiter may shut it: only while the connection
/// still owns it. The connection releases it before libssh closes the descriptor, so an
/// eviction can never hit a later connection that was given the same descriptor number.
final class ConnectionSocket: PreAuthEvictable, @unchecked Sendable {
    private let lock = NSLock()
    private var fd: Int32?
    private var evicted = false

    init(fd: Int32) {
        self.fd = fd
    }

    /// Shuts the socket down both ways; the connection's blocked libssh call then fails.
    func evict() {
        lock.lock()
        defer { lock.unlock() }
        guard let fd else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        evicted = true
    }

    /// Called by the connection before its descriptor is closed; later evictions do nothing.
    func release() {
        lock.lock()
        fd = nil
        lock.unlock()
    }

    /// True when the limiter pushed this connection out.
    var wasEvicted: Bool {
        lock.lock()
        defer { lock.unlock() }
        return evicted
    }
}
