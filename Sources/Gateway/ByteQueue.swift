/// A first-in first-out queue of bytes in one ring of memory that the queue owns.
///
/// The bridge keeps here what it took from one channel and the other channel has not
/// accepted yet. Storage is allocated on the first append and given back by `trim()`, so
/// an idle channel costs nothing. A class, because it owns that memory.
final class ByteQueue {
    private var storage: UnsafeMutableRawBufferPointer?
    /// Index of the oldest byte in `storage`.
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    var capacity: Int { storage?.count ?? 0 }

    /// Appends a copy of `bytes`.
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(count + bytes.count)
        guard let storage else { return }
        var source = bytes
        var tail = (head + count) % storage.count
        while !source.isEmpty {
            let run = min(source.count, storage.count - tail)
            UnsafeMutableRawBufferPointer(rebasing: storage[tail..<tail + run])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<run]))
            source = UnsafeRawBufferPointer(rebasing: source[run...])
            count += run
            tail = (tail + run) % storage.count
        }
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Lets `body` write up to `limit` new bytes straight into the queue's free memory
    /// (contiguous, possibly fewer than `limit`); it returns how many it wrote, which are
    /// appended. `body` must not touch the queue itself.
    @discardableResult
    func fill(upTo limit: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        guard limit > 0 else { return 0 }
        reserve(count + limit)
        guard let storage else { return 0 }
        let tail = (head + count) % storage.count
        let run = min(limit, storage.count - tail, storage.count - count)
        let written = body(UnsafeMutableRawBufferPointer(rebasing: storage[tail..<tail + run]))
        precondition(written >= 0 && written <= run, "wrote more than was offered")
        count += written
        return written
    }

    /// Calls `body` with the oldest bytes that lie contiguously in memory (at most `limit`)
    /// and removes as many as it returns. The bytes must not be kept after `body` returns.
    @discardableResult
    func consumeFront(upTo limit: Int, _ body: (UnsafeRawBufferPointer) -> Int) -> Int {
        guard let storage, count > 0, limit > 0 else { return 0 }
        let run = min(count, storage.count - head, limit)
        let used = body(UnsafeRawBufferPointer(rebasing: storage[head..<head + run]))
        precondition(used >= 0 && used <= run, "consumed more than was offered")
        removeFirst(used)
        return used
    }

    /// Removes the `n` oldest bytes.
    func removeFirst(_ n: Int) {
        precondition(n <= count)
        count -= n
        head = count == 0 ? 0 : (head + n) % capacity
    }

    /// Empties the queue and gives its memory back.
    func removeAll() {
        count = 0
        head = 0
        trim()
    }

    /// Gives the memory back when the queue is empty.
    func trim() {
        guard count == 0, let storage else { return }
        storage.deallocate()
        self.storage = nil
        head = 0
    }

    /// Grows the ring to hold `needed` bytes, keeping the order of what it holds.
    private func reserve(_ needed: Int) {
        if let storage, storage.count >= needed { return }
        var size = max(capacity, 16 * 1024)
        while size < needed { size *= 2 }
        let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        if let storage {
            let firstRun = min(count, storage.count - head)
            grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[head..<head + firstRun]))
            if firstRun < count {
                UnsafeMutableRawBufferPointer(rebasing: grown[firstRun..<count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[0..<count - firstRun]))
            }
            storage.deallocate()
        }
        storage = grown
        head = 0
    }

    deinit { storage?.deallocate() }
}
