import Foundation

/// One `iptables` program, run directly (never through a shell) with `-w` so it waits for
/// the xtables lock that dockerd and other gateways also take.
public struct IPTables: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// Runs `iptables -w 5 ARGS` and returns its standard output; throws with its standard
    /// error when it fails.
    @discardableResult
    public func run(_ arguments: [String]) throws -> String {
        try Self.execute(path, ["-w", "5"] + arguments, input: nil)
    }

    /// Loads `rules` (iptables-save's format) with the matching `iptables-restore
    /// --noflush`: in one commit, so a chain it declares is replaced whole, never seen half
    /// built; chains it does not name are left alone.
    public func restore(_ rules: String) throws {
        try Self.execute(path + "-restore", ["--noflush", "-w", "5"], input: Data(rules.utf8))
    }

    @discardableResult
    private static func execute(_ path: String, _ arguments: [String], input: Data?) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe(), feed = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : feed
        do {
            try process.run()
        } catch {
            throw EgressFirewallError("cannot run \(path): \(error.localizedDescription)")
        }
        if let input {
            // A few rules: far less than a pipe holds, so writing before reading cannot block.
            try feed.fileHandleForWriting.write(contentsOf: input)
            try feed.fileHandleForWriting.close()
        }
        // Rule listings are small, but read both pipes before waiting so neither can fill.
        let text = output.fileHandleForReading.readDataToEndOfFile()
        let problem = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: problem, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw EgressFirewallError("\(([path] + arguments).joined(separator: " ")) failed: \(reason)")
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The `iptables` whose tables hold Docker's rules. The host may use the nft or the
    /// legacy backend, and a gateway image may default to the other one: rules in the
    /// wrong backend would never see the workspaces' packets, so the one with the
    /// DOCKER-USER chain is chosen.
    public static func forDocker(searching directories: [String] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) throws -> IPTables {
        let names = ["iptables", "iptables-nft", "iptables-legacy"]
        let candidates = names.flatMap { name in directories.map { ($0 as NSString).appendingPathComponent(name) } }
            .filter { FileManager.default.isExecutableFile(atPath: $0) }
        guard !candidates.isEmpty else {
            throw EgressFirewallError("no iptables program found in \(directories.joined(separator: ", "))")
        }
        // A listing can fail for a moment (dockerd busy with its own rules): try a few
        // times before giving up, and say what each backend answered.
        var reasons: [String] = []
        for attempt in 1...3 {
            reasons = []
            for path in candidates {
                do {
                    try IPTables(path: path).run(["-S", EgressFirewall.dockerUserChain])
                    return IPTables(path: path)
                } catch {
                    reasons.append("\(error)")
                }
            }
            if attempt < 3 { sleep(1) }
        }
        throw EgressFirewallError("no iptables backend (\(candidates.joined(separator: ", "))) shows Docker's "
                                  + "\(EgressFirewall.dockerUserChain) chain; is dockerd running with its iptables rules, "
                                  + "and does this process have CAP_NET_ADMIN? (\(reasons.joined(separator: "; ")))")
    }
}
