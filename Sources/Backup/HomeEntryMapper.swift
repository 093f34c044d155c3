import Tar

/// Checks and renames the entries of a home directory tar: every entry must lie under one
/// top directory (`from`), which must come first; it is renamed to `to`. Backups map the
/// engine's `alice/…` to `home/…`, restores map `home/…` to `alice/…` (or a new name), and
/// may give the archive's uid (and gid) to the user's uid on this gateway.
///
/// With an `emit` sink the renamed entries are written to it as a tar stream (without the
/// end blocks); without one the mapper only validates.
final class HomeEntryMapper {
    typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    private let from: [UInt8]
    private let to: [UInt8]
    private let ownerChange: (from: Int, to: Int)?
    private let emit: Sink?
    /// Entries seen, the top directory included.
    private(set) var entries = 0
    private(set) var contentBytes: Int64 = 0
    private var currentSize: Int64 = 0
    /// Mapped paths of the symbolic links among the entries so far: an extractor follows
    /// them, so a later entry under one would land wherever the link points.
    /// Keyed by mapped path, with the link's path in the archive for messages.
    private var symbolicLinks: [[UInt8]: String] = [:]

    init(from: String, to: String, ownerChange: (from: Int, to: Int)? = nil, emit: Sink?) {
        self.from = Array(from.utf8)
        self.to = Array(to.utf8)
        self.ownerChange = ownerChange.flatMap { $0.from == $0.to ? nil : $0 }
        self.emit = emit
    }

    var sawTopDirectory: Bool { entries > 0 }

    func entry(_ original: TarEntry) throws {
        var entry = original
        let path = try map(entry.path, of: original)
        let isTop = path == to
        if entries == 0 && !(isTop && entry.typeflag == TarEntry.directory) {
            throw BackupError.badHomeEntry(path: original.displayPath, reason: "the home directory must come first")
        }
        if entries > 0 && isTop {
            throw BackupError.badHomeEntry(path: original.displayPath, reason: "the home directory appears twice")
        }
        switch entry.typeflag {
        case TarEntry.characterDevice, TarEntry.blockDevice:
            throw BackupError.badHomeEntry(path: original.displayPath, reason: "device files are not allowed in a home")
        case TarEntry.hardLink:
            entry.linkPath = try map(entry.linkPath, of: original)
            guard entry.linkPath != to else {
                throw BackupError.badHomeEntry(path: original.displayPath, reason: "a hard link to a directory")
            }
            try refuseLinkAncestor(of: entry.linkPath, in: original)
        default:
            break
        }
        try refuseLinkAncestor(of: path, in: original)
        // A hard link to a symbolic link is one more symbolic link (link(2) does not follow it).
        if entry.typeflag == TarEntry.symbolicLink
            || (entry.typeflag == TarEntry.hardLink && symbolicLinks[entry.linkPath] != nil) {
            symbolicLinks[path] = original.displayPath
        }
        // Sizes are summed before the content is read: a huge declared size must be refused
        // here, it is not yet known to be a lie.
        let (total, overflow) = contentBytes.addingReportingOverflow(entry.size)
        guard !overflow else {
            throw BackupError.corrupt("the size of \(original.displayPath) (\(entry.size) bytes) is impossible")
        }
        // Keep a directory's trailing slash, as tar writers do.
        entry.path = path + (original.path.last == UInt8(ascii: "/") ? [UInt8(ascii: "/")] : [])
        if let change = ownerChange {
            if entry.uid == change.from { entry.uid = change.to }
            if entry.gid == change.from { entry.gid = change.to }
        }
        entries += 1
        contentBytes = total
        currentSize = entry.size
        if let emit { try entry.encodedHeader().withUnsafeBytes { try emit($0) } }
    }

    func content(_ bytes: UnsafeRawBufferPointer) throws {
        try emit?(bytes)
    }

    func entryEnded() throws {
        guard let emit else { return }
        let count = TarFormat.paddingCount(for: currentSize)
        if count > 0 { try TarFormat.padding(for: currentSize).withUnsafeBytes { try emit($0) } }
    }

    /// Refuses a path that goes through a symbolic link an earlier entry made, even one a
    /// later entry replaced: what an extractor does with such a path depends on the order it
    /// takes, and a home read from disk never holds one.
    private func refuseLinkAncestor(of path: [UInt8], in entry: TarEntry) throws {
        guard !symbolicLinks.isEmpty else { return }
        for (index, byte) in path.enumerated() where byte == UInt8(ascii: "/") {
            if let link = symbolicLinks[Array(path[..<index])] {
                throw BackupError.badHomeEntry(path: entry.displayPath,
                                               reason: "it lies under \(link), a symbolic link in the archive")
            }
        }
    }

    /// `from[/rest]` → `to[/rest]`, refusing absolute paths, `.` and `..` components and
    /// anything outside `from`. A trailing slash is dropped.
    private func map(_ path: [UInt8], of entry: TarEntry) throws -> [UInt8] {
        var components = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if components.count > 1 && components.last?.isEmpty == true { components.removeLast() }
        guard let first = components.first, Array(first) == from else {
            throw BackupError.badHomeEntry(path: entry.displayPath,
                                           reason: "outside the home directory \(String(decoding: from, as: UTF8.self))/")
        }
        for component in components.dropFirst() {
            let text = Array(component)
            guard !text.isEmpty, text != [UInt8(ascii: ".")], text != [UInt8(ascii: "."), UInt8(ascii: ".")],
                  !text.contains(0) else {
                throw BackupError.badHomeEntry(path: entry.displayPath, reason: "an empty, '.' or '..' path component")
            }
        }
        return components.dropFirst().reduce(to) { $0 + [UInt8(ascii: "/")] + Array($1) }
    }
}
