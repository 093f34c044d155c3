import Foundation
import Registry
import Tar

/// The devenv-gw home backup, a plain tar file (`tar -tvf` lists it):
///
///     devenv-backup.json       the manifest: format, version, user, uid, and the user record
///     home/                    the home directory itself (owner, mode, mtime)
///     home/…                   its contents as the Docker engine read them
///     devenv-backup-end.json   the end marker: entry count, content bytes, and the SHA-256
///                              of every byte of the archive before this entry
///     two zero blocks
///
/// The end marker is what makes a backup trustworthy: a truncated file has none, and a
/// changed byte anywhere before it changes the checksum.
public enum BackupFormat {
    public static let name = "devenv-gw-home-backup"
    public static let version = 1
    public static let manifestPath = "devenv-backup.json"
    public static let endMarkerPath = "devenv-backup-end.json"
    public static let homeDirectory = "home"
    /// The manifest and end marker are small; anything larger is not ours.
    static let maxMetadataSize = 1 << 20

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    /// A small regular file entry (manifest, end marker) with its content and padding.
    static func metadataEntry(_ path: String, json: Data, mtime: Date) -> [UInt8] {
        let entry = TarEntry(typeflag: TarEntry.regular, path: Array(path.utf8), mode: 0o600, size: Int64(json.count),
                             mtime: Int64(mtime.timeIntervalSince1970), userName: Array("root".utf8),
                             groupName: Array("root".utf8))
        return entry.encodedHeader() + Array(json) + TarFormat.padding(for: Int64(json.count))
    }
}

/// The first entry of a backup: what it is and whose.
public struct BackupManifest: Codable, Sendable, Equatable {
    public var format: String
    public var version: Int
    /// The user whose home this is.
    public var user: String
    /// The uid that owns the user's files in the archive.
    public var uid: Int
    public var created: Date
    /// False when the user had no home volume yet: the archive then holds no home entries.
    public var hasHome: Bool
    /// Whether the workspace was stopped while the home was read.
    public var quiescent: Bool
    /// The instance prefix and container image it was taken from, for the admin's information.
    public var prefix: String
    public var image: String?
    /// Everything needed to register the user again: uid, keys, workspace host key.
    public var record: UserRecord

    public init(record: UserRecord, created: Date, hasHome: Bool, quiescent: Bool, prefix: String, image: String?) {
        format = BackupFormat.name
        version = BackupFormat.version
        user = record.name
        uid = record.uid
        self.created = created
        self.hasHome = hasHome
        self.quiescent = quiescent
        self.prefix = prefix
        self.image = image
        self.record = record
    }
}

/// The last entry of a backup.
struct BackupEndMarker: Codable, Equatable {
    /// Home entries (the home directory itself included).
    var entries: Int
    /// Bytes of file content in the home entries.
    var contentBytes: Int64
    /// SHA-256 (hex) of every archive byte before the end marker's header.
    var sha256: String
}

/// Why a backup could not be written or an archive is refused.
public enum BackupError: Error, Equatable, CustomStringConvertible {
    /// Not our format at all: random bytes, another tar, an empty file.
    case notABackup(String)
    case unsupportedVersion(Int)
    /// The archive belongs to another user and no rename was asked for.
    case otherUser(archive: String, requested: String)
    /// The archive stops before its end marker.
    case truncated(String)
    /// Bytes were changed, or the structure does not hold together.
    case corrupt(String)
    /// An entry that cannot be part of a home directory.
    case badHomeEntry(path: String, reason: String)

    public var description: String {
        switch self {
        case .notABackup(let reason):
            return "not a devenv-gw backup: \(reason)"
        case .unsupportedVersion(let version):
            return "the backup has format version \(version); this devenv-gw reads version \(BackupFormat.version) "
                + "(upgrade devenv-gw to restore it)"
        case .otherUser(let archive, let requested):
            return "the backup holds the home of \(archive), not \(requested); "
                + "to restore it as \(requested), add --rename-from \(archive)"
        case .truncated(let detail):
            return "the backup is incomplete (truncated): \(detail)"
        case .corrupt(let detail):
            return "the backup is corrupt: \(detail)"
        case .badHomeEntry(let path, let reason):
            return "the backup holds an entry that cannot be restored: \(path): \(reason)"
        }
    }
}
