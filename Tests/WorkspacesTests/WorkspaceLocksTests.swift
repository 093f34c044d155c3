@testable import Workspaces
import Foundation
import UserNames
import XCTest

/// The per-user workspace lock, shared through a lock file: two `WorkspaceLocks` on one
/// directory behave like two devenv-gw processes (each lock takes its own open file).
final class WorkspaceLocksTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "devenv-locks-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testWaiterGivesUpAtItsDeadlineAndSaysWhatHoldsTheWorkspace() throws {
        let admin = WorkspaceLocks(directory: directory), gateway = WorkspaceLocks(directory: directory)
        let alice = try UserName("alice")
        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let holder = Thread {
            try? admin.withLock(alice, for: "being restored") {
                held.signal()
                release.wait()
            }
        }
        holder.start()
        held.wait()
        let started = Date()
        XCTAssertThrowsError(try gateway.withLock(alice, for: "being started for a login", waitingAtMost: 0.5) {
            XCTFail("got the lock while the restore held it")
        }) { error in
            guard case WorkspaceError.locked(let user, let what) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(user, "alice")
            XCTAssertTrue(what.hasPrefix("being restored ("), what)
            XCTAssertTrue("\(error)".contains("is busy: it is being restored"), "\(error)")
        }
        XCTAssertEqual(Date().timeIntervalSince(started), 0.5, accuracy: 0.4)
        // Another user's workspace is not held up.
        XCTAssertEqual(try gateway.withLock(try UserName("bob"), for: "login", waitingAtMost: 0.5) { 7 }, 7)
        release.signal()
        // Once released, a waiter without a deadline gets it.
        XCTAssertEqual(try gateway.withLock(alice, for: "login") { 42 }, 42)
    }

    func testWaiterWithoutDeadlineGetsTheLockWhenItIsReleased() throws {
        let first = WorkspaceLocks(directory: directory), second = WorkspaceLocks(directory: directory)
        let alice = try UserName("alice")
        let held = DispatchSemaphore(value: 0)
        let events = EventLog()
        let holder = Thread {
            try? first.withLock(alice, for: "being upgraded") {
                held.signal()
                usleep(300_000)
                events.record("first done")
            }
        }
        holder.start()
        held.wait()
        try second.withLock(alice, for: "login") { events.record("second") }
        XCTAssertEqual(events.all, ["first done", "second"])
    }

    func testWithoutDirectoryLocksWithinTheProcess() throws {
        let locks = WorkspaceLocks(directory: nil)
        let alice = try UserName("alice")
        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread { try? locks.withLock(alice, for: "being stopped") { held.signal(); release.wait() } }.start()
        held.wait()
        XCTAssertThrowsError(try locks.withLock(alice, for: "login", waitingAtMost: 0.2) {}) { error in
            XCTAssertTrue("\(error)".contains("it is being stopped"), "\(error)")
        }
        release.signal()
    }
}

/// Events recorded from several threads, in order.
private final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [String] = []

    func record(_ event: String) {
        lock.lock()
        events.append(event)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }
}
