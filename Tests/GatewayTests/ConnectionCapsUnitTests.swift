@testable import Gateway
import UserNames
import XCTest

/// The pieces behind the connection caps, without a gateway.
final class ConnectionCapsUnitTests: XCTestCase {
    func testCounterCapsTotalAndPerUserAndGivesSlotsBack() throws {
        let counter = ConnectionCounter(maxTotal: 2, maxPerUser: 1)
        XCTAssertTrue(counter.admit())
        XCTAssertTrue(counter.admit())
        XCTAssertFalse(counter.admit())
        counter.release()
        XCTAssertTrue(counter.admit())
        XCTAssertEqual(counter.count, 2)

        let alice = try UserName("alice"), bob = try UserName("bob")
        XCTAssertTrue(counter.claim(alice))
        XCTAssertFalse(counter.claim(alice))
        XCTAssertTrue(counter.claim(bob))
        counter.unclaim(alice)
        XCTAssertTrue(counter.claim(alice))
    }

    func testAcceptBackoffGrowsToOneSecondAndResets() {
        var backoff = AcceptBackoff()
        XCTAssertEqual((0..<6).map { _ in backoff.next() }, [0.1, 0.2, 0.4, 0.8, 1, 1])
        backoff.reset()
        XCTAssertEqual(backoff.next(), 0.1)
    }

    /// The refusal is an identification line and one unencrypted SSH_MSG_DISCONNECT packet.
    func testRefusalIsAWellFormedDisconnectPacket() throws {
        let bytes = RefusedSockets.refusal("busy")
        let lineEnd = try XCTUnwrap(bytes.firstIndex(of: UInt8(ascii: "\n")))
        XCTAssertTrue(String(decoding: bytes[...lineEnd], as: UTF8.self).hasPrefix("SSH-2.0-libssh_0."))
        let packet = Array(bytes[(lineEnd + 1)...])
        let length = packet[0..<4].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(length + 4, packet.count)
        XCTAssertEqual(packet.count % 8, 0)
        let padding = Int(packet[4])
        XCTAssertGreaterThanOrEqual(padding, 4)
        let payload = Array(packet[5..<(packet.count - padding)])
        XCTAssertEqual(payload, [1, 0, 0, 0, 12, 0, 0, 0, 4] + Array("busy".utf8) + [0, 0, 0, 0])
    }

    func testDescriptorReserveFitsLowLimits() {
        XCTAssertEqual(FileDescriptorLimit.reserve(for: 1_048_576), 64)
        XCTAssertEqual(FileDescriptorLimit.reserve(for: 64), 16)
        XCTAssertNotNil(FileDescriptorLimit.openCount())
    }
}
