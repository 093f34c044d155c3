import Foundation

/// Tar blocks made by hand, for archives no tar writer makes: every field exactly as given,
/// only the header checksums correct. Used to prove that the reader refuses them.
public enum CraftedTar {
    public static let blockSize = 512

    /// A ustar header block; `size` may be any text, so it can lie.
    public static func header(_ name: String, type: Character = "0", size: String = "0", linkName: String = "",
                              mode: Int = 0o644, uid: Int = 2000) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        func put(_ text: String, at offset: Int) {
            for (index, byte) in text.utf8.enumerated() { block[offset + index] = byte }
        }
        put(name, at: 0)
        put(String(format: "%07o", mode), at: 100)
        put(String(format: "%07o", uid), at: 108)
        put(String(format: "%07o", uid), at: 116)
        put(size, at: 124)
        put("00000000000", at: 136)
        block[156] = type.asciiValue!
        put(linkName, at: 157)
        put("ustar", at: 257)
        put("00", at: 263)
        put("        ", at: 148)
        put(String(format: "%06o", block.reduce(0) { $0 + Int($1) }), at: 148)
        block[154] = 0
        return block
    }

    /// A PAX extended header ('x') whose data is `records` byte for byte, padded to a block.
    public static func pax(_ records: [UInt8]) -> [UInt8] {
        header("PaxHeaders/x", type: "x", size: String(format: "%011o", records.count)) + padded(records)
    }

    /// One well-formed PAX record, `"<length> key=value\n"`.
    public static func record(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length += 1 }
        return Array("\(length)\(body)".utf8)
    }

    /// `bytes` followed by zeros up to a whole block.
    public static func padded(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: (blockSize - bytes.count % blockSize) % blockSize)
    }

    /// The manifest entry of a devenv-gw backup (its header and content blocks): the first entry.
    public static func manifestEntry(of archive: [UInt8]) -> [UInt8] {
        let size = Int(String(decoding: archive[124..<135], as: UTF8.self), radix: 8) ?? 0
        return Array(archive.prefix(blockSize + padded([UInt8](repeating: 0, count: size)).count))
    }

    /// A devenv-gw backup around hand-made home entries: `manifest` (the manifest entry's
    /// blocks), `home`, then an end marker whose checksum, entry count and content bytes
    /// match, and the end blocks. Only the home entries can make it fail.
    public static func backup(manifest: [UInt8], home: [UInt8], entries: Int, contentBytes: Int) throws -> [UInt8] {
        let hashed = manifest + home
        let sum = try runProgram("/usr/bin/sha256sum", [], input: Data(hashed))
        let digest = String(sum.output.prefix(64))
        let marker = Array("{\"contentBytes\":\(contentBytes),\"entries\":\(entries),\"sha256\":\"\(digest)\"}".utf8)
        return hashed + header("devenv-backup-end.json", size: String(format: "%011o", marker.count)) + padded(marker)
            + [UInt8](repeating: 0, count: 2 * blockSize)
    }
}

/// A hand-made home (the entries between a backup's manifest and its end marker) that a
/// restore must refuse, and the words of the refusal.
public struct HostileHome {
    public let name: String
    public let home: [UInt8]
    public let entries: Int
    public let contentBytes: Int
    /// Parts of the refusal message, in order (the byte offsets depend on the manifest).
    public let refusal: [String]

    /// Each way of lying about a length, a size or a time, and entries under a symbolic link
    /// the archive made. The first six crashed the reader before it checked them.
    public static let all: [HostileHome] = {
        let top = CraftedTar.header("home/", type: "5", mode: 0o750)
        let file = CraftedTar.header("home/f")
        let malformed = "the backup is corrupt: the tar header at byte "
        func badTime(_ value: String) -> HostileHome {
            HostileHome(name: "mtime=\(value)", home: top + CraftedTar.pax(CraftedTar.record("mtime", value)) + file,
                        entries: 2, contentBytes: 0, refusal: [malformed, "is malformed (bad PAX mtime '\(value)')"])
        }
        let escape = CraftedTar.header("home/esc", type: "2", linkName: "/etc")
        let x = CraftedTar.header("home/esc/x", size: "00000000002") + CraftedTar.padded(Array("hi".utf8))
        return [
            HostileHome(name: "PAX length overflow",
                        home: top + CraftedTar.pax(CraftedTar.record("comment", "a") + Array("9223372036854775800 path=x\n".utf8))
                            + file,
                        entries: 2, contentBytes: 0,
                        refusal: [malformed, "is malformed (bad PAX record)"]),
            badTime("nan"), badTime("inf"), badTime("1e300"), badTime("-1e300"),
            HostileHome(name: "size overflow",
                        home: top + CraftedTar.header("home/a", size: "00000000001") + CraftedTar.padded([0x61])
                            + CraftedTar.pax(CraftedTar.record("size", String(Int64.max))) + CraftedTar.header("home/b"),
                        entries: 3, contentBytes: 1,
                        refusal: ["the backup is corrupt: the size of home/b (9223372036854775807 bytes) is impossible"]),
            HostileHome(name: "file under a symbolic link", home: top + escape + x, entries: 3, contentBytes: 2,
                        refusal: ["the backup holds an entry that cannot be restored: home/esc/x: "
                                  + "it lies under home/esc, a symbolic link in the archive"]),
            HostileHome(name: "file under a hard link to a symbolic link",
                        home: top + escape + CraftedTar.header("home/esc2", type: "1", linkName: "home/esc")
                            + CraftedTar.header("home/esc2/x"),
                        entries: 4, contentBytes: 0,
                        refusal: ["the backup holds an entry that cannot be restored: home/esc2/x: "
                                  + "it lies under home/esc2, a symbolic link in the archive"]),
        ]
    }()
}

extension HostileHome {
    /// True when `message` holds every part of the refusal, in order.
    public func isRefusal(_ message: String) -> Bool {
        var rest = Substring(message)
        for part in refusal {
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }
}
