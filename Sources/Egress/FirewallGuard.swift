import Foundation

/// Rules that a `FirewallGuard` keeps in place.
public protocol GuardedRules: Sendable {
    /// Installs or repairs the rules. Returns one line saying what they do now, and
    /// whether anything had to change.
    func apply() throws -> (summary: String, changed: Bool)
}

/// Installs rules once and then keeps them: every `interval` it checks them again and
/// repairs what changed (the workspace network was recreated with a new bridge, the host
/// gained an address, someone flushed a chain).
public final class FirewallGuard: @unchecked Sendable {
    private let rules: [any GuardedRules]
    private let log: (String) -> Void
    private var lastProblem: String?

    /// `log` hears of repairs and of failures (each failure once until it changes).
    public init(rules: [any GuardedRules], log: @escaping (String) -> Void) {
        self.rules = rules
        self.log = log
    }

    /// Applies every rule set once, in order; throws at the first that cannot be installed.
    @discardableResult
    public func apply() throws -> [(summary: String, changed: Bool)] {
        try rules.map { try $0.apply() }
    }

    /// Checks and repairs the rules every `interval` seconds on a thread of its own, for
    /// the life of the process.
    public func keep(every interval: TimeInterval = 30) {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: interval)
                check()
            }
        }
        thread.name = "firewall-guard"
        thread.start()
    }

    /// Applies the rules once and logs what it repaired or why it could not.
    public func check() {
        do {
            for result in try apply() where result.changed { log("firewall rules repaired: \(result.summary)") }
            lastProblem = nil
        } catch {
            let problem = "\(error)"
            if problem != lastProblem { log("cannot check the firewall rules: \(problem)") }
            lastProblem = problem
        }
    }
}

/// The egress rules for one bridge, with `host` read from this host's interfaces at each
/// check.
public struct EgressRules: GuardedRules {
    public let firewall: EgressFirewall
    public let policy: EgressPolicy
    private let bridge: @Sendable () throws -> String

    /// `bridge` names the workspace network's interface now.
    public init(firewall: EgressFirewall, policy: EgressPolicy, bridge: @escaping @Sendable () throws -> String) {
        self.firewall = firewall
        self.policy = policy
        self.bridge = bridge
    }

    public func apply() throws -> (summary: String, changed: Bool) {
        let interface = try bridge()
        let denied = policy.deniedNetworks(hostAddresses: HostAddresses.ipv4())
        let changed = try firewall.apply(bridge: interface, denying: denied)
        let what = denied.isEmpty ? "nothing (egress-deny is none)" : denied.map(\.description).joined(separator: " ")
        return ("\(firewall.chain) drops new connections from \(interface) to \(what)", changed)
    }
}
