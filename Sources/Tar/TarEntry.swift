/// One entry of a tar archive: what its ustar header, PAX extended header and GNU long
/// names say together. Paths are bytes, as on disk: a Linux file name need not be UTF-8.
public struct TarEntry: Sendable, Equatable {
    /// The ustar type flag (`TarEntry.regular`, `.directory`, …).
    public var typeflag: UInt8
    public var path: [UInt8]
    /// The target of a symbolic or hard link.
    public var linkPath: [UInt8]
    public var mode: Int
    public var uid: Int
    public var gid: Int
    public var size: Int64
    /// Whole seconds; a finer PAX `mtime` record, when there was one, stays in `extraRecords`.
    public var mtime: Int64
    public var userName: [UInt8]
    public var groupName: [UInt8]
    public var devMajor: Int
    public var devMinor: Int
    /// PAX records other than those the fields above stand for (path, linkpath, size, uid,
    /// gid, uname, gname), in their order: finer mtimes, atime, extended attributes, …
    public var extraRecords: [PaxRecord]

    public static let regular = UInt8(ascii: "0")
    public static let oldRegular: UInt8 = 0
    public static let hardLink = UInt8(ascii: "1")
    public static let symbolicLink = UInt8(ascii: "2")
    public static let characterDevice = UInt8(ascii: "3")
    public static let blockDevice = UInt8(ascii: "4")
    public static let directory = UInt8(ascii: "5")
    public static let fifo = UInt8(ascii: "6")
    public static let contiguous = UInt8(ascii: "7")

    public init(typeflag: UInt8, path: [UInt8], linkPath: [UInt8] = [], mode: Int, uid: Int = 0, gid: Int = 0,
                size: Int64 = 0, mtime: Int64, userName: [UInt8] = [], groupName: [UInt8] = [],
                devMajor: Int = 0, devMinor: Int = 0, extraRecords: [PaxRecord] = []) {
        self.typeflag = typeflag
        self.path = path
        self.linkPath = linkPath
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.userName = userName
        self.groupName = groupName
        self.devMajor = devMajor
        self.devMinor = devMinor
        self.extraRecords = extraRecords
    }

    /// True for entries whose content follows the header (regular files).
    public var hasContent: Bool { [Self.regular, Self.oldRegular, Self.contiguous].contains(typeflag) }

    /// The path as text for messages (invalid UTF-8 shown with replacement characters).
    public var displayPath: String { String(decoding: path, as: UTF8.self) }

    /// The header blocks for this entry: a PAX extended header first when a field does not
    /// fit ustar, then the ustar header. The content and its padding are the caller's.
    public func encodedHeader() -> [UInt8] {
        var records = extraRecords
        var header = [UInt8](repeating: 0, count: TarFormat.blockSize)
        if let (prefix, name) = Self.ustarSplit(path) {
            TarFormat.put(name, into: &header, at: 0, width: 100)
            TarFormat.put(prefix, into: &header, at: 345, width: 155)
        } else {
            records.append(PaxRecord(key: "path", value: path))
            TarFormat.put(Array(path.suffix(99)), into: &header, at: 0, width: 100)
        }
        if linkPath.count <= 100 && TarFormat.isASCII(linkPath) {
            TarFormat.put(linkPath, into: &header, at: 157, width: 100)
        } else {
            records.append(PaxRecord(key: "linkpath", value: linkPath))
        }
        for (value, key, offset, width) in [(Int64(uid), "uid", 108, 8), (Int64(gid), "gid", 116, 8), (size, "size", 124, 12)]
            where !TarFormat.putOctal(value, into: &header, at: offset, width: width) {
            records.append(PaxRecord(key: key, value: Array(String(value).utf8)))
        }
        if !TarFormat.putOctal(mtime, into: &header, at: 136, width: 12),
           !records.contains(where: { $0.key == "mtime" }) {
            records.append(PaxRecord(key: "mtime", value: Array(String(mtime).utf8)))
        }
        for (value, key, offset) in [(userName, "uname", 265), (groupName, "gname", 297)] {
            if value.count <= 32 && TarFormat.isASCII(value) {
                TarFormat.put(value, into: &header, at: offset, width: 32)
            } else {
                records.append(PaxRecord(key: key, value: value))
            }
        }
        _ = TarFormat.putOctal(Int64(mode & 0o7777), into: &header, at: 100, width: 8)
        _ = TarFormat.putOctal(Int64(devMajor), into: &header, at: 329, width: 8)
        _ = TarFormat.putOctal(Int64(devMinor), into: &header, at: 337, width: 8)
        header[156] = typeflag
        TarFormat.put(Array("ustar\0".utf8), into: &header, at: 257, width: 6)
        TarFormat.put(Array("00".utf8), into: &header, at: 263, width: 2)
        TarFormat.sealChecksum(&header)
        guard !records.isEmpty else { return header }

        let body = records.flatMap(\.encoded)
        var pax = [UInt8](repeating: 0, count: TarFormat.blockSize)
        TarFormat.put(Array("PaxHeaders/".utf8) + Array(path.split(separator: UInt8(ascii: "/")).last ?? [])
                          .prefix(88).filter { $0 < 0x80 },
                      into: &pax, at: 0, width: 100)
        _ = TarFormat.putOctal(0o644, into: &pax, at: 100, width: 8)
        _ = TarFormat.putOctal(Int64(body.count), into: &pax, at: 124, width: 12)
        _ = TarFormat.putOctal(0, into: &pax, at: 108, width: 8)
        _ = TarFormat.putOctal(0, into: &pax, at: 116, width: 8)
        _ = TarFormat.putOctal(max(0, min(mtime, 0o77777777777)), into: &pax, at: 136, width: 12)
        pax[156] = UInt8(ascii: "x")
        TarFormat.put(Array("ustar\0".utf8), into: &pax, at: 257, width: 6)
        TarFormat.put(Array("00".utf8), into: &pax, at: 263, width: 2)
        TarFormat.sealChecksum(&pax)
        return pax + body + TarFormat.padding(for: Int64(body.count)) + header
    }

    /// `(prefix, name)` when `path` fits the ustar fields as ASCII, else nil.
    static func ustarSplit(_ path: [UInt8]) -> ([UInt8], [UInt8])? {
        guard TarFormat.isASCII(path) else { return nil }
        if path.count <= 100 { return ([], path) }
        // Split at a slash so that the prefix has at most 155 bytes and the name 1 to 100.
        for index in path.indices.reversed() where path[index] == UInt8(ascii: "/") {
            let prefix = Array(path[..<index]), name = Array(path[(index + 1)...])
            if name.count > 100 { break }
            if prefix.count <= 155 && !name.isEmpty { return (prefix, name) }
        }
        return nil
    }
}

/// One `key=value` record of a PAX extended header.
public struct PaxRecord: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]

    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }

    /// `"<length> key=value\n"`, where the length counts the whole record, itself included.
    var encoded: [UInt8] {
        let body = Array(" \(key)=".utf8) + value + [UInt8(ascii: "\n")]
        var length = body.count + 1
        while String(length).utf8.count + body.count != length { length += 1 }
        return Array(String(length).utf8) + body
    }
}

/// Byte-level helpers for ustar headers.
public enum TarFormat {
    public static let blockSize = 512

    /// The zero bytes that pad `size` bytes of content to a whole block.
    public static func padding(for size: Int64) -> [UInt8] {
        [UInt8](repeating: 0, count: paddingCount(for: size))
    }

    public static func paddingCount(for size: Int64) -> Int {
        Int((Int64(blockSize) - size % Int64(blockSize)) % Int64(blockSize))
    }

    /// The two zero blocks that end an archive.
    public static let endOfArchive = [UInt8](repeating: 0, count: 2 * blockSize)

    static func isASCII(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy { $0 > 0 && $0 < 0x80 } }

    static func put(_ bytes: [UInt8], into header: inout [UInt8], at offset: Int, width: Int) {
        for (index, byte) in bytes.prefix(width).enumerated() { header[offset + index] = byte }
    }

    /// Writes `value` as zero-padded octal with a terminating NUL; false when it does not fit.
    @discardableResult
    static func putOctal(_ value: Int64, into header: inout [UInt8], at offset: Int, width: Int) -> Bool {
        let digits = String(value, radix: 8)
        guard value >= 0, digits.utf8.count <= width - 1 else { return false }
        put(Array((String(repeating: "0", count: width - 1 - digits.utf8.count) + digits).utf8),
            into: &header, at: offset, width: width)
        header[offset + width - 1] = 0
        return true
    }

    /// Fills in the checksum field (sum of the header's bytes, the field counted as spaces).
    static func sealChecksum(_ header: inout [UInt8]) {
        for index in 148..<156 { header[index] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8), into: &header, at: 148, width: 6)
        header[154] = 0
        header[155] = UInt8(ascii: " ")
    }

    /// Reads a numeric field: octal text, or GNU base-256 when the first byte has its high bit set.
    static func number(_ header: UnsafeRawBufferPointer, at offset: Int, width: Int) -> Int64? {
        let field = UnsafeRawBufferPointer(rebasing: header[offset..<offset + width])
        if let first = field.first, first & 0x80 != 0 {
            guard first & 0x40 == 0 else { return nil }  // negative
            var value = Int64(first & 0x3f)
            for byte in field.dropFirst() {
                guard value <= Int64.max >> 8 else { return nil }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        var value: Int64 = 0
        var seenDigit = false
        for byte in field {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard value < Int64.max >> 3 else { return nil }
                value = value << 3 + Int64(byte - UInt8(ascii: "0"))
                seenDigit = true
            case UInt8(ascii: " "), 0:
                if seenDigit { return value }
            default:
                return nil
            }
        }
        return value
    }

    /// A PAX time (`mtime`, `atime`, `ctime`): decimal seconds, optionally negative, with an
    /// optional fraction, as whole seconds rounded down. Nil for anything else (`nan`, `inf`,
    /// exponents, hex) and for times outside Int64 seconds, which no file system holds.
    public static func paxTime(_ value: [UInt8]) -> Int64? {
        let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        let negative = value.first == UInt8(ascii: "-")
        let unsigned = negative ? value.dropFirst() : value[...]
        let point = unsigned.firstIndex(of: UInt8(ascii: ".")) ?? unsigned.endIndex
        let whole = unsigned[..<point], fraction = unsigned[point...].dropFirst()
        guard !whole.isEmpty, whole.allSatisfy(isDigit), fraction.allSatisfy(isDigit),
              var seconds = Int64(String(decoding: value[..<point], as: UTF8.self)) else { return nil }
        if negative && fraction.contains(where: { $0 != UInt8(ascii: "0") }) {
            let (floor, overflow) = seconds.subtractingReportingOverflow(1)
            guard !overflow else { return nil }
            seconds = floor
        }
        return seconds
    }

    /// Bytes from an archive for a message: at most 40 of them, control bytes escaped.
    static func quoted(_ bytes: [UInt8]) -> String {
        var text = "'"
        for byte in bytes.prefix(40) {
            text += byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "'") && byte != UInt8(ascii: "\\")
                ? String(UnicodeScalar(byte)) : "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
        return text + (bytes.count > 40 ? "'…" : "'")
    }

    /// A NUL-terminated string field.
    static func string(_ header: UnsafeRawBufferPointer, at offset: Int, width: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: header[offset..<offset + width]).prefix { $0 != 0 })
    }
}
