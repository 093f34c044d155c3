import Foundation
import Tar

/// What a finished backup holds.
public struct BackupSummary: Sendable {
    public let manifest: BackupManifest
    /// Home entries, the home directory itself included (0 when the user had no home).
    public let entries: Int
    /// Bytes of file content in the home.
    public let contentBytes: Int64
    /// Size of the whole archive.
    public let archiveBytes: Int64
    /// The end marker's checksum.
    public let sha256: String
}

/// Writes a backup archive as a stream: the manifest, then the Docker engine's tar of the
/// home (fed in pieces through `homeSink`), renamed under `home/`, then the end marker.
/// Holds no more than one tar header in memory, whatever the home's size.
public final class BackupWriter {
    public typealias Output = (UnsafeRawBufferPointer) throws -> Void

    private let manifest: BackupManifest
    private let output: Output
    private let hash = SHA256()
    public private(set) var bytesWritten: Int64 = 0
    private let parser = TarParser()
    private var mapper: HomeEntryMapper!
    private var delegate: EngineTarDelegate!

    /// Writes the manifest at once; `output` receives every byte of the archive in order.
    public init(manifest: BackupManifest, output: @escaping Output) throws {
        self.manifest = manifest
        self.output = output
        mapper = HomeEntryMapper(from: manifest.user, to: BackupFormat.homeDirectory) { [unowned self] in try write($0) }
        delegate = EngineTarDelegate(mapper: mapper)
        parser.delegate = delegate
        let json = try BackupFormat.encoder.encode(manifest)
        try write(BackupFormat.metadataEntry(BackupFormat.manifestPath, json: json, mtime: manifest.created))
    }

    /// Feeds a piece of the engine's tar of `/home/<user>` (entries `<user>/…`).
    public func writeHome(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(manifest.hasHome, "the manifest says there is no home")
        try parser.feed(bytes)
    }

    /// Checks that the engine's tar was complete, then writes the end marker and end blocks.
    public func finish() throws -> BackupSummary {
        if manifest.hasHome {
            do {
                try parser.finish()
            } catch let error as TarError {
                throw BackupError.corrupt("the engine's archive of the home: \(error)")
            }
            guard mapper.sawTopDirectory else {
                throw BackupError.corrupt("the engine's archive of the home holds no home directory")
            }
        }
        let marker = BackupEndMarker(entries: mapper.entries, contentBytes: mapper.contentBytes, sha256: hash.finalHex())
        let json = try BackupFormat.encoder.encode(marker)
        try write(BackupFormat.metadataEntry(BackupFormat.endMarkerPath, json: json, mtime: Date()), hashed: false)
        try write(TarFormat.endOfArchive, hashed: false)
        return BackupSummary(manifest: manifest, entries: marker.entries, contentBytes: marker.contentBytes,
                             archiveBytes: bytesWritten, sha256: marker.sha256)
    }

    private func write(_ bytes: [UInt8], hashed: Bool = true) throws {
        try bytes.withUnsafeBytes { try write($0, hashed: hashed) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, hashed: Bool = true) throws {
        if hashed { hash.update(bytes) }
        try output(bytes)
        bytesWritten += Int64(bytes.count)
    }
}

/// Passes the engine's home entries through the mapper.
private final class EngineTarDelegate: TarParserDelegate {
    let mapper: HomeEntryMapper

    init(mapper: HomeEntryMapper) { self.mapper = mapper }

    func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws { try mapper.entry(entry) }
    func content(_ bytes: UnsafeRawBufferPointer) throws { try mapper.content(bytes) }
    func entryEnded(padding: UnsafeRawBufferPointer) throws { try mapper.entryEnded() }
    func archiveEnded() throws {}
}
