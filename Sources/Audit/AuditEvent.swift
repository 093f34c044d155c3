import Foundation

/// A field name fixed by this module and its value, which may come from a user.
public struct AuditFieldValue: Sendable, Equatable {
    public let field: AuditField
    public let value: String
}

/// One audit record: its type, a readable MESSAGE and its own fields.
///
/// Build events with the static constructors (`.authAccepted(…)`, `.sessionEnd(…)`, …) and
/// hand them to `AuditLog.record(_:)`. Field names are fixed by `AuditField`; values are
/// written so that no value can add or change a field (see `JournaldWriter`), and user
/// text inside MESSAGE has its control characters escaped.
public struct AuditEvent: Sendable {
    /// Values longer than this many UTF-8 bytes are cut (an exec command can be large);
    /// the cut fields are named in DEVENV_TRUNCATED.
    public static let maxValueBytes = 64 * 1024

    public let type: AuditEventType
    public let message: String
    /// The event's own fields, in order, after MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER,
    /// MESSAGE and DEVENV_EVENT.
    public let fields: [AuditFieldValue]

    init(_ type: AuditEventType, message: String, _ pairs: [(AuditField, String?)]) {
        self.type = type
        self.message = message
        var fields: [AuditFieldValue] = []
        var cut: [String] = []
        for (field, value) in pairs {
            guard let value else { continue }
            let clipped = Self.clipped(value)
            if clipped.utf8.count != value.utf8.count { cut.append(field.rawValue) }
            fields.append(AuditFieldValue(field: field, value: clipped))
        }
        if !cut.isEmpty { fields.append(AuditFieldValue(field: .truncated, value: cut.joined(separator: " "))) }
        self.fields = fields
    }

    /// The value of one of the event's own fields.
    public subscript(field: AuditField) -> String? {
        fields.first { $0.field == field }?.value
    }

    /// Every field as written, the common ones first.
    public func record(identifier: String = "devenv-gw") -> [AuditFieldValue] {
        [
            AuditFieldValue(field: .messageID, value: type.messageID),
            AuditFieldValue(field: .priority, value: String(type.priority.rawValue)),
            AuditFieldValue(field: .syslogIdentifier, value: identifier),
            AuditFieldValue(field: .message, value: message),
            AuditFieldValue(field: .event, value: type.rawValue),
        ] + fields
    }

    // MARK: - Authentication

    /// A user proved a registered key: identity is decided.
    public static func authAccepted(_ connection: AuditConnection, user: String, key: AuditKey) -> AuditEvent {
        AuditEvent(.authAccepted,
                   message: "accepted publickey for \(quoted(user)) from \(from(connection)): \(describe(key))",
                   connectionFields(connection) + [(.user, user)] + keyFields(key))
    }

    /// A login attempt that was refused. `user` is the name as the client sent it; `key` is
    /// the key offered, if any; `reason` is ours (e.g. "unknown user or key", "bad
    /// signature", "too many attempts", "auth timeout").
    public static func authFailed(_ connection: AuditConnection, user: String, key: AuditKey?,
                                  reason: String) -> AuditEvent {
        let keyText = key.map { " (\(describe($0)))" } ?? ""
        return AuditEvent(.authFailed,
                          message: "refused login as \(quoted(user)) from \(from(connection)): \(escaped(reason))\(keyText)",
                          connectionFields(connection) + [(.user, user)] + (key.map(keyFields) ?? []) + [(.reason, reason)])
    }

    /// An authenticated connection was ended because an admin removed its user or the key
    /// it logged in with; `reason` says which.
    public static func accessRevoked(_ connection: AuditConnection, user: String, key: AuditKey?,
                                     reason: String) -> AuditEvent {
        let keyText = key.map { " (\(describe($0)))" } ?? ""
        return AuditEvent(.accessRevoked,
                          message: "ended the connection of \(quoted(user)) from \(from(connection)): access revoked, "
                              + "\(escaped(reason))\(keyText)",
                          connectionFields(connection) + [(.user, user)] + (key.map(keyFields) ?? []) + [(.reason, reason)])
    }

    // MARK: - Caps

    /// A connection was refused at a cap. `user` is set once the connection had
    /// authenticated (the per-user cap); `limit` names the cap (`max-connections`,
    /// `max-connections-per-user`, `file-descriptors`) and `limitValue` its value.
    public static func connectionRefused(_ connection: AuditConnection, user: String? = nil, limit: String,
                                         limitValue: Int, reason: String) -> AuditEvent {
        let who = user.map { " of \(quoted($0))" } ?? ""
        return AuditEvent(.connectionRefused,
                          message: "refused connection\(who) from \(from(connection)): \(escaped(reason))",
                          connectionFields(connection) + [(.user, user), (.limit, limit),
                                                          (.limitValue, String(limitValue)), (.reason, reason)])
    }

    /// A channel open was refused: at a cap (`limit` and its value), or because the
    /// connection's access was revoked (no limit). `channelType` is the SSH channel type asked for.
    public static func channelRefused(_ connection: AuditConnection, user: String, channelType: String,
                                      limit: String? = nil, limitValue: Int? = nil, reason: String) -> AuditEvent {
        AuditEvent(.channelRefused,
                   message: "refused \(quoted(channelType)) channel for \(quoted(user)) from \(from(connection)): "
                       + escaped(reason),
                   connectionFields(connection) + [(.user, user), (.channelType, channelType), (.limit, limit),
                                                   (.limitValue, limitValue.map(String.init)), (.reason, reason)])
    }

    // MARK: - Sessions (channels)

    /// A channel began: a shell, an exec, a subsystem or a forwarding channel.
    public static func sessionStart(_ connection: AuditConnection, user: String, channel: AuditChannel,
                                    container: String? = nil) -> AuditEvent {
        AuditEvent(.sessionStart,
                   message: "\(quoted(user)) started \(describe(channel)) on channel \(channel.id) from \(from(connection))",
                   connectionFields(connection) + [(.user, user)] + channelFields(channel) + [(.container, container)])
    }

    /// A channel ended. `bytesIn` went from the client to the workspace, `bytesOut` from the
    /// workspace to the client; `exitStatus` or `exitSignal` as the workspace reported them.
    public static func sessionEnd(_ connection: AuditConnection, user: String, channel: AuditChannel,
                                  duration: TimeInterval, bytesIn: UInt64, bytesOut: UInt64,
                                  exitStatus: Int? = nil, exitSignal: String? = nil,
                                  container: String? = nil) -> AuditEvent {
        let milliseconds = Int64((max(0, duration) * 1000).rounded())
        var outcome = ""
        if let exitStatus { outcome = ", exit status \(exitStatus)" }
        if let exitSignal { outcome += ", killed by signal \(escaped(exitSignal))" }
        return AuditEvent(.sessionEnd,
                          message: "\(quoted(user)) ended \(describe(channel)) on channel \(channel.id) after "
                              + String(format: "%.3f s", Double(milliseconds) / 1000)
                              + "\(outcome), \(bytesIn) bytes in, \(bytesOut) bytes out",
                          connectionFields(connection) + [(.user, user)] + channelFields(channel) + [
                              (.durationMS, String(milliseconds)), (.bytesIn, String(bytesIn)),
                              (.bytesOut, String(bytesOut)), (.exitStatus, exitStatus.map(String.init)),
                              (.exitSignal, exitSignal), (.container, container),
                          ])
    }

    // MARK: - Forwarding

    /// A forwarding request or channel was allowed.
    public static func forwardingOpened(_ connection: AuditConnection, user: String,
                                        forwarding: AuditForwarding) -> AuditEvent {
        AuditEvent(.forwardingOpened,
                   message: "\(quoted(user)) opened \(describe(forwarding)) from \(from(connection))",
                   connectionFields(connection) + [(.user, user)] + forwardingFields(forwarding))
    }

    /// A forwarding request or channel was refused by policy or failed upstream.
    public static func forwardingRefused(_ connection: AuditConnection, user: String, forwarding: AuditForwarding,
                                         reason: String) -> AuditEvent {
        AuditEvent(.forwardingRefused,
                   message: "refused \(describe(forwarding)) for \(quoted(user)) from \(from(connection)): \(escaped(reason))",
                   connectionFields(connection) + [(.user, user)] + forwardingFields(forwarding) + [(.reason, reason)])
    }

    // MARK: - Workspaces

    /// A workspace container was created; `sessionID` when a login caused it, `admin`
    /// when an admin command did.
    public static func workspaceCreated(_ workspace: AuditWorkspace, sessionID: String? = nil,
                                        by admin: AuditAdmin? = nil) -> AuditEvent {
        AuditEvent(.workspaceCreated,
                   message: "created workspace \(workspace.container) for \(quoted(workspace.user))"
                       + (workspace.image.map { " from \(escaped($0))" } ?? "") + cause(sessionID, admin),
                   workspaceFields(workspace, sessionID, admin))
    }

    /// A stopped workspace container was started.
    public static func workspaceStarted(_ workspace: AuditWorkspace, sessionID: String? = nil,
                                        by admin: AuditAdmin? = nil) -> AuditEvent {
        AuditEvent(.workspaceStarted,
                   message: "started workspace \(workspace.container) for \(quoted(workspace.user))" + cause(sessionID, admin),
                   workspaceFields(workspace, sessionID, admin))
    }

    /// A workspace container was stopped; `reason` e.g. "idle", "admin"; `idleFor` the time
    /// since its last session ended, when it was stopped for being idle.
    public static func workspaceStopped(_ workspace: AuditWorkspace, reason: String, idleFor: TimeInterval? = nil,
                                        by admin: AuditAdmin? = nil) -> AuditEvent {
        let idle = idleFor.map { " after \(Int($0.rounded())) s without a session" } ?? ""
        return AuditEvent(.workspaceStopped,
                          message: "stopped workspace \(workspace.container) of \(quoted(workspace.user)): "
                              + "\(escaped(reason))\(idle)" + cause(nil, admin),
                          workspaceFields(workspace, nil, admin)
                              + [(.reason, reason), (.idleSeconds, idleFor.map { String(Int($0.rounded())) })])
    }

    /// A workspace container was replaced by one from another image; the volume stays.
    public static func workspaceUpgraded(_ workspace: AuditWorkspace, previousImage: String?,
                                         by admin: AuditAdmin? = nil) -> AuditEvent {
        AuditEvent(.workspaceUpgraded,
                   message: "upgraded workspace \(workspace.container) of \(quoted(workspace.user))"
                       + (previousImage.map { " from \(escaped($0))" } ?? "")
                       + (workspace.image.map { " to \(escaped($0))" } ?? "") + cause(nil, admin),
                   workspaceFields(workspace, nil, admin) + [(.previousImage, previousImage)])
    }

    /// A user's home volume was written to an archive.
    public static func workspaceBackedUp(_ workspace: AuditWorkspace, archive: String, bytes: Int64? = nil,
                                         by admin: AuditAdmin? = nil) -> AuditEvent {
        AuditEvent(.workspaceBackedUp,
                   message: "backed up the home of \(quoted(workspace.user)) to \(quoted(archive))"
                       + (bytes.map { " (\($0) bytes)" } ?? "") + cause(nil, admin),
                   workspaceFields(workspace, nil, admin) + [(.archive, archive), (.archiveBytes, bytes.map(String.init))])
    }

    /// A user's home volume was restored from an archive.
    public static func workspaceRestored(_ workspace: AuditWorkspace, archive: String,
                                         by admin: AuditAdmin? = nil) -> AuditEvent {
        AuditEvent(.workspaceRestored,
                   message: "restored the home of \(quoted(workspace.user)) from \(quoted(archive))" + cause(nil, admin),
                   workspaceFields(workspace, nil, admin) + [(.archive, archive)])
    }

    // MARK: - Admin changes

    /// `adduser`: a user was registered with `keyCount` keys (each also gets a key-added event).
    public static func userAdded(_ user: String, uid: Int, keyCount: Int, by admin: AuditAdmin) -> AuditEvent {
        AuditEvent(.userAdded,
                   message: "\(admin.displayName) added user \(quoted(user)) (uid \(uid)) with \(keyCount) "
                       + (keyCount == 1 ? "key" : "keys"),
                   [(.user, user), (.uid, String(uid)), (.keyCount, String(keyCount))] + adminFields(admin))
    }

    /// `deluser`: a user's registration and keys were removed; `keyCount` keys went with it.
    public static func userRemoved(_ user: String, keyCount: Int? = nil, by admin: AuditAdmin) -> AuditEvent {
        AuditEvent(.userRemoved,
                   message: "\(admin.displayName) removed user \(quoted(user))"
                       + (keyCount.map { " and \($0) \($0 == 1 ? "key" : "keys")" } ?? ""),
                   [(.user, user), (.keyCount, keyCount.map(String.init))] + adminFields(admin))
    }

    /// A key was registered for a user (by `adduser` or `keys add`).
    public static func keyAdded(_ key: AuditKey, to user: String, by admin: AuditAdmin) -> AuditEvent {
        AuditEvent(.keyAdded,
                   message: "\(admin.displayName) added key \(describe(key)) to \(quoted(user))",
                   [(.user, user)] + keyFields(key) + adminFields(admin))
    }

    /// A key was removed from a user (`keys remove`).
    public static func keyRemoved(_ key: AuditKey, from user: String, by admin: AuditAdmin) -> AuditEvent {
        AuditEvent(.keyRemoved,
                   message: "\(admin.displayName) removed key \(describe(key)) from \(quoted(user))",
                   [(.user, user)] + keyFields(key) + adminFields(admin))
    }

    // MARK: - Field groups

    private static func connectionFields(_ connection: AuditConnection) -> [(AuditField, String?)] {
        [(.sessionID, connection.sessionID), (.sourceAddress, connection.sourceAddress),
         (.sourcePort, String(connection.sourcePort))]
    }

    private static func keyFields(_ key: AuditKey) -> [(AuditField, String?)] {
        [(.keyType, key.type), (.keyFingerprint, key.fingerprint), (.keyComment, key.comment.isEmpty ? nil : key.comment)]
    }

    private static func channelFields(_ channel: AuditChannel) -> [(AuditField, String?)] {
        [(.channelID, String(channel.id)), (.channelKind, channel.kind.rawValue), (.command, channel.command),
         (.subsystem, channel.subsystem), (.term, channel.term)] + (channel.forwarding.map(forwardingFields) ?? [])
    }

    private static func forwardingFields(_ forwarding: AuditForwarding) -> [(AuditField, String?)] {
        [(.forwardKind, forwarding.kind.rawValue), (.forwardHost, forwarding.host),
         (.forwardPort, forwarding.port.map(String.init)), (.forwardPath, forwarding.path),
         (.originHost, forwarding.originHost), (.originPort, forwarding.originPort.map(String.init))]
    }

    private static func workspaceFields(_ workspace: AuditWorkspace, _ sessionID: String?,
                                        _ admin: AuditAdmin?) -> [(AuditField, String?)] {
        [(.sessionID, sessionID), (.user, workspace.user), (.container, workspace.container),
         (.image, workspace.image), (.volume, workspace.volume)] + (admin.map(adminFields) ?? [])
    }

    private static func adminFields(_ admin: AuditAdmin) -> [(AuditField, String?)] {
        [(.adminUID, String(admin.uid)), (.adminUser, admin.name), (.adminSudoUser, admin.sudoUser)]
    }

    // MARK: - Readable text

    private static func from(_ connection: AuditConnection) -> String {
        "\(escaped(connection.sourceAddress)) port \(connection.sourcePort)"
    }

    private static func describe(_ key: AuditKey) -> String {
        "\(escaped(key.type)) \(escaped(key.fingerprint))"
    }

    private static func describe(_ channel: AuditChannel) -> String {
        var text: String
        switch channel.kind {
        case .shell: text = "shell"
        case .exec: text = "exec " + quoted(shortened(channel.command ?? ""))
        case .subsystem: text = "subsystem " + quoted(channel.subsystem ?? "")
        case .forwarding: text = channel.forwarding.map(describe) ?? "forwarding"
        }
        if let term = channel.term { text += " with a pty (\(quoted(shortened(term))))" }
        return text
    }

    private static func describe(_ forwarding: AuditForwarding) -> String {
        var text = "forwarding \(forwarding.kind.rawValue)"
        if let host = forwarding.host { text += " " + escaped(host) + (forwarding.port.map { ":\($0)" } ?? "") }
        if let path = forwarding.path { text += " " + quoted(path) }
        return text
    }

    private static func cause(_ sessionID: String?, _ admin: AuditAdmin?) -> String {
        if let sessionID { return " for session \(escaped(sessionID))" }
        if let admin { return " by \(admin.displayName)" }
        return ""
    }

    private static func shortened(_ text: String) -> String {
        text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    /// User text for MESSAGE: every control or format character (line breaks, escape
    /// sequences, bidi overrides) and the backslash become visible escapes, so the text
    /// stays on one line and reads as what was sent.
    public static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if scalar == "\\" {
                out += "\\\\"
            } else if value < 0x20 || value == 0x7f {
                out += String(format: "\\x%02x", value)
            } else if (0x80...0x9f).contains(value) || value == 0x2028 || value == 0x2029
                        || scalar.properties.generalCategory == .format {
                out += "\\u{\(String(value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `escaped(text)` in double quotes, with the quotes inside escaped too.
    public static func quoted(_ text: String) -> String {
        "\"" + escaped(text).replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func clipped(_ value: String) -> String {
        guard value.utf8.count > maxValueBytes else { return value }
        var out = ""
        var bytes = 0
        for scalar in value.unicodeScalars {
            bytes += String(scalar).utf8.count
            if bytes > maxValueBytes { break }
            out.unicodeScalars.append(scalar)
        }
        return out
    }
}
