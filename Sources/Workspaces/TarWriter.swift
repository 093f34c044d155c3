import Foundation

/// Writes a small POSIX ustar archive in memory: enough to inject a few files into a
/// container through the Engine's archive endpoint.
struct TarWriter {
    private(set) var bytes: [UInt8] = []

    mutating func addDirectory(_ path: String, mode: Int, uid: Int = 0, gid: Int = 0) {
        appendHeader(name: path.hasSuffix("/") ? path : path + "/", mode: mode, uid: uid, gid: gid, size: 0, type: "5")
    }

    mutating func addFile(_ path: String, contents: String, mode: Int, uid: Int = 0, gid: Int = 0) {
        let data = Array(contents.utf8)
        appendHeader(name: path, mode: mode, uid: uid, gid: gid, size: data.count, type: "0")
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    /// The archive with its two closing zero blocks.
    func finished() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    private mutating func appendHeader(name: String, mode: Int, uid: Int, gid: Int, size: Int, type: Character) {
        precondition(name.utf8.count < 100, "tar names here are short, fixed paths")
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) {
            for (i, byte) in text.utf8.enumerated() { header[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int) -> String {
            let digits = String(value, radix: 8)
            return String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
        }
        put(name, at: 0)
        put(octal(mode, width: 8), at: 100)
        put(octal(uid, width: 8), at: 108)
        put(octal(gid, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(Int(Date().timeIntervalSince1970), width: 12), at: 136)
        put("        ", at: 148)
        put(String(type), at: 156)
        put("ustar", at: 257)
        put("00", at: 263)
        put("root", at: 265)
        put("root", at: 297)
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(octal(checksum, width: 7), at: 148)
        header[155] = UInt8(ascii: " ")
        bytes += header
    }
}
