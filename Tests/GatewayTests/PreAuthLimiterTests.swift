@testable import Gateway
import XCTest

/// The pre-auth limiter's decisions: which source a connection counts against, when a new
/// connection is dropped at random, and which pending connection makes room at a cap.
final class PreAuthLimiterTests: XCTestCase {
    /// A pending connection that records whether it was pushed out.
    final class FakeConnection: PreAuthEvictable {
        let name: String
        private(set) var evicted = false
        init(_ name: String) { self.name = name }
        func evict() { evicted = true }
    }

    /// Random numbers handed out in order, so each early-drop decision is known.
    final class Dice {
        var rolls: [Double] = []
        func next() -> Double { rolls.isEmpty ? 0.999 : rolls.removeFirst() }
    }

    private func limiter(start: Int, rate: Int = 100, full: Int, perNetwork: Int, dice: Dice = Dice()) -> PreAuthLimiter {
        PreAuthLimiter(limits: StartupLimits(start: start, rate: rate, full: full), maxPerNetwork: perNetwork,
                       random: dice.next)
    }

    @discardableResult
    private func admit(_ limiter: PreAuthLimiter, _ address: String, _ name: String? = nil)
        -> (connection: FakeConnection, admission: PreAuthLimiter.Admission) {
        let connection = FakeConnection(name ?? address)
        return (connection, limiter.admit(from: PreAuthSource(address: address), connection: connection))
    }

    func testSourcesAreGroupedBy24And64() {
        let cases: [(String, address: String, network: String)] = [
            ("192.0.2.7", "192.0.2.7", "192.0.2.0/24"),
            ("192.0.2.200", "192.0.2.200", "192.0.2.0/24"),
            ("192.0.3.1", "192.0.3.1", "192.0.3.0/24"),
            ("::ffff:192.0.2.9", "192.0.2.9", "192.0.2.0/24"),  // IPv4-mapped counts as IPv4
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:0db8:1:2:ffff:ffff:ffff:9", "2001:db8:1:2:ffff:ffff:ffff:9", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::1", "::1", "::/64"),
        ]
        for (text, address, network) in cases {
            let source = PreAuthSource(address: text)
            XCTAssertEqual(source.address, address, text)
            XCTAssertEqual(source.network, network, text)
        }
    }

    func testStartupLimitsParseLikeMaxStartups() throws {
        XCTAssertEqual(try StartupLimits(parsing: "10:30:100"), StartupLimits(start: 10, rate: 30, full: 100))
        XCTAssertEqual(try StartupLimits(parsing: "50"), StartupLimits(start: 50, rate: 100, full: 50))
        XCTAssertEqual(try StartupLimits(parsing: "10:30:100").description, "10:30:100")
        XCTAssertEqual(try StartupLimits(parsing: "50").description, "50")
        for bad in ["", "10:30", "a:b:c", "10:30:100:5", "0", "20:30:10", "10:101:100", "10:-1:100", "10::100"] {
            XCTAssertThrowsError(try StartupLimits(parsing: bad), bad)
        }
    }

    /// The network cap counts a whole /24: eight addresses share one network's places, and
    /// the room is made by the network's own busiest address.
    func testANetworkAtItsCapMakesRoomFromItself() {
        let limiter = limiter(start: 100, full: 100, perNetwork: 3)
        let a1 = admit(limiter, "10.0.0.1").connection
        let a2 = admit(limiter, "10.0.0.1").connection
        let other = admit(limiter, "10.0.1.1").connection
        let b = admit(limiter, "10.0.0.2").connection
        XCTAssertEqual(limiter.pendingCount, 4)
        // The network 10.0.0.0/24 holds 3: a fourth address of it pushes out 10.0.0.1's oldest.
        let (c, admission) = admit(limiter, "10.0.0.3")
        XCTAssertNotNil(admission.token)
        XCTAssertEqual(admission.evicted?.address, "10.0.0.1")
        XCTAssertTrue(a1.evicted)
        XCTAssertFalse(a2.evicted || other.evicted || b.evicted || c.evicted)
        XCTAssertEqual(limiter.pendingCount, 4)
    }

    func testEvictionPrefersConnectionsStillInKeyExchange() {
        let limiter = limiter(start: 100, full: 100, perNetwork: 3)
        let (old, first) = admit(limiter, "10.0.0.1", "old")
        let (middle, _) = admit(limiter, "10.0.0.1", "middle")
        let (young, third) = admit(limiter, "10.0.0.1", "young")
        limiter.keyExchangeCompleted(first.token!)
        limiter.keyExchangeCompleted(third.token!)
        let (_, admission) = admit(limiter, "10.0.0.1")
        XCTAssertNotNil(admission.token)
        XCTAssertTrue(middle.evicted, "the one still in key exchange goes first")
        XCTAssertFalse(old.evicted || young.evicted)
        // Among those that finished, the oldest.
        let (_, next) = admit(limiter, "10.0.0.1")
        limiter.keyExchangeCompleted(next.token!)
        admit(limiter, "10.0.0.1")
        XCTAssertTrue(old.evicted)
        XCTAssertFalse(young.evicted)
    }

    /// A flood from busy addresses of a network never pushes out a user's one connection
    /// from a quiet address of the same network, even after it finished key exchange.
    func testTheBusiestAddressGivesWayFirst() {
        let limiter = limiter(start: 100, full: 100, perNetwork: 20)
        let (user, admission) = admit(limiter, "127.0.0.1", "user")
        var flood: [FakeConnection] = []
        for round in 0..<50 {
            flood.append(admit(limiter, "127.0.0.\(2 + round % 8)").connection)
        }
        XCTAssertFalse(user.evicted)
        limiter.keyExchangeCompleted(admission.token!)
        for round in 0..<50 {
            flood.append(admit(limiter, "127.0.0.\(2 + round % 8)").connection)
        }
        XCTAssertFalse(user.evicted)
        XCTAssertEqual(flood.filter { !$0.evicted }.count, 19)
    }

    /// A full table makes room from the busiest network, not from the newcomer's.
    func testAFullTableMakesRoomFromTheBusiestNetwork() {
        let limiter = limiter(start: 4, full: 4, perNetwork: 10)
        let quiet = admit(limiter, "198.51.100.1").connection
        let busy = (0..<3).map { admit(limiter, "203.0.113.\($0 + 1)").connection }
        let (newcomer, admission) = admit(limiter, "192.0.2.1")
        XCTAssertNotNil(admission.token)
        XCTAssertEqual(admission.evicted?.network, "203.0.113.0/24")
        XCTAssertTrue(busy[0].evicted)
        XCTAssertFalse(quiet.evicted || newcomer.evicted)
        XCTAssertEqual(limiter.pendingCount, 4)
    }

    func testRandomEarlyDropBetweenStartAndFull() {
        let dice = Dice()
        let limiter = limiter(start: 2, rate: 30, full: 6, perNetwork: 100, dice: dice)
        XCTAssertEqual(limiter.dropChance(pending: 1), 0)
        XCTAssertEqual(limiter.dropChance(pending: 2), 0.30, accuracy: 1e-9)
        XCTAssertEqual(limiter.dropChance(pending: 4), 0.65, accuracy: 1e-9)
        XCTAssertEqual(limiter.dropChance(pending: 6), 1)
        admit(limiter, "10.0.0.1")
        admit(limiter, "10.0.1.1")
        // Two pending: a busy address is dropped when the roll is under 30 %.
        dice.rolls = [0.29]
        XCTAssertNil(admit(limiter, "10.0.0.1").admission.token)
        dice.rolls = [0.31]
        XCTAssertNotNil(admit(limiter, "10.0.0.1").admission.token)
        XCTAssertTrue(dice.rolls.isEmpty)
        // An address with nothing pending is never dropped at random.
        dice.rolls = [0.0]
        XCTAssertNotNil(admit(limiter, "10.0.2.1").admission.token)
        XCTAssertEqual(dice.rolls, [0.0], "no roll for a quiet address")
        dice.rolls = []
        admit(limiter, "10.0.3.1")
        admit(limiter, "10.0.4.1")
        XCTAssertEqual(limiter.pendingCount, 6)
        // Full: a busy address is always dropped, a quiet one takes the place of the busiest.
        dice.rolls = [0.999]
        XCTAssertNil(admit(limiter, "10.0.3.1").admission.token)
        let (_, quiet) = admit(limiter, "10.0.9.1")
        XCTAssertNotNil(quiet.token)
        XCTAssertEqual(quiet.evicted?.address, "10.0.0.1")
        XCTAssertEqual(limiter.pendingCount, 6)
    }

    func testRemovedConnectionsFreeTheirPlace() {
        let limiter = limiter(start: 2, full: 2, perNetwork: 2)
        let (first, admission) = admit(limiter, "10.0.0.1")
        admit(limiter, "10.0.0.2")
        limiter.remove(admission.token!)
        XCTAssertEqual(limiter.pendingCount, 1)
        XCTAssertNil(admit(limiter, "10.0.0.2").admission.evicted)
        XCTAssertFalse(first.evicted)
    }

    /// Eviction goes through the connection's own socket object: once the connection has
    /// let go of its descriptor, a later socket given the same number is never touched.
    func testAnEvictedSocketIsShutDownButAReleasedOneIsNeverTouched() throws {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        let live = ConnectionSocket(fd: pair[0])
        live.evict()
        XCTAssertTrue(live.wasEvicted)
        var byte: UInt8 = 0
        XCTAssertEqual(read(pair[1], &byte, 1), 0, "the peer sees the connection end")
        close(pair[0])
        close(pair[1])

        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        let old = ConnectionSocket(fd: pair[0])
        old.release()
        close(pair[0])
        close(pair[1])
        // The numbers are free again; the next sockets reuse them.
        var reused: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &reused), 0)
        defer { close(reused[0]); close(reused[1]) }
        XCTAssertTrue(reused.contains(pair[0]))
        old.evict()
        XCTAssertFalse(old.wasEvicted)
        XCTAssertEqual(write(reused[0], "x", 1), 1)
        XCTAssertEqual(read(reused[1], &byte, 1), 1, "the reused descriptor still works")
    }
}
