import Foundation
import UserNames

/// Who is using their workspace, and when each user last did, shared between the gateway
/// (which records sessions) and admin commands such as `ps` (which read them).
///
/// The time of last activity is the modification time of one file per user in
/// `directory`, so it survives gateway restarts and needs no schema. Live session counts
/// are kept in memory by the gateway process that owns the sessions.
public final class WorkspaceActivityLog: @unchecked Sendable {
    public let directory: String
    private let lock = NSLock()
    private var sessions: [String: Int] = [:]

    public init(directory: String) {
        self.directory = directory
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
    }

    /// A session of `user` began (after authentication, before the workspace is ensured).
    public func sessionStarted(_ user: UserName) {
        lock.lock()
        sessions[user.value, default: 0] += 1
        lock.unlock()
        touch(user)
    }

    /// A session of `user` ended.
    public func sessionEnded(_ user: UserName) {
        lock.lock()
        sessions[user.value] = max(0, (sessions[user.value] ?? 1) - 1)
        lock.unlock()
        touch(user)
    }

    /// Sessions of `user` open in this process right now.
    public func activeSessions(_ user: UserName) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return sessions[user.value] ?? 0
    }

    /// When `user` last started or ended a session, if ever.
    public func lastActivity(_ user: UserName) -> Date? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path(for: user))
        return attributes?[.modificationDate] as? Date
    }

    private func path(for user: UserName) -> String {
        (directory as NSString).appendingPathComponent(user.value)
    }

    private func touch(_ user: UserName) {
        let fd = open(path(for: user), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        futimens(fd, nil)
        close(fd)
    }
}
