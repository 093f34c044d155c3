import CoreMetrics

/// How Prometheus types a metric.
public enum MetricKind: String, Sendable {
    case counter, gauge, histogram
}

/// One metric the gateway exports: its name, type, help text and its one label (if any)
/// with every value that label can take.
///
/// Label values come from fixed sets, so no series carries a user name, key or address
/// (their number stays bounded, and the endpoint reveals nobody).
public struct MetricDefinition: Sendable {
    /// The Prometheus name, `devenv_gw_…`.
    public let name: String
    public let kind: MetricKind
    /// The `# HELP` text: what the metric counts, in one sentence.
    public let help: String
    /// The label's name, or nil for a metric without labels.
    public let labelName: String?
    /// Every value of the label that is created (at zero) when the metrics start, so that
    /// rates and alerts see a series before its first event.
    public let labelValues: [String]

    init(_ name: String, _ kind: MetricKind, _ help: String, label: String? = nil, values: [String] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        labelName = label
        labelValues = values
    }

    /// The label pairs of one series: none, or `labelName=value`.
    public func dimensions(_ value: String?) -> [(String, String)] {
        guard let labelName, let value else { return [] }
        return [(labelName, value)]
    }

    /// The counter of this metric for `value` of its label.
    public func counter(_ value: String? = nil) -> Counter { Counter(label: name, dimensions: dimensions(value)) }

    /// The gauge of this metric for `value` of its label, set as a whole.
    public func gauge(_ value: String? = nil) -> Gauge { Gauge(label: name, dimensions: dimensions(value)) }

    /// The gauge of this metric for `value` of its label, moved up and down.
    public func meter(_ value: String? = nil) -> Meter { Meter(label: name, dimensions: dimensions(value)) }

    /// The histogram of this metric (in seconds) for `value` of its label.
    public func timer(_ value: String? = nil) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: name, dimensions: dimensions(value), preferredDisplayUnit: .seconds)
    }
}

/// Every metric of `devenv-gw serve`, named `devenv_gw_…`. The README's metrics section
/// lists the same; `MetricsEndpoint` gives each its help text and creates every series.
///
/// The modules that count (Gateway, Workspaces, DockerEngine, Audit) use swift-metrics'
/// types through these definitions and never see Prometheus or NIO. The handles below are
/// created on first use: `serve` bootstraps the metrics system before anything counts,
/// and without `--metrics-listen` they stay swift-metrics' no-op handlers.
public enum GatewayMetric {
    // MARK: Connections and logins
    // Each definition's help text says what it counts; the README's table says the same.

    public static let connectionsOpen = MetricDefinition(
        "devenv_gw_connections_open", .gauge,
        "SSH connections open now, before login (pre_auth) and logged in (authenticated).",
        label: "state", values: ["pre_auth", "authenticated"])
    public static let connectionsRefused = MetricDefinition(
        "devenv_gw_connections_refused_total", .counter,
        "Connections refused at accept, before key exchange, by the limit that refused them.",
        label: "limit", values: ["max_connections", "file_descriptors", "threads"])
    public static let loginsAccepted = MetricDefinition(
        "devenv_gw_logins_accepted_total", .counter,
        "Logins that authenticated and reached their workspace.")
    public static let loginsRefused = MetricDefinition(
        "devenv_gw_logins_refused_total", .counter,
        "Connections that offered a key and did not get a working login, by reason.",
        label: "reason", values: LoginRefusal.allCases.map(\.rawValue))
    public static let preAuthEvicted = MetricDefinition(
        "devenv_gw_preauth_evicted_total", .counter,
        "Unauthenticated connections pushed out to make room for another (max-startups, max-startups-per-source).")
    public static let preAuthDropped = MetricDefinition(
        "devenv_gw_preauth_dropped_total", .counter,
        "New connections dropped at random before key exchange (max-startups early drop).")
    public static let loginDuration = MetricDefinition(
        "devenv_gw_login_duration_seconds", .histogram,
        "Seconds from TCP accept until the workspace's sshd is connected, cold (container created or started) or warm.",
        label: "workspace", values: ["cold", "warm"])

    // MARK: Sessions and bytes

    public static let sessionsOpen = MetricDefinition(
        "devenv_gw_sessions_open", .gauge,
        "Channels running now, by kind.", label: "kind", values: SessionKind.allCases.map(\.rawValue))
    public static let sessionsStarted = MetricDefinition(
        "devenv_gw_sessions_started_total", .counter,
        "Channels started, by kind.", label: "kind", values: SessionKind.allCases.map(\.rawValue))
    public static let bytes = MetricDefinition(
        "devenv_gw_bytes_total", .counter,
        "Bytes delivered through the bridge, to workspaces and to clients.",
        label: "direction", values: ["to_workspace", "to_client"])

    // MARK: Workspaces and the engine

    public static let workspaces = MetricDefinition(
        "devenv_gw_workspaces", .gauge,
        "Workspace containers of this instance by state, read from the engine at most every 30 s.",
        label: "state", values: ["running", "stopped"])
    public static let workspacesCreated = MetricDefinition(
        "devenv_gw_workspaces_created_total", .counter, "Workspace containers created for a login.")
    public static let workspacesStarted = MetricDefinition(
        "devenv_gw_workspaces_started_total", .counter,
        "Workspace containers started for a login (a created one is started too).")
    public static let workspacesStoppedIdle = MetricDefinition(
        "devenv_gw_workspaces_stopped_idle_total", .counter, "Workspaces stopped after idle-timeout without a session.")
    public static let engineErrors = MetricDefinition(
        "devenv_gw_engine_errors_total", .counter,
        "Docker Engine API calls that failed: engine unreachable, timed out, or an unexpected status (not 304, 404, 409).",
        label: "operation", values: ["ping", "inspect_container", "create_container", "start_container",
                                     "stop_container", "list_containers", "list_volumes"])

    // MARK: Audit

    public static let auditDropped = MetricDefinition(
        "devenv_gw_audit_events_dropped_total", .counter,
        "Audit events lost: journald failed and there was no stderr to fall back to.")
    public static let auditFallback = MetricDefinition(
        "devenv_gw_audit_events_fallback_total", .counter,
        "Audit events written to stderr because journald did not take them.")

    // MARK: The process

    public static let buildInfo = MetricDefinition(
        "devenv_gw_build_info", .gauge, "Always 1; the version label is the gateway's version.",
        label: "version")
    public static let startTime = MetricDefinition(
        "devenv_gw_process_start_time_seconds", .gauge, "When serve started, in seconds since the Unix epoch.")
    public static let residentMemory = MetricDefinition(
        "devenv_gw_process_resident_memory_bytes", .gauge, "Resident memory of the gateway process (/proc/self/statm).")
    public static let threads = MetricDefinition(
        "devenv_gw_process_threads", .gauge, "Threads of the gateway process (/proc/self/status).")
    public static let openFileDescriptors = MetricDefinition(
        "devenv_gw_process_open_fds", .gauge, "Open file descriptors of the gateway process (/proc/self/fd).")
    public static let memoryLimit = MetricDefinition(
        "devenv_gw_process_memory_limit_bytes", .gauge,
        "The memory the gateway may use: its cgroup's limit, or the host's memory when there is none.")
    public static let maxFileDescriptors = MetricDefinition(
        "devenv_gw_process_max_fds", .gauge, "The gateway's soft limit of open file descriptors.")

    /// Every metric, in the order the README lists them.
    public static let all: [MetricDefinition] = [
        connectionsOpen, connectionsRefused, loginsAccepted, loginsRefused, preAuthEvicted, preAuthDropped,
        loginDuration, sessionsOpen, sessionsStarted, bytes, workspaces, workspacesCreated, workspacesStarted,
        workspacesStoppedIdle, engineErrors, auditDropped, auditFallback, buildInfo, startTime, residentMemory,
        memoryLimit, threads, openFileDescriptors, maxFileDescriptors,
    ]

    /// Histogram buckets of `loginDuration`, in seconds: a warm login takes a fraction of a
    /// second, a cold one about one, and a busy server's p99 several.
    public static let loginDurationBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60]

    // MARK: Handles on hot paths, made once

    /// Bytes delivered to workspaces; the bridge adds each flush's total.
    public static let bytesToWorkspace = bytes.counter("to_workspace")
    /// Bytes delivered to clients; the bridge adds each flush's total.
    public static let bytesToClient = bytes.counter("to_client")
}

/// Why a login was refused (`devenv_gw_logins_refused_total{reason}`).
public enum LoginRefusal: String, CaseIterable, Sendable {
    /// No key offered is registered to that name, or the name is unknown (they look alike).
    case unknownKey = "unknown_key"
    /// A registered key whose signature did not verify.
    case badSignature = "bad_signature"
    /// max-auth-tries reached.
    case tooManyAttempts = "too_many_attempts"
    /// auth-timeout passed before a valid signature.
    case timeout
    /// Pushed out by the pre-auth limits while authenticating.
    case evicted
    /// max-connections-per-user: the user already holds all their connections.
    case cap
    /// The workspace could not be created, started or reached (engine or sshd failure).
    case engineError = "engine_error"
}

/// What a channel runs (`devenv_gw_sessions_open{kind}`, `devenv_gw_sessions_started_total{kind}`).
public enum SessionKind: String, CaseIterable, Sendable {
    case shell, exec, sftp
    /// Another subsystem than sftp.
    case subsystem
    case directTCPIP = "direct-tcpip"
    case forwardedTCPIP = "forwarded-tcpip"
    case agent

    /// The counters of each kind, made once.
    public var started: Counter { Self.startedCounters[self]! }
    /// The open gauge of each kind, made once.
    public var open: Meter { Self.openMeters[self]! }

    private static let startedCounters = Dictionary(
        uniqueKeysWithValues: allCases.map { ($0, GatewayMetric.sessionsStarted.counter($0.rawValue)) })
    private static let openMeters = Dictionary(
        uniqueKeysWithValues: allCases.map { ($0, GatewayMetric.sessionsOpen.meter($0.rawValue)) })
}
