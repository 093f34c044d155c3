@testable import Gateway
import XCTest

/// When an open connection looks up its login again: only when the revocation count moved.
final class RevocationWatchTests: XCTestCase {
    private struct Unreadable: Error {}

    func testTheLoginIsLookedUpOnlyWhenTheCountMoves() {
        let start = Date()
        var watch = RevocationWatch(interval: 2, now: start)
        var reads = 0
        var count = 7
        func at(_ seconds: Double) -> Bool {
            watch.isDue(now: start.addingTimeInterval(seconds)) { reads += 1; return count }
        }
        XCTAssertFalse(at(1.9))
        XCTAssertEqual(reads, 0, "nothing is read before the interval")
        XCTAssertTrue(at(2), "the first reading always leads to a lookup")
        XCTAssertFalse(at(4))
        XCTAssertFalse(at(5), "one reading per interval")
        XCTAssertEqual(reads, 2)
        count = 8
        XCTAssertTrue(at(6))
        XCTAssertFalse(at(8))
    }

    func testAnUnreadableCountOrAFailedLookupMakesTheNextReadingDue() {
        let start = Date()
        var watch = RevocationWatch(interval: 1, now: start)
        XCTAssertTrue(watch.isDue(now: start.addingTimeInterval(1)) { throw Unreadable() })
        XCTAssertTrue(watch.isDue(now: start.addingTimeInterval(2)) { 3 })
        XCTAssertFalse(watch.isDue(now: start.addingTimeInterval(3)) { 3 })
        watch.lookupFailed()
        XCTAssertTrue(watch.isDue(now: start.addingTimeInterval(4)) { 3 })
    }

    func testSharedCountIsReadOncePerMaxAgeForAllConnections() throws {
        var reads = 0
        let shared = SharedRevocationCount(maxAge: 1) { reads += 1; return reads }
        let start = Date()
        XCTAssertEqual(try shared.current(now: start), 1)
        XCTAssertEqual(try shared.current(now: start.addingTimeInterval(0.5)), 1, "served from the last reading")
        XCTAssertEqual(reads, 1)
        XCTAssertEqual(try shared.current(now: start.addingTimeInterval(1)), 2, "read again once it is a second old")
    }
}
