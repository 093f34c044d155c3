/// The kinds of audit events. Each has a MESSAGE_ID that never changes, so an admin can
/// select one kind with `journalctl MESSAGE_ID=…` across versions of the gateway.
public enum AuditEventType: String, CaseIterable, Sendable {
    case authAccepted = "auth-accepted"
    case authFailed = "auth-failed"
    case accessRevoked = "access-revoked"
    case connectionRefused = "connection-refused"
    case channelRefused = "channel-refused"
    case sessionStart = "session-start"
    case sessionEnd = "session-end"
    case forwardingOpened = "forwarding-opened"
    case forwardingRefused = "forwarding-refused"
    case workspaceCreated = "workspace-created"
    case workspaceStarted = "workspace-started"
    case workspaceStopped = "workspace-stopped"
    case workspaceUpgraded = "workspace-upgraded"
    case workspaceBackedUp = "workspace-backed-up"
    case workspaceRestored = "workspace-restored"
    case userAdded = "user-added"
    case userRemoved = "user-removed"
    case keyAdded = "key-added"
    case keyRemoved = "key-removed"

    /// The journal's MESSAGE_ID: 128 bits in 32 lowercase hex digits, fixed per type.
    public var messageID: String {
        switch self {
        case .authAccepted: return "88d339d69cc94c108d6b7ae50c3dc96a"
        case .authFailed: return "31810941d26448f6ae3206f9bd95b18b"
        case .accessRevoked: return "71e3a62255455e8516fb2025e0c0a59c"
        case .connectionRefused: return "6ba090dedbf74973af4920333bac20b6"
        case .channelRefused: return "39c51f229e2a4ce1b72d85cc08a7b29e"
        case .sessionStart: return "680006d517c849d4966501f198a5a2a4"
        case .sessionEnd: return "2663d93e9b004d729c0ed5c48f92fdc5"
        case .forwardingOpened: return "493daab73f97441d886087f256eb9ddb"
        case .forwardingRefused: return "a131683407304073b9d92cfe10fc0ea0"
        case .workspaceCreated: return "9232d78f5a7d4f4486180b5a86cca7c2"
        case .workspaceStarted: return "94e113d860e740158ee6171f94fc51b5"
        case .workspaceStopped: return "2cb8c789cc3b47f59de0ec53c5c47777"
        case .workspaceUpgraded: return "6977e8ef45fc4eda910b1c00b03748f8"
        case .workspaceBackedUp: return "0067229c7c6644279f4195e1958418d9"
        case .workspaceRestored: return "e30ed6a5eb414fbbbb03a81f11cc7dce"
        case .userAdded: return "db746a451b87443fa599af23dcab5913"
        case .userRemoved: return "d77dc736d2094ab78ba78a626d010450"
        case .keyAdded: return "1d823b6cbfa44b9fb56a6c5e806cfed7"
        case .keyRemoved: return "a6533f5d8572421491c2c1fded4cb516"
        }
    }

    /// Refusals and failures are notices, changes of who may log in are notices, and the
    /// normal course of sessions and workspaces is informational.
    public var priority: AuditPriority {
        switch self {
        case .authFailed, .accessRevoked, .connectionRefused, .channelRefused, .forwardingRefused, .userAdded, .userRemoved, .keyAdded, .keyRemoved:
            return .notice
        default:
            return .info
        }
    }
}

/// syslog priorities as journald stores them in PRIORITY.
public enum AuditPriority: Int, Sendable {
    case emergency = 0, alert, critical, error, warning, notice, info, debug
}

/// The names of the fields an event can carry. Only these names are ever written: no
/// part of a field name comes from a user.
public enum AuditField: String, CaseIterable, Sendable {
    // Set on every event by the writer.
    case messageID = "MESSAGE_ID"
    case priority = "PRIORITY"
    case syslogIdentifier = "SYSLOG_IDENTIFIER"
    case message = "MESSAGE"
    /// The event type's name, e.g. `auth-accepted`.
    case event = "DEVENV_EVENT"

    // One SSH connection from a client: its id is on every event the connection causes.
    case sessionID = "DEVENV_SESSION_ID"
    case sourceAddress = "DEVENV_SOURCE_ADDRESS"
    case sourcePort = "DEVENV_SOURCE_PORT"

    // Users and keys.
    case user = "DEVENV_USER"
    case uid = "DEVENV_UID"
    case keyType = "DEVENV_KEY_TYPE"
    case keyFingerprint = "DEVENV_KEY_FINGERPRINT"
    case keyComment = "DEVENV_KEY_COMMENT"
    case keyCount = "DEVENV_KEY_COUNT"
    case reason = "DEVENV_REASON"
    /// The cap a refusal hit, e.g. `max-connections-per-user`, and its value.
    case limit = "DEVENV_LIMIT"
    case limitValue = "DEVENV_LIMIT_VALUE"

    // Channels ("sessions" in SSH terms) within a connection.
    case channelID = "DEVENV_CHANNEL_ID"
    case channelKind = "DEVENV_CHANNEL_KIND"
    /// The SSH channel type of a refused channel open, e.g. `session`, `direct-tcpip`.
    case channelType = "DEVENV_CHANNEL_TYPE"
    case command = "DEVENV_COMMAND"
    case subsystem = "DEVENV_SUBSYSTEM"
    case term = "DEVENV_TERM"
    case durationMS = "DEVENV_DURATION_MS"
    case bytesIn = "DEVENV_BYTES_IN"
    case bytesOut = "DEVENV_BYTES_OUT"
    case exitStatus = "DEVENV_EXIT_STATUS"
    case exitSignal = "DEVENV_EXIT_SIGNAL"

    // Forwarding.
    case forwardKind = "DEVENV_FORWARD_KIND"
    case forwardHost = "DEVENV_FORWARD_HOST"
    case forwardPort = "DEVENV_FORWARD_PORT"
    case forwardPath = "DEVENV_FORWARD_PATH"
    case originHost = "DEVENV_ORIGIN_HOST"
    case originPort = "DEVENV_ORIGIN_PORT"

    // Workspaces.
    case container = "DEVENV_CONTAINER"
    case image = "DEVENV_IMAGE"
    case previousImage = "DEVENV_PREVIOUS_IMAGE"
    case volume = "DEVENV_VOLUME"
    case archive = "DEVENV_ARCHIVE"
    case archiveBytes = "DEVENV_ARCHIVE_BYTES"
    case idleSeconds = "DEVENV_IDLE_SECONDS"

    // The operating-system user who ran an admin command.
    case adminUID = "DEVENV_ADMIN_UID"
    case adminUser = "DEVENV_ADMIN_USER"
    case adminSudoUser = "DEVENV_ADMIN_SUDO_USER"

    /// Names of fields whose value was cut to `AuditEvent.maxValueBytes`, space-separated.
    case truncated = "DEVENV_TRUNCATED"
}
