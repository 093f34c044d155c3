import Foundation
import Tar

/// Where a restore puts the home entries of an archive.
public struct RestoreTarget {
    /// The name of the home directory in the tar written to `emit` (the user's name).
    public var directory: String
    /// Files owned by the archive's uid get this uid (and gid) instead.
    public var uid: Int
    /// Receives the home as a tar stream for the engine (`<directory>/…`); nil only validates.
    public var emit: ((UnsafeRawBufferPointer) throws -> Void)?

    public init(directory: String, uid: Int, emit: ((UnsafeRawBufferPointer) throws -> Void)?) {
        self.directory = directory
        self.uid = uid
        self.emit = emit
    }
}

/// Reads a backup archive as a stream, checking all of it: the manifest (format, version,
/// and whatever `check` says about it), every home entry, and the end marker's counts and
/// checksum. With a restore target it also writes the home out as a tar for the engine,
/// finishing that tar only once the end marker has been verified.
public final class BackupReader: TarParserDelegate {
    /// Looks at the manifest as soon as it is read; throws to refuse the archive, or returns
    /// where the home goes.
    public typealias ManifestCheck = (BackupManifest) throws -> RestoreTarget

    private enum Phase { case manifest, home, endMarker, afterEndMarker }

    private let parser = TarParser()
    private let hash = SHA256()
    private let check: ManifestCheck
    private var phase = Phase.manifest
    private var metadata: [UInt8] = []
    public private(set) var manifest: BackupManifest?
    private var marker: BackupEndMarker?
    private var mapper: HomeEntryMapper?
    private var emit: ((UnsafeRawBufferPointer) throws -> Void)?

    public init(check: @escaping ManifestCheck) {
        self.check = check
        parser.delegate = self
    }

    /// Bytes of the archive read so far.
    public var bytesRead: Int64 { parser.offset }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        do {
            try parser.feed(bytes)
        } catch let error as TarError {
            throw describe(error)
        }
    }

    /// The archive is over: checks that it was complete and intact, then ends the restore tar.
    public func finish() throws -> BackupSummary {
        do {
            try parser.finish()
        } catch let error as TarError {
            throw describe(error)
        }
        guard let manifest else { throw BackupError.notABackup("it holds no entry") }
        guard let marker, phase == .afterEndMarker else {
            throw BackupError.truncated("it ends without its end marker \(BackupFormat.endMarkerPath)")
        }
        let digest = hash.finalHex()
        guard marker.sha256 == digest else {
            throw BackupError.corrupt("its checksum does not match its content (SHA-256 \(digest), "
                                      + "the end marker says \(marker.sha256))")
        }
        let entries = mapper?.entries ?? 0
        let contentBytes = mapper?.contentBytes ?? 0
        guard marker.entries == entries, marker.contentBytes == contentBytes else {
            throw BackupError.corrupt("it holds \(entries) home entries with \(contentBytes) bytes, "
                                      + "the end marker says \(marker.entries) with \(marker.contentBytes)")
        }
        if let emit { try TarFormat.endOfArchive.withUnsafeBytes { try emit($0) } }
        return BackupSummary(manifest: manifest, entries: entries, contentBytes: contentBytes,
                             archiveBytes: parser.offset, sha256: digest)
    }

    // MARK: - TarParserDelegate

    public func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws {
        switch phase {
        case .manifest:
            guard entry.path == Array(BackupFormat.manifestPath.utf8), entry.hasContent else {
                throw BackupError.notABackup("it does not start with \(BackupFormat.manifestPath) "
                                             + "(its first entry is \(entry.displayPath))")
            }
            try startMetadata(entry)
        case .home:
            if entry.path == Array(BackupFormat.endMarkerPath.utf8) {
                guard entry.hasContent else { throw BackupError.corrupt("the end marker is not a file") }
                phase = .endMarker
                try startMetadata(entry)
                return  // the end marker is not part of the checksum
            }
            guard let mapper else {
                throw BackupError.corrupt("the manifest says there is no home, but \(entry.displayPath) follows")
            }
            try mapper.entry(entry)
        case .endMarker, .afterEndMarker:
            throw BackupError.corrupt("\(entry.displayPath) follows the end marker")
        }
        hash.update(rawHeader)
    }

    public func content(_ bytes: UnsafeRawBufferPointer) throws {
        switch phase {
        case .manifest, .endMarker:
            metadata.append(contentsOf: bytes)
        case .home:
            try mapper?.content(bytes)
        case .afterEndMarker:
            break
        }
        if phase != .endMarker { hash.update(bytes) }
    }

    public func entryEnded(padding: UnsafeRawBufferPointer) throws {
        switch phase {
        case .manifest:
            hash.update(padding)
            try manifestRead()
        case .home:
            hash.update(padding)
            try mapper?.entryEnded()
        case .endMarker:
            do {
                marker = try BackupFormat.decoder.decode(BackupEndMarker.self, from: Data(metadata))
            } catch {
                throw BackupError.corrupt("its end marker cannot be read")
            }
            phase = .afterEndMarker
        case .afterEndMarker:
            break
        }
    }

    public func archiveEnded() throws {}

    // MARK: - Internals

    private func startMetadata(_ entry: TarEntry) throws {
        guard entry.size <= BackupFormat.maxMetadataSize else {
            throw BackupError.corrupt("\(entry.displayPath) is too large (\(entry.size) bytes)")
        }
        metadata = []
    }

    private func manifestRead() throws {
        struct Version: Decodable { let format: String?; let version: Int? }
        guard let version = try? BackupFormat.decoder.decode(Version.self, from: Data(metadata)),
              version.format == BackupFormat.name, let number = version.version else {
            throw BackupError.notABackup("its \(BackupFormat.manifestPath) is not a devenv-gw backup manifest")
        }
        guard number == BackupFormat.version else { throw BackupError.unsupportedVersion(number) }
        let manifest: BackupManifest
        do {
            manifest = try BackupFormat.decoder.decode(BackupManifest.self, from: Data(metadata))
        } catch {
            throw BackupError.corrupt("its manifest cannot be read (\(error))")
        }
        guard manifest.user == manifest.record.name, manifest.uid == manifest.record.uid else {
            throw BackupError.corrupt("its manifest names user \(manifest.user) (uid \(manifest.uid)) but holds "
                                      + "the record of \(manifest.record.name) (uid \(manifest.record.uid))")
        }
        self.manifest = manifest
        let target = try check(manifest)
        if manifest.hasHome {
            mapper = HomeEntryMapper(from: BackupFormat.homeDirectory, to: target.directory,
                                     ownerChange: (manifest.uid, target.uid), emit: target.emit)
            emit = target.emit
        }
        phase = .home
    }

    /// Tar-level problems in words about the backup: garbage at the start is not a backup,
    /// an early end is truncation, anything else is corruption.
    private func describe(_ error: TarError) -> BackupError {
        switch error {
        case .notAHeader(let offset) where offset == 0:
            return .notABackup("it is not a tar archive")
        case .truncated(let offset) where manifest == nil:
            return .notABackup(offset == 0 ? "it is empty" : "it ends after \(offset) bytes, before a complete manifest")
        case .truncated(let offset):
            return .truncated("it ends after \(offset) bytes, before its end marker")
        default:
            return .corrupt("\(error)")
        }
    }
}
