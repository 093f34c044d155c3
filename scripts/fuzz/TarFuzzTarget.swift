// The libFuzzer entry point for the tar reader, compiled together with Sources/Tar by
// scripts/fuzz-tar.sh (not part of the package). Besides "never crashes", it checks what a
// restore relies on: the same archive read whole or in pieces gives the same entries and the
// same error, the bytes reported add up to the offset, and every entry read back from
// `encodedHeader()` (what a restore hands the engine) is the entry that was read.

/// Everything a parser reported, for comparing two readings of one input.
final class Recorder: TarParserDelegate {
    var events: [String] = []
    var reportedBytes: Int64 = 0
    var entries: [TarEntry] = []

    func entry(_ entry: TarEntry, rawHeader: [UInt8]) throws {
        entries.append(entry)
        events.append("entry \(entry)")
        reportedBytes += Int64(rawHeader.count)
    }

    func content(_ bytes: UnsafeRawBufferPointer) throws { reportedBytes += Int64(bytes.count) }

    func entryEnded(padding: UnsafeRawBufferPointer) throws {
        reportedBytes += Int64(padding.count)
        events.append("end")
    }

    func archiveEnded() throws { events.append("archive end") }
}

/// Feeds `input` in pieces of `pieceSize` bytes; returns what was reported and the error.
func read(_ input: UnsafeRawBufferPointer, pieceSize: Int) -> (Recorder, String, TarParser) {
    let recorder = Recorder()
    let parser = TarParser(delegate: recorder)
    var outcome = "ok"
    do {
        var start = 0
        while start < input.count {
            let end = min(start + pieceSize, input.count)
            try parser.feed(UnsafeRawBufferPointer(rebasing: input[start..<end]))
            start = end
        }
        try parser.finish()
    } catch {
        outcome = "\(error)"
    }
    return (recorder, outcome, parser)
}

/// The fields a restore passes on, as the writer can express them.
func restorable(_ entry: TarEntry) -> [String] {
    [String(entry.typeflag), "\(entry.path)", "\(entry.linkPath)", String(entry.uid), String(entry.gid),
     String(entry.size), String(entry.mtime), String(entry.mode & 0o7777), "\(entry.userName)", "\(entry.groupName)"]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTarParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let (whole, wholeOutcome, parser) = read(input, pieceSize: max(1, size))
    // Piece sizes from 1 byte up, so that every state sees a boundary somewhere.
    let pieceSize = size > 0 ? Int(input[size - 1]) % 700 + 1 : 1
    let (pieces, piecesOutcome, _) = read(input, pieceSize: pieceSize)
    precondition(whole.events == pieces.events && wholeOutcome == piecesOutcome,
                 "pieces of \(pieceSize) read differently: \(piecesOutcome) vs \(wholeOutcome)")
    if parser.isEnded {
        precondition(whole.reportedBytes + Int64(TarFormat.blockSize) <= parser.offset,
                     "reported \(whole.reportedBytes) bytes of \(parser.offset)")
    }
    for entry in whole.entries {
        var header = entry
        header.size = 0  // the content is not at hand; size is checked in the unit tests
        let again = header.encodedHeader() + TarFormat.endOfArchive
        let (reread, outcome, _) = again.withUnsafeBytes { read($0, pieceSize: again.count) }
        precondition(outcome == "ok" && reread.entries.count == 1, "re-encoded entry unreadable: \(outcome)")
        precondition(restorable(reread.entries[0]) == restorable(header),
                     "re-encoded entry differs: \(reread.entries[0]) vs \(header)")
    }
    return 0
}
