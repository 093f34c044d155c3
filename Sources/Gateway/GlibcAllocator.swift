import Foundation

/// glibc's allocator, tuned for one long-lived thread per connection. Looked up at run
/// time: Swift's Glibc module does not import <malloc.h>.
public enum GlibcAllocator {
    private typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    private typealias MallocTrim = @convention(c) (Int) -> Int32
    private static let mallopt: Mallopt? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt")
        .map { unsafeBitCast($0, to: Mallopt.self) }
    private static let mallocTrim: MallocTrim? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
        .map { unsafeBitCast($0, to: MallocTrim.self) }
    private static let trimLock = NSLock()
    private static var trimming = false
    private static var trimAgain = false

    /// Caps glibc's malloc arenas (by default up to 8 per core, each keeping its own free
    /// memory, and with a thread per connection every one of them gets used). Leaves an
    /// operator's own MALLOC_ARENA_MAX or glibc tunable alone. Returns the cap set, if any.
    @discardableResult
    public static func limitArenas(to count: Int) -> Int? {
        let environment = ProcessInfo.processInfo.environment
        guard environment["MALLOC_ARENA_MAX"] == nil,
              !(environment["GLIBC_TUNABLES"] ?? "").contains("arena_max"),
              let mallopt, mallopt(-8 /* M_ARENA_MAX */, Int32(count)) == 1 else { return nil }
        return count
    }

    /// Gives the free pages of every arena back to the system (malloc_trim(0)). One trim runs
    /// at a time; a request made while one runs makes it run once more, so what the last
    /// connection freed is always returned.
    static func releaseFreeMemory() {
        guard let mallocTrim else { return }
        trimLock.lock()
        if trimming {
            trimAgain = true
            trimLock.unlock()
            return
        }
        trimming = true
        trimLock.unlock()
        while true {
            _ = mallocTrim(0)
            trimLock.lock()
            if trimAgain {
                trimAgain = false
                trimLock.unlock()
                continue
            }
            trimming = false
            trimLock.unlock()
            return
        }
    }
}
