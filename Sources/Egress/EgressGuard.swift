import Foundation

/// Installs the egress rules when `serve` starts and keeps them: every `interval` it
/// checks them again and repairs what changed (the workspace network was recreated with a
/// new bridge, the host gained an address, someone flushed the chain).
public final class EgressGuard: @unchecked Sendable {
    private let firewall: EgressFirewall
    private let policy: EgressPolicy
    private let bridge: () throws -> String
    private let log: (String) -> Void
    private var lastProblem: String?

    /// `bridge` names the workspace network's interface now; `log` hears of repairs and
    /// of failures (each failure once until it changes).
    public init(firewall: EgressFirewall, policy: EgressPolicy, bridge: @escaping () throws -> String,
                log: @escaping (String) -> Void) {
        self.firewall = firewall
        self.policy = policy
        self.bridge = bridge
        self.log = log
    }

    /// Applies the rules once; throws when they cannot be installed.
    @discardableResult
    public func apply() throws -> (bridge: String, denied: [IPv4Network], changed: Bool) {
        let interface = try bridge()
        let denied = policy.deniedNetworks(hostAddresses: HostAddresses.ipv4())
        let changed = try firewall.apply(bridge: interface, denying: denied)
        return (interface, denied, changed)
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
        thread.name = "egress-guard"
        thread.start()
    }

    private func check() {
        do {
            let result = try apply()
            if result.changed {
                log("egress rules repaired: \(firewall.chain) on \(result.bridge) drops "
                    + (result.denied.isEmpty ? "nothing" : result.denied.map(\.description).joined(separator: " ")))
            }
            lastProblem = nil
        } catch {
            let problem = "\(error)"
            if problem != lastProblem { log("cannot check the egress rules: \(problem)") }
            lastProblem = problem
        }
    }
}
