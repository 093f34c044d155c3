/// Why a byte stream is not a (complete) tar archive.
public enum TarError: Error, Equatable, CustomStringConvertible {
    /// The block at this offset is not a header: its checksum does not match.
    case notAHeader(offset: Int64)
    /// A numeric field or PAX record of the header at this offset cannot be read.
    case malformedHeader(offset: Int64, detail: String)
    /// The stream ended inside an entry or before the end-of-archive blocks.
    case truncated(offset: Int64)
    /// An entry type this parser does not handle.
    case unsupportedType(typeflag: UInt8, path: String)
    /// Extended headers of one entry larger than the limit.
    case headerTooLarge(offset: Int64)
    /// Non-zero bytes after the end-of-archive blocks.
    case trailingData(offset: Int64)

    public var description: String {
        switch self {
        case .notAHeader(let offset):
            return "the data at byte \(offset) is not a tar header"
        case .malformedHeader(let offset, let detail):
            return "the tar header at byte \(offset) is malformed (\(detail))"
        case .truncated(let offset):
            return "the archive ends early, after \(offset) bytes (truncated?)"
        case .unsupportedType(let typeflag, let path):
            let shown = typeflag >= 0x20 && typeflag < 0x7f ? "'\(Character(UnicodeScalar(typeflag)))'" : "\(typeflag)"
            return "the entry \(path) has an unsupported type \(shown)"
        case .headerTooLarge(let offset):
            return "the extended tar header at byte \(offset) is larger than \(TarParser.maxExtendedHeader) bytes"
        case .trailingData(let offset):
            return "unexpected data at byte \(offset), after the end of the archive"
        }
    }
}

/// What a `TarParser` reports, in stream order. Together the raw bytes passed to
/// `entry`, `content` and `padding` are every byte of the stream before its end blocks.
public protocol TarParserDelegate: AnyObject {
    /// An entry begins. `rawHeader` holds all its header blocks as read (PAX or GNU ones first).
    func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws
    /// A piece of the current entry's content.
    func content(_ bytes: UnsafeRawBufferPointer) throws
    /// The current entry ended; `padding` is the raw bytes that filled its last block.
    func entryEnded(padding: UnsafeRawBufferPointer) throws
    /// The end-of-archive blocks were read.
    func archiveEnded() throws
}

/// A streaming tar reader: feed it bytes in pieces of any size and it reports entries and
/// their content as they go by. Memory is bounded by one entry's extended headers
/// (`maxExtendedHeader`), whatever the archive's size. Reads ustar, PAX ('x') and GNU long
/// name ('L', 'K') headers; refuses PAX global headers and GNU sparse or multi-volume entries.
public final class TarParser {
    /// The largest PAX or GNU extended header accepted for one entry.
    public static let maxExtendedHeader = 1 << 20

    private enum State {
        case header
        /// Reading the data of a PAX or GNU header (with its padding).
        case extended(typeflag: UInt8, remaining: Int, padding: Int)
        case content(remaining: Int64, padding: Int)
        case padding(remaining: Int)
        case ended
    }

    public weak var delegate: TarParserDelegate?
    private var state = State.header
    /// Bytes of the stream consumed so far.
    public private(set) var offset: Int64 = 0
    private var block: [UInt8] = []
    /// Raw header blocks of the entry being read, PAX/GNU ones included.
    private var rawHeader: [UInt8] = []
    private var extendedData: [UInt8] = []
    private var headerOffset: Int64 = 0
    private var paxRecords: [PaxRecord] = []
    private var longName: [UInt8]?
    private var longLink: [UInt8]?
    private var paddingBytes: [UInt8] = []

    public init(delegate: TarParserDelegate? = nil) {
        self.delegate = delegate
        block.reserveCapacity(TarFormat.blockSize)
    }

    /// True once the end-of-archive blocks were read.
    public var isEnded: Bool {
        if case .ended = state { return true }
        return false
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var index = 0
        while index < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[index...])
            let used: Int
            switch state {
            case .header:
                used = min(TarFormat.blockSize - block.count, rest.count)
                block.append(contentsOf: rest.prefix(used))
                if block.count == TarFormat.blockSize {
                    offset += Int64(used)
                    try headerBlockComplete()
                    block.removeAll(keepingCapacity: true)
                    index += used
                    continue
                }
            case .extended(let typeflag, let remaining, let padding):
                used = min(remaining + padding, rest.count)
                let dataPart = min(used, remaining)
                extendedData.append(contentsOf: rest.prefix(dataPart))
                rawHeader.append(contentsOf: rest.prefix(used))
                if used == remaining + padding {
                    state = .header
                    offset += Int64(used)
                    try extendedHeaderComplete(typeflag: typeflag)
                    index += used
                    continue
                }
                state = .extended(typeflag: typeflag, remaining: remaining - dataPart,
                                  padding: padding - (used - dataPart))
            case .content(let remaining, let padding):
                used = Int(min(remaining, Int64(rest.count)))
                if used > 0 { try delegate?.content(UnsafeRawBufferPointer(rebasing: rest[..<used])) }
                let left = remaining - Int64(used)
                if left == 0 {
                    state = .padding(remaining: padding)
                    paddingBytes.removeAll(keepingCapacity: true)
                    if padding == 0 {
                        offset += Int64(used)
                        try endEntry()
                        index += used
                        continue
                    }
                } else {
                    state = .content(remaining: left, padding: padding)
                }
            case .padding(let remaining):
                used = min(remaining, rest.count)
                paddingBytes.append(contentsOf: rest.prefix(used))
                if used == remaining {
                    offset += Int64(used)
                    try endEntry()
                    index += used
                    continue
                }
                state = .padding(remaining: remaining - used)
            case .ended:
                used = rest.count
                if let nonZero = rest.firstIndex(where: { $0 != 0 }) {
                    throw TarError.trailingData(offset: offset + Int64(nonZero))
                }
            }
            offset += Int64(used)
            index += used
        }
    }

    /// The stream is over: refuses one that stopped before its end-of-archive blocks.
    public func finish() throws {
        guard isEnded else { throw TarError.truncated(offset: offset) }
    }

    // MARK: - Internals

    private func endEntry() throws {
        state = .header
        try paddingBytes.withUnsafeBytes { try delegate?.entryEnded(padding: $0) }
    }

    private func headerBlockComplete() throws {
        let start = offset - Int64(TarFormat.blockSize)
        if rawHeader.isEmpty { headerOffset = start }
        if block.allSatisfy({ $0 == 0 }) {
            guard rawHeader.isEmpty else { throw TarError.malformedHeader(offset: start, detail: "extended header without entry") }
            state = .ended
            try delegate?.archiveEnded()
            return
        }
        let entry: TarEntry? = try block.withUnsafeBytes { header in
            guard Self.checksumMatches(header) else { throw TarError.notAHeader(offset: start) }
            return try parseHeader(header, at: start)
        }
        rawHeader.append(contentsOf: block)
        guard rawHeader.count <= Self.maxExtendedHeader + 4 * TarFormat.blockSize else {
            throw TarError.headerTooLarge(offset: headerOffset)
        }
        guard let entry else { return }  // an extended header: its data comes next
        let raw = rawHeader
        rawHeader.removeAll(keepingCapacity: true)
        paxRecords = []
        longName = nil
        longLink = nil
        try delegate?.entry(entry, rawHeader: raw)
        if entry.hasContent && entry.size > 0 {
            state = .content(remaining: entry.size, padding: TarFormat.paddingCount(for: entry.size))
        } else {
            state = .header
            try delegate?.entryEnded(padding: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// Parses a header block: an entry, or nil for an extended header whose data follows.
    private func parseHeader(_ header: UnsafeRawBufferPointer, at start: Int64) throws -> TarEntry? {
        func number(_ offset: Int, _ width: Int, _ name: String) throws -> Int64 {
            guard let value = TarFormat.number(header, at: offset, width: width) else {
                throw TarError.malformedHeader(offset: start, detail: "bad \(name) field")
            }
            return value
        }
        let typeflag = header[156]
        var size = try number(124, 12, "size")
        switch typeflag {
        case UInt8(ascii: "x"), UInt8(ascii: "L"), UInt8(ascii: "K"):
            guard size <= Self.maxExtendedHeader else { throw TarError.headerTooLarge(offset: start) }
            extendedData.removeAll(keepingCapacity: true)
            state = .extended(typeflag: typeflag, remaining: Int(size), padding: TarFormat.paddingCount(for: size))
            if size == 0 { state = .header; try extendedHeaderComplete(typeflag: typeflag) }
            return nil
        case TarEntry.regular, TarEntry.oldRegular, TarEntry.hardLink, TarEntry.symbolicLink,
             TarEntry.characterDevice, TarEntry.blockDevice, TarEntry.directory, TarEntry.fifo, TarEntry.contiguous:
            break
        default:
            let name = TarFormat.string(header, at: 0, width: 100)
            throw TarError.unsupportedType(typeflag: typeflag, path: String(decoding: longName ?? name, as: UTF8.self))
        }
        var path = TarFormat.string(header, at: 0, width: 100)
        let magic = TarFormat.string(header, at: 257, width: 6)
        if magic == Array("ustar".utf8) {  // POSIX ustar (GNU's "ustar  " uses the prefix area otherwise)
            let prefix = TarFormat.string(header, at: 345, width: 155)
            if !prefix.isEmpty { path = prefix + [UInt8(ascii: "/")] + path }
        }
        var entry = TarEntry(
            typeflag: typeflag, path: longName ?? path, linkPath: longLink ?? TarFormat.string(header, at: 157, width: 100),
            mode: Int(try number(100, 8, "mode")), uid: Int(try number(108, 8, "uid")), gid: Int(try number(116, 8, "gid")),
            size: 0, mtime: try number(136, 12, "mtime"),
            userName: TarFormat.string(header, at: 265, width: 32), groupName: TarFormat.string(header, at: 297, width: 32),
            devMajor: Int(try number(329, 8, "devmajor")), devMinor: Int(try number(337, 8, "devminor")))
        for record in paxRecords {
            func integer() throws -> Int64 {
                guard let value = Int64(String(decoding: record.value, as: UTF8.self)), value >= 0 else {
                    throw TarError.malformedHeader(offset: start, detail: "bad PAX \(record.key)")
                }
                return value
            }
            switch record.key {
            case "path", "linkpath":
                // A NUL cannot be part of a file name; the engine would cut the name there.
                guard !record.value.contains(0) else {
                    throw TarError.malformedHeader(offset: start, detail: "NUL byte in PAX \(record.key)")
                }
                if record.key == "path" { entry.path = record.value } else { entry.linkPath = record.value }
            case "size": size = try integer()
            case "uid": entry.uid = Int(try integer())
            case "gid": entry.gid = Int(try integer())
            case "uname": entry.userName = record.value
            case "gname": entry.groupName = record.value
            case "mtime", "atime", "ctime":
                // Kept as given for the writer (nanoseconds survive), so each must be a time the
                // engine can read too, not only one this parser can.
                guard let seconds = TarFormat.paxTime(record.value) else {
                    throw TarError.malformedHeader(offset: start, detail: "bad PAX \(record.key) "
                                                   + TarFormat.quoted(record.value))
                }
                if record.key == "mtime" { entry.mtime = seconds }
                entry.extraRecords.append(record)
            default:
                if record.key.hasPrefix("GNU.sparse") {
                    throw TarError.unsupportedType(typeflag: typeflag, path: entry.displayPath + " (sparse)")
                }
                entry.extraRecords.append(record)
            }
        }
        entry.size = entry.hasContent ? size : 0
        guard !entry.path.isEmpty else { throw TarError.malformedHeader(offset: start, detail: "empty name") }
        return entry
    }

    private func extendedHeaderComplete(typeflag: UInt8) throws {
        switch typeflag {
        case UInt8(ascii: "x"):
            paxRecords += try Self.parseRecords(extendedData, at: headerOffset)
        case UInt8(ascii: "L"):
            longName = Array(extendedData.prefix { $0 != 0 })
        default:
            longLink = Array(extendedData.prefix { $0 != 0 })
        }
        guard rawHeader.count <= Self.maxExtendedHeader + 4 * TarFormat.blockSize else {
            throw TarError.headerTooLarge(offset: headerOffset)
        }
    }

    static func parseRecords(_ data: [UInt8], at offset: Int64) throws -> [PaxRecord] {
        var records: [PaxRecord] = []
        var index = 0
        while index < data.count {
            guard let space = data[index...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: data[index..<space], as: UTF8.self)),
                  // `length <= count - index`, not `index + length <= count`: a length near
                  // Int.max must be refused, not overflow.
                  length > space - index, length <= data.count - index, data[index + length - 1] == UInt8(ascii: "\n"),
                  let equals = data[(space + 1)..<(index + length)].firstIndex(of: UInt8(ascii: "="))
            else {
                throw TarError.malformedHeader(offset: offset, detail: "bad PAX record")
            }
            records.append(PaxRecord(key: String(decoding: data[(space + 1)..<equals], as: UTF8.self),
                                     value: Array(data[(equals + 1)..<(index + length - 1)])))
            index += length
        }
        return records
    }

    static func checksumMatches(_ header: UnsafeRawBufferPointer) -> Bool {
        guard let stored = TarFormat.number(header, at: 148, width: 8) else { return false }
        var unsigned = 0, signed = 0
        for (index, byte) in header.enumerated() {
            let value = (148..<156).contains(index) ? UInt8(ascii: " ") : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        return stored == unsigned || stored == signed
    }
}
