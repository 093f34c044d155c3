import Foundation
import Tar

/// Writes a small tar archive in memory: enough to inject a few files into a container
/// through the Engine's archive endpoint.
struct TarWriter {
    private(set) var bytes: [UInt8] = []
    private let mtime = Int64(Date().timeIntervalSince1970)

    mutating func addDirectory(_ path: String, mode: Int, uid: Int = 0, gid: Int = 0) {
        append(TarEntry(typeflag: TarEntry.directory, path: Array((path.hasSuffix("/") ? path : path + "/").utf8),
                        mode: mode, uid: uid, gid: gid, mtime: mtime), content: [])
    }

    mutating func addFile(_ path: String, contents: String, mode: Int, uid: Int = 0, gid: Int = 0) {
        let data = Array(contents.utf8)
        append(TarEntry(typeflag: TarEntry.regular, path: Array(path.utf8), mode: mode, uid: uid, gid: gid,
                        size: Int64(data.count), mtime: mtime), content: data)
    }

    /// The archive with its two closing zero blocks.
    func finished() -> [UInt8] { bytes + TarFormat.endOfArchive }

    private mutating func append(_ entry: TarEntry, content: [UInt8]) {
        var entry = entry
        entry.userName = Array("root".utf8)
        entry.groupName = Array("root".utf8)
        bytes += entry.encodedHeader() + content + TarFormat.padding(for: Int64(content.count))
    }
}
