import Foundation
import Tar
import TestSupport
import XCTest

/// The streaming tar reader and header writer, against GNU tar both ways.
final class TarTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-tar")
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Entries whose fields do not fit ustar (long and non-ASCII names and links, a uid
    /// beyond 7 octal digits, an mtime before 1970) come back unchanged, and GNU tar reads them.
    func testHeadersThatNeedPAXRoundTripAndGNUTarReadsThem() throws {
        let longName = Array(("d/" + String(repeating: "é", count: 80) + "/" + String(repeating: "n", count: 120)).utf8)
        let entries = [
            TarEntry(typeflag: TarEntry.directory, path: Array("top/".utf8), mode: 0o750, uid: 4_294_967_294,
                     gid: 4_294_967_294, mtime: 1_700_000_000),
            TarEntry(typeflag: TarEntry.regular, path: longName, mode: 0o600, uid: 2000, gid: 2000, size: 5,
                     mtime: -31_536_001, extraRecords: [PaxRecord(key: "mtime", value: Array("-31536000.25".utf8))]),
            TarEntry(typeflag: TarEntry.symbolicLink, path: Array("top/link".utf8),
                     linkPath: Array(String(repeating: "ü/", count: 70).utf8), mode: 0o777, mtime: 1),
            TarEntry(typeflag: TarEntry.regular, path: Array(("p/" + String(repeating: "x", count: 140) + "/short").utf8),
                     mode: 0o644, mtime: 2),
        ]
        var archive: [UInt8] = []
        for entry in entries {
            archive += entry.encodedHeader()
            if entry.size > 0 { archive += Array("hello".utf8) + TarFormat.padding(for: 5) }
        }
        archive += TarFormat.endOfArchive

        let collected = try parse(archive, pieceSize: 7)
        XCTAssertEqual(collected.entries.count, entries.count)
        for (read, written) in zip(collected.entries, entries) {
            var expected = written
            if !expected.hasContent { expected.size = 0 }
            XCTAssertEqual(read, expected, read.displayPath)
        }
        XCTAssertEqual(collected.content, Array("hello".utf8))
        XCTAssertTrue(collected.ended)

        let file = directory.appendingPathComponent("pax.tar")
        try Data(archive).write(to: file)
        let listing = try runProgram("/usr/bin/tar", ["--numeric-owner", "-tvf", file.path])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertTrue(listing.output.contains("4294967294/4294967294"), listing.output)
        XCTAssertTrue(listing.output.contains(String(decoding: longName, as: UTF8.self)), listing.output)
        XCTAssertTrue(listing.output.contains("x/short"), listing.output)
    }

    /// What GNU tar writes (PAX and GNU formats, hard links, empty directories) is read entry for entry.
    func testReadsWhatGNUTarWrites() throws {
        let tree = directory.appendingPathComponent("tree")
        let script = """
            set -e; mkdir -p \(tree.path)/a/empty "\(tree.path)/a/dir é"; cd \(tree.path)/a
            printf data > file; ln file hard; ln -s file soft
            mkdir -p \(String(repeating: "long", count: 30)); echo x > \(String(repeating: "long", count: 30))/\(String(repeating: "f", count: 110))
            """
        XCTAssertEqual(try runShell(script).status, 0)
        for format in ["posix", "gnu"] {
            let file = directory.appendingPathComponent("\(format).tar").path
            let made = try runProgram("/usr/bin/tar", ["--format=\(format)", "-C", tree.path, "-cf", file, "a"])
            XCTAssertEqual(made.status, 0, made.stderr)
            let expected = try runProgram("/usr/bin/tar", ["-tf", file]).output.split(separator: "\n").map(String.init)
            let collected = try parse(Array(try Data(contentsOf: URL(fileURLWithPath: file))), pieceSize: 1000)
            XCTAssertEqual(collected.entries.map(\.displayPath), expected, format)
            let hard = try XCTUnwrap(collected.entries.first { $0.typeflag == TarEntry.hardLink }, format)
            XCTAssertEqual([hard.displayPath, String(decoding: hard.linkPath, as: UTF8.self)].sorted(), ["a/file", "a/hard"])
            XCTAssertTrue(collected.ended, format)
        }
    }

    func testRefusesGarbageTruncationAndTrailingData() throws {
        let entry = TarEntry(typeflag: TarEntry.regular, path: Array("f".utf8), mode: 0o644, size: 600, mtime: 0)
        let archive = entry.encodedHeader() + [UInt8](repeating: 7, count: 600) + TarFormat.padding(for: 600)
            + TarFormat.endOfArchive
        XCTAssertNoThrow(try parse(archive, pieceSize: 100))

        XCTAssertThrowsError(try parse([UInt8](repeating: 0x41, count: 1024), pieceSize: 512)) { error in
            XCTAssertEqual(error as? TarError, .notAHeader(offset: 0))
        }
        for cut in [1, 511, 512, 700, 1024, 1536] {
            XCTAssertThrowsError(try parse(Array(archive.prefix(cut)), pieceSize: 64), "cut at \(cut)") { error in
                XCTAssertEqual(error as? TarError, .truncated(offset: Int64(cut)))
            }
        }
        XCTAssertThrowsError(try parse(archive + [1], pieceSize: 4096)) { error in
            XCTAssertEqual(error as? TarError, .trailingData(offset: Int64(archive.count)))
        }
        var corrupt = archive
        corrupt[100] ^= 1  // the mode field: the checksum no longer matches
        XCTAssertThrowsError(try parse(corrupt, pieceSize: 4096)) { error in
            XCTAssertEqual(error as? TarError, .notAHeader(offset: 0))
        }
    }

    /// Record lengths and times that overflow a machine integer are malformed headers, not
    /// traps: each PAX case in its own archive, read whole and byte by byte.
    func testOverflowingPAXRecordsAreMalformed() throws {
        let file = CraftedTar.header("f")
        // Record syntax is refused at the PAX header (byte 0), values at the entry's header.
        let cases: [([UInt8], String, Int64)] = [
            (CraftedTar.record("comment", "a") + Array("9223372036854775800 path=x\n".utf8), "bad PAX record", 0),
            (Array("9223372036854775807 path=x\n".utf8), "bad PAX record", 0),
            (CraftedTar.record("path", "a\0b"), "NUL byte in PAX path", 1024),
        ] + ["nan", "inf", "-inf", "1e300", "-1e300", "0x10", "9223372036854775808", "1.5e3", ""].map {
            (CraftedTar.record("mtime", $0), "bad PAX mtime '\($0)'", 1024)
        } + [(CraftedTar.record("atime", "nan"), "bad PAX atime 'nan'", 1024),
             (CraftedTar.record("ctime", "-inf"), "bad PAX ctime '-inf'", 1024)]
        for (records, detail, offset) in cases {
            for pieceSize in [1, 4096] {
                XCTAssertThrowsError(try parse(CraftedTar.pax(records) + file + TarFormat.endOfArchive, pieceSize: pieceSize),
                                     detail) { error in
                    XCTAssertEqual(error as? TarError, .malformedHeader(offset: offset, detail: detail))
                }
            }
        }
    }

    /// PAX times: decimal seconds with an optional sign and fraction, rounded down, within Int64.
    func testPAXTimes() {
        let valid: [(String, Int64)] = [("0", 0), ("1700000000.123456789", 1_700_000_000), ("-1.5", -2), ("-2", -2),
                                        ("-0.000", 0), ("12.", 12), ("9223372036854775807", Int64.max),
                                        ("-9223372036854775808", Int64.min)]
        for (text, seconds) in valid { XCTAssertEqual(TarFormat.paxTime(Array(text.utf8)), seconds, text) }
        for text in ["", "-", ".5", "+1", " 1", "1 ", "1.2.3", "nan", "inf", "1e3", "-9223372036854775808.5", "0x1"] {
            XCTAssertNil(TarFormat.paxTime(Array(text.utf8)), text)
        }
    }

    // MARK: - Helpers

    final class Collector: TarParserDelegate {
        var entries: [TarEntry] = []
        var content: [UInt8] = []
        var rawBytes = 0
        var ended = false
        /// Where the first end block began.
        var endOffset: Int64 = -1
        weak var parser: TarParser?
        func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws { entries.append(entry); rawBytes += rawHeader.count }
        func content(_ bytes: UnsafeRawBufferPointer) throws { content += bytes; rawBytes += bytes.count }
        func entryEnded(padding: UnsafeRawBufferPointer) throws { rawBytes += padding.count }
        func archiveEnded() throws {
            ended = true
            endOffset = (parser?.offset ?? 0) - 512
        }
    }

    /// Parses `archive` fed in pieces of `pieceSize` bytes.
    private func parse(_ archive: [UInt8], pieceSize: Int) throws -> Collector {
        let collector = Collector()
        let parser = TarParser(delegate: collector)
        collector.parser = parser
        var index = 0
        while index < archive.count {
            let end = min(index + pieceSize, archive.count)
            try archive[index..<end].withUnsafeBytes { try parser.feed($0) }
            index = end
        }
        try parser.finish()
        XCTAssertEqual(Int64(collector.rawBytes), collector.endOffset, "every byte before the end blocks is reported once")
        return collector
    }
}
