import Foundation
import UserNames

/// One lock per user that keeps that user's workspace operations in order, without holding
/// up anyone else's.
///
/// With a directory, the lock is also a file there (`<user>.lock`, held with `flock`), so it
/// is shared by every devenv-gw process of an instance: a login in `serve` waits for an
/// admin's `restore` or `upgrade` running in another process. The holder writes what it is
/// doing into the file, so a waiter that gives up can say why the workspace is busy.
final class WorkspaceLocks: @unchecked Sendable {
    private let directory: String?
    private let guardLock = NSLock()
    private var locks: [String: NSLock] = [:]
    /// What holds each user's lock in this process.
    private var holders: [String: String] = [:]
    /// The thread holding each user's lock, so an operation made of others (a restore
    /// that stops, saves and replaces) can hold the lock across all of them.
    private var owners: [String: pthread_t] = [:]

    init(directory: String?) {
        self.directory = directory
    }

    /// Runs `body` holding `user`'s lock, recorded as `purpose` (e.g. "being restored").
    /// With `wait`, gives up after that many seconds and throws `WorkspaceError.locked`
    /// naming what holds the lock; without, waits as long as it takes. On a thread that
    /// holds the lock already, `body` just runs.
    func withLock<T>(_ user: UserName, for purpose: String, waitingAtMost wait: TimeInterval? = nil,
                     _ body: () throws -> T) throws -> T {
        let deadline = wait.map { Date().addingTimeInterval($0) }
        let key = user.value
        guardLock.lock()
        if let owner = owners[key], pthread_equal(owner, pthread_self()) != 0 {
            guardLock.unlock()
            return try body()
        }
        let lock = locks[key] ?? NSLock()
        locks[key] = lock
        guardLock.unlock()
        if let deadline {
            guard lock.lock(before: deadline) else { throw WorkspaceError.locked(user: key, holder: holder(of: key)) }
        } else {
            lock.lock()
        }
        defer { lock.unlock() }
        let file = try lockFile(for: key, purpose: purpose, deadline: deadline)
        defer { file.map(Self.release) }
        setHolder(purpose, of: key)
        defer { setHolder(nil, of: key) }
        return try body()
    }

    /// Records what holds the lock and which thread; nil when it is released.
    private func setHolder(_ purpose: String?, of key: String) {
        guardLock.lock()
        holders[key] = purpose
        owners[key] = purpose == nil ? nil : pthread_self()
        guardLock.unlock()
    }

    private func holder(of key: String) -> String {
        guardLock.lock()
        defer { guardLock.unlock() }
        return holders[key] ?? "another operation in this process"
    }


    /// Takes the user's lock file, if there is a directory; returns its descriptor.
    private func lockFile(for key: String, purpose: String, deadline: Date?) throws -> Int32? {
        guard let directory else { return nil }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // The name was validated as a UserName: it cannot leave the directory.
        let path = (directory as NSString).appendingPathComponent("\(key).lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        while flock(fd, LOCK_EX | (deadline == nil ? 0 : LOCK_NB)) != 0 {
            let failure = errno
            guard failure == EWOULDBLOCK || failure == EINTR else {
                close(fd)
                throw CocoaError(.fileLocking, userInfo: [NSFilePathErrorKey: path])
            }
            if let deadline, Date() >= deadline {
                let holder = Self.contents(of: fd)
                close(fd)
                throw WorkspaceError.locked(user: key, holder: holder.isEmpty ? "another devenv-gw process" : holder)
            }
            usleep(50_000)
        }
        let note = "\(purpose) (\(ProcessInfo.processInfo.processName) pid \(getpid()), since "
            + "\(ISO8601DateFormatter().string(from: Date())))"
        ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
        return fd
    }

    private static func contents(of fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = pread(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }

    private static func release(_ fd: Int32) {
        ftruncate(fd, 0)
        close(fd)  // closing the descriptor releases the flock
    }
}

extension WorkspaceLocks {
    /// Runs a login's `body` under the user's lock, waiting at most `wait` for another
    /// operation; the engine's errors become `WorkspaceError.engine`. Every backend's `ensure`.
    func forLogin<T>(of user: UserName, waitingAtMost wait: TimeInterval, _ body: () throws -> T) throws -> T {
        try withLock(user, for: "being started for a login", waitingAtMost: wait) { try mapEngineErrors(body) }
    }

    /// Runs an idle stop's `body` under the user's lock, only if `isIdle` still holds
    /// there (a login in progress holds the same lock); false without running it otherwise.
    func forStop(of user: UserName, isIdle: () -> Bool, _ body: () throws -> Bool) throws -> Bool {
        try withLock(user, for: "being stopped") {
            guard isIdle() else { return false }
            return try mapEngineErrors(body)
        }
    }
}
