import Foundation

/// Decides when to ask a quiet client for a sign of life and when to give up on it, as
/// OpenSSH's ClientAliveInterval and ClientAliveCountMax do.
///
/// A client that vanished without closing its TCP connection (cable pulled, laptop asleep)
/// would otherwise hold its connection thread and keep its workspace from ever idling.
/// Any packet from the client counts as a sign of life, the answer to a keep-alive
/// (success or failure alike) included, so only a client that sends nothing at all for
/// `interval` × (`countMax` + 1) is disconnected, as OpenSSH's sshd does.
struct ClientAliveMonitor {
    enum Action: Equatable {
        case none
        /// Send one keep-alive request that wants a reply.
        case sendKeepAlive
        /// `countMax` keep-alives went unanswered: the client is gone.
        case giveUp
    }

    /// Seconds of silence per keep-alive; 0 turns the monitor off.
    let interval: TimeInterval
    let countMax: Int
    private var packetsSeen: UInt64 = 0
    private var lastHeard: Date
    private var unanswered = 0

    init(interval: TimeInterval, countMax: Int, now: Date = Date()) {
        self.interval = interval
        self.countMax = max(1, countMax)
        lastHeard = now
    }

    /// Called after each poll with the number of packets received from the client so far.
    /// `listening` is false while the client is deliberately not read (back-pressure):
    /// then its silence says nothing, and the clock starts again.
    mutating func check(packetsReceived: UInt64, listening: Bool = true, now: Date = Date()) -> Action {
        guard interval > 0 else { return .none }
        if packetsReceived != packetsSeen || !listening {
            packetsSeen = packetsReceived
            lastHeard = now
            unanswered = 0
            return .none
        }
        guard now.timeIntervalSince(lastHeard) >= interval * Double(unanswered + 1) else { return .none }
        if unanswered >= countMax { return .giveUp }
        unanswered += 1
        return .sendKeepAlive
    }
}
