import Foundation

/// Tracks connections that have not authenticated yet and enforces the caps on them.
///
/// At a cap the oldest pending connection is evicted rather than the new one refused:
/// an attacker holding idle sockets then only ever pushes out other idle sockets, and a
/// real user who authenticates within the deadline always gets through.
final class PreAuthLimiter: @unchecked Sendable {
    private struct Entry {
        let id: UInt64
        let source: String
        let evict: () -> Void
    }

    private let lock = NSLock()
    private var entries: [Entry] = []  // oldest first
    private var nextID: UInt64 = 0
    let maxTotal: Int
    let maxPerSource: Int

    init(maxTotal: Int, maxPerSource: Int) {
        self.maxTotal = max(1, maxTotal)
        self.maxPerSource = max(1, maxPerSource)
    }

    /// Registers a new connection from `source`; `evict` closes it if it is pushed out later.
    /// Returns its token for `remove`.
    func admit(source: String, evict: @escaping () -> Void) -> UInt64 {
        var evicted: [Entry] = []
        lock.lock()
        nextID += 1
        let id = nextID
        if entries.filter({ $0.source == source }).count >= maxPerSource,
           let index = entries.firstIndex(where: { $0.source == source }) {
            evicted.append(entries.remove(at: index))
        }
        if entries.count >= maxTotal {
            evicted.append(entries.removeFirst())
        }
        entries.append(Entry(id: id, source: source, evict: evict))
        lock.unlock()
        evicted.forEach { $0.evict() }
        return id
    }

    /// Forgets a connection that authenticated or ended.
    func remove(_ id: UInt64) {
        lock.lock()
        entries.removeAll { $0.id == id }
        lock.unlock()
    }
}
