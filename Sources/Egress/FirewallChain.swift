import Foundation

/// One iptables chain of ours and the jumps into it, kept exactly as wanted: the chain
/// holds `rules` and nothing else, and each entry chain holds exactly one jump to it.
///
/// Applying is idempotent: the chain is replaced, in one commit, only when its rules
/// differ from the wanted ones, and a jump for something else (a bridge that was recreated under another
/// name) or a second copy is removed.
public struct FirewallChain: Sendable {
    /// A jump into the chain from a built-in or Docker chain: `-A entry <match> -j chain`.
    public struct Jump: Sendable, Equatable {
        public let entry: String
        public let match: [String]

        public init(from entry: String, matching match: [String]) {
            self.entry = entry
            self.match = match
        }
    }

    public let name: String
    /// The chain's rules after `-N name`, as `iptables -S` lists them (`-A name …`).
    public let rules: [String]
    public let jumps: [Jump]

    public init(name: String, rules: [String], jumps: [Jump]) {
        self.name = name
        self.rules = rules
        self.jumps = jumps
    }

    /// Installs or repairs the chain and its jumps. Returns true when anything changed.
    @discardableResult
    public func apply(with iptables: IPTables) throws -> Bool {
        var changed = false
        let wanted = ["-N \(name)"] + rules
        let current = (try? iptables.run(["-S", name])).map(Self.lines)
        if current != wanted {
            // Replaced in one commit: a flush followed by one rule at a time would leave
            // workspaces unguarded until the last rule is back.
            try iptables.restore((["*filter", ":\(name) - [0:0]"] + rules + ["COMMIT"]).joined(separator: "\n") + "\n")
            changed = true
        }
        for entry in Set(jumps.map(\.entry)).sorted() {
            let wantedJumps = jumps.filter { $0.entry == entry }.map { (["-A", entry] + $0.match + ["-j", name]).joined(separator: " ") }
            let present = Self.lines(try iptables.run(["-S", entry])).filter { $0.hasSuffix(" -j \(name)") }
            // Kept: the first copy of each wanted jump; everything else that leads here goes.
            var kept: Set<String> = []
            for jump in present {
                if wantedJumps.contains(jump), kept.insert(jump).inserted { continue }
                try iptables.run(["-D"] + Self.arguments(jump).dropFirst())
                changed = true
            }
            for jump in wantedJumps where !kept.contains(jump) {
                try iptables.run(["-I", entry, "1"] + Self.arguments(jump).dropFirst(2))
                changed = true
            }
        }
        return changed
    }

    /// Removes the jumps into the chain and the chain itself; nothing when it is absent.
    public func remove(with iptables: IPTables) throws {
        for entry in Set(jumps.map(\.entry)).sorted() {
            let present = (try? iptables.run(["-S", entry])).map(Self.lines) ?? []
            for jump in present where jump.hasSuffix(" -j \(name)") {
                try iptables.run(["-D"] + Self.arguments(jump).dropFirst())
            }
        }
        guard (try? iptables.run(["-S", name])) != nil else { return }
        try iptables.run(["-F", name])
        try iptables.run(["-X", name])
    }

    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A listed rule as arguments. Our rules are made only of interface and chain names,
    /// CIDRs and fixed words, none of which holds a space.
    static func arguments(_ rule: String) -> [String] {
        rule.split(separator: " ").map(String.init)
    }
}
