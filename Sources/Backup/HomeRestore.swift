import DockerEngine
import Foundation
import Registry
import SSHKeys
import UserNames
import Workspaces

/// What a restore was asked to do.
public struct RestoreRequest {
    /// The user to restore.
    public var user: UserName
    /// The user the archive belongs to, when it is restored under another name.
    public var renamedFrom: UserName?
    /// Replace a home that holds data (it is saved first, into `saveDirectory`).
    public var force: Bool
    public var saveDirectory: String

    public init(user: UserName, renamedFrom: UserName? = nil, force: Bool = false, saveDirectory: String) {
        self.user = user
        self.renamedFrom = renamedFrom
        self.force = force
        self.saveDirectory = saveDirectory
    }
}

/// What a restore did.
public struct RestoreReport {
    public enum Registration {
        /// Registered from the archive's record: same uid, keys and workspace host key.
        case restored
        /// Registered anew under another name with the archive's keys (a uid of its own).
        case registeredRenamed
        /// Already registered: registration, keys and host key left as they were.
        case kept
    }

    public let summary: BackupSummary
    public let registration: Registration
    /// The uid that owns the restored files.
    public let uid: Int
    /// Where the replaced home was saved (with `force`), as a backup archive.
    public let savedHome: String?
}

/// Why a restore did not happen; nothing was changed.
public enum RestoreRefusal: Error, CustomStringConvertible {
    case homeHasData(user: String, volume: String)
    case unknownOwner(user: String, volume: String)

    public var description: String {
        switch self {
        case .homeHasData(let user, let volume):
            return "the home of \(user) (volume \(volume)) holds data; restore refuses to merge into it. "
                + "Add --force to replace it (the current home is saved as a backup first)"
        case .unknownOwner(let user, let volume):
            return "the home volume \(volume) exists but the registry has no record of \(user), so it cannot be "
                + "saved before it is replaced; back up the volume by other means and remove it first"
        }
    }
}

/// A restore that failed after it began changing things: what was undone, and where the
/// replaced home is, if there was one.
public struct RestoreFailure: Error, CustomStringConvertible {
    public let reason: Error
    /// Whether the restore had registered the user (that registration was removed again).
    public let unregistered: Bool
    public let savedHome: String?

    public var description: String {
        var text = "restore failed: \(reason); the partly written home was removed"
        if unregistered { text += " and the registration undone" }
        if let savedHome { text += "; the previous home is saved in \(savedHome) (restore it with --force)" }
        return text
    }
}

/// Brings a user back from a backup archive: checks all of it first, then registers the
/// user (unless registered) and writes their home into a fresh volume.
public struct HomeRestore {
    public let registry: Registry
    public let workspaces: any WorkspaceBackend
    /// Size of each read from the archive.
    static let chunkSize = 1 << 16

    public init(registry: Registry, workspaces: any WorkspaceBackend) {
        self.registry = registry
        self.workspaces = workspaces
    }

    /// Reads `input` through once to check it, refuses when the request cannot be met
    /// (changing nothing), then restores. `progress` hears of the bytes read in each pass,
    /// after every chunk; when it throws, the restore stops and rolls back.
    public func run(_ request: RestoreRequest, from input: ArchiveInput,
                    progress: @escaping (_ pass: Int, _ bytes: Int64) throws -> Void = { _, _ in }) throws -> RestoreReport {
        let user = request.user
        // 1. The whole archive, before anything is touched.
        let expected = request.renamedFrom ?? user
        let reader = BackupReader { manifest in
            guard manifest.user == expected.value else {
                if request.renamedFrom != nil {
                    throw BackupError.corrupt("it holds the home of \(manifest.user), not of \(expected) as "
                                              + "--rename-from says")
                }
                throw BackupError.otherUser(archive: manifest.user, requested: user.value)
            }
            return RestoreTarget(directory: user.value, uid: manifest.uid, emit: nil)
        }
        let checked = try Self.readAll(input, into: reader) { try progress(1, $0) }
        // The rest holds the workspace from the check to the last byte written: a login in
        // between could otherwise start it and write into a home about to be replaced.
        return try workspaces.exclusively(user, for: "being restored") {
            try restore(checked, request, from: input, progress: progress)
        }
    }

    // MARK: - Internals

    /// Steps 2 to 4 of `run`, holding the user's workspace.
    private func restore(_ checked: BackupSummary, _ request: RestoreRequest, from input: ArchiveInput,
                         progress: @escaping (_ pass: Int, _ bytes: Int64) throws -> Void) throws -> RestoreReport {
        let user = request.user
        let manifest = checked.manifest

        // 2. What the registry and the engine hold now; refusals change nothing.
        var record = manifest.record
        record.name = user.value
        let current = try registry.user(named: user)
        if current == nil { try registry.checkRegistration(of: record, keepingUID: request.renamedFrom == nil) }
        let resources = try workspaces.resources(of: user)
        let volume = workspaces.settings.volumeName(for: user)
        let hasData = try resources.volumeExists && workspaces.homeHasData(user)
        if hasData && !request.force { throw RestoreRefusal.homeHasData(user: user.value, volume: volume) }

        // 3. With --force, the workspace is stopped (ending its sessions and processes), so
        // the saved copy is the home as it was at the last write, then the home is saved
        // before it is replaced.
        var savedHome: String?
        if hasData {
            guard let owner = try registry.recordIncludingRemoved(of: user) else {
                throw RestoreRefusal.unknownOwner(user: user.value, volume: volume)
            }
            try workspaces.stop(user)
            savedHome = try saveCurrentHome(of: user, record: owner, in: request.saveDirectory)
        }

        // 4. Register and write the home, undoing both on failure.
        var registered = false
        var uid = current?.uid ?? record.uid
        let register = {
            guard current == nil else { return }
            if request.renamedFrom == nil {
                uid = try registry.addUser(restoring: record).uid
            } else {
                let keys = try record.keys.map { try PublicKey(parsing: $0) }
                uid = try registry.addUser(user, keys: keys).uid
            }
            registered = true
        }
        do {
            if manifest.hasHome {
                try workspaces.replaceHome(of: user, beforeWrite: register,
                                           from: try homeSource(input, user: user, expected: manifest, uid: { uid },
                                                                progress: { try progress(2, $0) }))
            } else {
                // The user had no home yet: the next login creates one from the skeleton.
                try workspaces.removeHomeVolume(of: user)
                try register()
            }
        } catch {
            if registered { try? registry.removeUser(user) }
            // Safe whatever step failed: a home that held data was saved above.
            if manifest.hasHome { _ = try? workspaces.removeHomeVolume(of: user) }
            throw RestoreFailure(reason: error, unregistered: registered, savedHome: savedHome)
        }
        return RestoreReport(summary: checked, registration: current != nil ? .kept
                                 : request.renamedFrom == nil ? .restored : .registeredRenamed,
                             uid: uid, savedHome: savedHome)
    }

    /// Feeds all of `input` to `reader` and checks its end.
    static func readAll(_ input: ArchiveInput, into reader: BackupReader,
                        progress: (Int64) throws -> Void) throws -> BackupSummary {
        let read = try input.open()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try read($0) }
            if count == 0 { break }
            try buffer.withUnsafeBytes { try reader.feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            try progress(reader.bytesRead)
        }
        return try reader.finish()
    }

    /// The second reading of the archive as the engine's tar source: the home renamed to the
    /// user and re-owned to `uid()` (known once the user is registered), the manifest and
    /// end marker left out, the tar ended only after the end marker checks out again.
    private func homeSource(_ input: ArchiveInput, user: UserName, expected: BackupManifest, uid: @escaping () -> Int,
                            progress: @escaping (Int64) throws -> Void) throws -> (UnsafeMutableRawBufferPointer) throws -> Int {
        let read = try input.open()
        let pending = ByteQueue()
        let reader = BackupReader { manifest in
            guard manifest == expected else { throw BackupError.corrupt("it changed while it was being restored") }
            return RestoreTarget(directory: user.value, uid: uid(), emit: { pending.append($0) })
        }
        var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
        var finished = false
        return { buffer in
            while pending.isEmpty && !finished {
                let count = try chunk.withUnsafeMutableBytes { try read($0) }
                if count == 0 {
                    _ = try reader.finish()
                    finished = true
                } else {
                    try chunk.withUnsafeBytes { try reader.feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                    try progress(reader.bytesRead)
                }
            }
            return pending.take(into: buffer)
        }
    }

    /// Saves the home about to be replaced as a backup archive in `directory` and returns its path.
    private func saveCurrentHome(of user: UserName, record: UserRecord, in directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let path = (directory as NSString).appendingPathComponent("\(user)-before-restore-\(formatter.string(from: Date())).tar")
        let file = try ArchiveFileWriter(path: path)
        _ = try HomeBackup(registry: registry, workspaces: workspaces).write(user, record: record, output: file.write)
        try file.commit()
        return path
    }
}

/// Bytes waiting to be handed to the engine: appended by the reader, taken by libcurl.
final class ByteQueue {
    private var bytes: [UInt8] = []
    private var start = 0

    var isEmpty: Bool { start == bytes.count }

    func append(_ more: UnsafeRawBufferPointer) {
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            start = 0
        }
        bytes.append(contentsOf: more)
    }

    func take(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, bytes.count - start)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + count])) }
        start += count
        return count
    }
}
