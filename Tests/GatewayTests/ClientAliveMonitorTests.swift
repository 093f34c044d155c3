@testable import Gateway
import XCTest

/// When a quiet client is asked for a sign of life, and when it is given up.
final class ClientAliveMonitorTests: XCTestCase {
    func testASilentClientGetsCountMaxKeepAlivesThenIsGivenUp() {
        let start = Date()
        var monitor = ClientAliveMonitor(interval: 1, countMax: 2, now: start)
        func at(_ seconds: Double, packets: UInt64 = 0) -> ClientAliveMonitor.Action {
            monitor.check(packetsReceived: packets, now: start.addingTimeInterval(seconds))
        }
        XCTAssertEqual(at(0.5), .none)
        XCTAssertEqual(at(1.0), .sendKeepAlive)
        XCTAssertEqual(at(1.5), .none)
        XCTAssertEqual(at(2.0), .sendKeepAlive)
        XCTAssertEqual(at(2.5), .none)
        XCTAssertEqual(at(3.0), .giveUp)
    }

    func testAnyPacketIsASignOfLife() {
        let start = Date()
        var monitor = ClientAliveMonitor(interval: 15, countMax: 1, now: start)
        func at(_ seconds: Double, packets: UInt64) -> ClientAliveMonitor.Action {
            monitor.check(packetsReceived: packets, now: start.addingTimeInterval(seconds))
        }
        XCTAssertEqual(at(15, packets: 0), .sendKeepAlive)
        XCTAssertEqual(at(16, packets: 1), .none, "the answer (a failure) arrived")
        XCTAssertEqual(at(30, packets: 1), .none)
        XCTAssertEqual(at(31, packets: 1), .sendKeepAlive)
        XCTAssertEqual(at(45, packets: 1), .none)
        XCTAssertEqual(at(46, packets: 1), .giveUp)
    }

    func testAClientNotBeingReadIsNotCountedSilent() {
        let start = Date()
        var monitor = ClientAliveMonitor(interval: 1, countMax: 1, now: start)
        XCTAssertEqual(monitor.check(packetsReceived: 0, listening: false, now: start.addingTimeInterval(5)), .none)
        XCTAssertEqual(monitor.check(packetsReceived: 0, now: start.addingTimeInterval(5.5)), .none)
        XCTAssertEqual(monitor.check(packetsReceived: 0, now: start.addingTimeInterval(6)), .sendKeepAlive)
    }

    func testZeroIntervalNeverSends() {
        var monitor = ClientAliveMonitor(interval: 0, countMax: 3)
        XCTAssertEqual(monitor.check(packetsReceived: 0, now: Date().addingTimeInterval(1e6)), .none)
    }
}
