import ArgumentParser
import CurlHTTP
import DockerEngine
import Foundation
import Gateway
import MetricsEndpoint
import Registry
import Workspaces

/// `devenv-gw status`: one screen for the admin on the host. Connections and sessions come
/// from the running gateway's metrics endpoint (`metrics-listen`, else the address the
/// gateway wrote to STATE_DIR/gateway.json); workspaces and the engine's version from the
/// engine; users from the registry; the last refused logins from the state directory.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the gateway's state: version, uptime, connections, sessions, workspaces, engine, refusals.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let report = try gather()
        if json { return printJSON(report) }
        print(report.text, terminator: "")
    }

    func gather() throws -> StatusReport {
        let file = GatewayStatusFile(stateDirectory: global.stateDir).read()
        let running = file.map { kill($0.pid, 0) == 0 || errno == EPERM } ?? false
        let configured = CurrentConfig.file.string(.metricsListen).flatMap { $0.isEmpty ? nil : $0 }
        let address = configured ?? (running ? file?.metrics : nil)
        var report = StatusReport(stateDirectory: global.stateDir)
        report.gateway = .init(running: running, pid: running ? file?.pid : nil, version: file?.version,
                               started: file.map { displayDate($0.started) }, uptimeSeconds: nil,
                               listen: file?.listen ?? [], metrics: address)
        if let address {
            do {
                let metrics = try Self.scrape(address)
                report.applyMetrics(metrics, from: address)
            } catch {
                report.metricsError = "\(error)"
            }
        }
        if let started = file?.started, running, report.gateway.uptimeSeconds == nil {
            report.gateway.uptimeSeconds = Int(Date().timeIntervalSince(started))
        }
        report.readEngine(try global.workspaceBackend())
        if let registry = try? global.openRegistry() { report.users = try? registry.users().count }
        report.refusedLogins = RefusedLoginLog.read(
            path: (global.stateDir as NSString).appendingPathComponent(GatewayStatusFile.refusedLoginsName))
            .reversed().map { .init(time: displayDate($0.time), user: $0.user, address: $0.address, reason: $0.reason) }
        return report
    }

    /// The samples of a `/metrics` scrape, keyed as written (`name{label="value"}`).
    static func scrape(_ address: String) throws -> [String: Double] {
        let url = try MetricsListenAddress(parsing: address).url
        let response = try HTTPClient.get(url, timeout: 5)
        guard response.status == 200 else { throw CLIError("\(url) answered \(response.status)") }
        var samples: [String: Double] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}

/// What `devenv-gw status` shows, as its JSON has it.
struct StatusReport: Encodable {
    struct Gateway: Encodable {
        var running: Bool
        var pid: Int32?
        var version: String?
        var started: String?
        var uptimeSeconds: Int?
        var listen: [String]
        /// The metrics endpoint read, `HOST:PORT`.
        var metrics: String?
    }

    struct Connections: Encodable {
        var preAuth: Int
        var authenticated: Int
    }

    struct Workspaces: Encodable {
        var running: Int
        var stopped: Int
        /// `engine`, or `metrics` when the engine could not be read.
        var source: String
    }

    struct Engine: Encodable {
        var endpoint: String
        var reachable: Bool
        var version: String?
        var apiVersion: String?
        var error: String?
    }

    struct Refusal: Encodable {
        var time: String
        var user: String
        var address: String
        var reason: String
    }

    let stateDirectory: String
    var gateway = Gateway(running: false, listen: [])
    /// Where each figure came from, in words.
    var sources: [String] = []
    var metricsError: String?
    var connections: Connections?
    /// Channels open now by kind, from the metrics.
    var sessions: [String: Int]?
    var workspaces: Workspaces?
    var engine = Engine(endpoint: "", reachable: false)
    var users: Int?
    var refusedLogins: [Refusal] = []

    init(stateDirectory: String) { self.stateDirectory = stateDirectory }

    mutating func applyMetrics(_ samples: [String: Double], from address: String) {
        sources.append("metrics endpoint http://\(address)/metrics (connections, sessions)")
        func value(_ key: String) -> Int { Int(samples[key] ?? 0) }
        connections = Connections(preAuth: value("devenv_gw_connections_open{state=\"pre_auth\"}"),
                                  authenticated: value("devenv_gw_connections_open{state=\"authenticated\"}"))
        var open: [String: Int] = [:]
        for (key, count) in samples where key.hasPrefix("devenv_gw_sessions_open{kind=\"") {
            open[String(key.dropFirst("devenv_gw_sessions_open{kind=\"".count).dropLast(2))] = Int(count)
        }
        sessions = open
        if let info = samples.keys.first(where: { $0.hasPrefix("devenv_gw_build_info{version=\"") }) {
            gateway.version = String(info.dropFirst("devenv_gw_build_info{version=\"".count).dropLast(2))
        }
        if let start = samples["devenv_gw_process_start_time_seconds"] {
            gateway.uptimeSeconds = Int(Date().timeIntervalSince1970 - start)
        }
        workspaces = Workspaces(running: value("devenv_gw_workspaces{state=\"running\"}"),
                                stopped: value("devenv_gw_workspaces{state=\"stopped\"}"), source: "metrics")
    }

    /// The engine's version and this instance's workspaces, straight from the engine.
    mutating func readEngine(_ manager: any WorkspaceBackend) {
        engine.endpoint = manager.engine.endpoint
        do {
            let version = try manager.engine.engineVersion()
            engine.reachable = true
            engine.version = version.version
            engine.apiVersion = version.apiVersion
            let containers = try manager.list().filter { $0.container != nil }
            let running = containers.filter { $0.state == "running" }.count
            workspaces = Workspaces(running: running, stopped: containers.count - running, source: "engine")
            sources.append("engine \(manager.engine.endpoint) (workspaces, engine)")
        } catch {
            engine.error = "\(error)"
        }
        sources.append("registry and state directory \(stateDirectory) (users, refused logins, listen addresses)")
    }

    /// The screen an admin reads.
    var text: String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append(label.padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
        var state = gateway.running ? "running" : "not running"
        if let pid = gateway.pid { state += " (pid \(pid))" }
        if let version = gateway.version { state += ", version \(version)" }
        if let uptime = gateway.uptimeSeconds { state += ", up \(Self.duration(uptime))" }
        if let started = gateway.started, gateway.running { state += " since \(started)" }
        row("gateway", state)
        row("listening", gateway.listen.isEmpty ? "unknown (no gateway runs on this state directory)"
            : gateway.listen.joined(separator: ", "))
        row("metrics", gateway.metrics.map { "http://\($0)/metrics" + (metricsError.map { ": unreachable (\($0))" } ?? "") }
            ?? "off (set metrics-listen to see connections and sessions)")
        if let connections {
            row("connections", "\(connections.preAuth + connections.authenticated) open "
                + "(\(connections.authenticated) logged in, \(connections.preAuth) before login)")
        } else {
            row("connections", "unknown (needs the metrics endpoint)")
        }
        if let sessions {
            let total = sessions.values.reduce(0, +)
            let kinds = sessions.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            row("sessions", "\(total) open" + (kinds.isEmpty ? "" : " (\(kinds.joined(separator: ", ")))"))
        } else {
            row("sessions", "unknown (needs the metrics endpoint)")
        }
        if let workspaces {
            row("workspaces", "\(workspaces.running) running, \(workspaces.stopped) stopped (from the \(workspaces.source))")
        } else {
            row("workspaces", "unknown")
        }
        row("users", users.map { "\($0) registered" } ?? "unknown (registry unreadable)")
        if engine.reachable {
            row("engine", "reachable at \(engine.endpoint), Docker \(engine.version ?? "?") (API \(engine.apiVersion ?? "?"))")
        } else {
            row("engine", "unreachable at \(engine.endpoint): \(engine.error ?? "unknown error")")
        }
        lines.append("")
        lines.append(refusedLogins.isEmpty ? "refused logins: none recorded"
                     : "refused logins (last \(refusedLogins.count), newest first):")
        for refusal in refusedLogins {
            lines.append("  \(refusal.time)  \(displayText(refusal.user))  \(displayText(refusal.address))  \(refusal.reason)")
        }
        lines.append("")
        lines.append("sources: " + sources.joined(separator: "; "))
        return lines.map { displayText($0) }.joined(separator: "\n") + "\n"
    }

    static func duration(_ seconds: Int) -> String {
        let days = seconds / 86400, hours = seconds % 86400 / 3600, minutes = seconds % 3600 / 60
        if days > 0 { return "\(days)d \(hours)h \(minutes)m" }
        if hours > 0 { return "\(hours)h \(minutes)m" }
        return minutes > 0 ? "\(minutes)m \(seconds % 60)s" : "\(seconds)s"
    }
}
