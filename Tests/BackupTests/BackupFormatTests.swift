@testable import Backup
import Foundation
import Registry
import Tar
import TestSupport
import XCTest

/// The archive format on its own: a home tar (made by GNU tar, as the engine makes them)
/// through `BackupWriter` and back out of `BackupReader`, and every kind of bad archive.
final class BackupFormatTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("devenv-backup-format")
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Everything a home holds survives backup and restore under another name, with the
    /// archive's uid given to the new owner and other owners kept.
    func testHomeRoundTripsWithRenameAndOwnerChange() throws {
        let source = directory.appendingPathComponent("src")
        try makeHome(at: source.appendingPathComponent("alice"), uid: 2000)
        let (archive, written) = try backup(of: source, user: "alice", uid: 2000)
        XCTAssertEqual(written.archiveBytes, Int64(archive.count))
        XCTAssertEqual(written.entries, 13)
        XCTAssertEqual(written.contentBytes, 70_000 + 3 + 4 + 5)

        var restored: [UInt8] = []
        let read = try readBack(archive, pieceSize: 4093) { manifest in
            XCTAssertEqual(manifest.user, "alice")
            XCTAssertEqual(manifest.record.keys, ["ssh-ed25519 AAAA test"])
            return RestoreTarget(directory: "bob", uid: 3000, emit: { restored += $0 })
        }
        XCTAssertEqual(read.sha256, written.sha256)
        XCTAssertEqual(read.entries, written.entries)

        let target = directory.appendingPathComponent("dst")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try Data(restored).write(to: directory.appendingPathComponent("restored.tar"))
        let extracted = try runProgram("/usr/bin/tar", ["--numeric-owner", "-xpf", directory.appendingPathComponent("restored.tar").path,
                                                      "-C", target.path])
        XCTAssertEqual(extracted.status, 0, extracted.stderr)
        let before = try listing(source.appendingPathComponent("alice")).replacingOccurrences(of: " 2000:2000 ", with: " 3000:3000 ")
        XCTAssertEqual(try listing(target.appendingPathComponent("bob")), before)
        XCTAssertTrue(before.contains(" 0:0 "), "a root-owned file keeps its owner: \(before)")
    }

    func testAHomeLessUserHasOnlyManifestAndEndMarker() throws {
        var archive: [UInt8] = []
        let writer = try BackupWriter(manifest: manifest(user: "carol", uid: 2002, hasHome: false)) { archive += $0 }
        let summary = try writer.finish()
        XCTAssertEqual(summary.entries, 0)
        let listed = try listTar(archive)
        XCTAssertEqual(listed, [BackupFormat.manifestPath, BackupFormat.endMarkerPath])
        XCTAssertEqual(try readBack(archive) { _ in RestoreTarget(directory: "carol", uid: 2002, emit: nil) }.entries, 0)
    }

    /// A cut anywhere, a changed byte anywhere, garbage, another tar: each is refused with a
    /// message that says which.
    func testTruncatedCorruptAndForeignArchivesAreRefused() throws {
        let source = directory.appendingPathComponent("src")
        try makeHome(at: source.appendingPathComponent("alice"), uid: 2000)
        let (archive, _) = try backup(of: source, user: "alice", uid: 2000)
        let check: BackupReader.ManifestCheck = { _ in RestoreTarget(directory: "alice", uid: 2000, emit: nil) }

        // Everything up to the first end block must be there; like GNU tar, the reader does not
        // insist on the second one.
        XCTAssertNoThrow(try readBack(Array(archive.prefix(archive.count - 512)), check: check))
        for cut in stride(from: 0, to: archive.count - 512, by: 997) + [archive.count - 1024, archive.count - 513] {
            XCTAssertThrowsError(try readBack(Array(archive.prefix(cut)), check: check), "cut at \(cut)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("truncated") || (cut < 2048 && text.contains("not a devenv-gw backup")),
                              "cut at \(cut): \(text)")
            }
        }
        for position in stride(from: 700, to: archive.count - 1024, by: 1531) {
            var corrupt = archive
            corrupt[position] ^= 0x20
            XCTAssertThrowsError(try readBack(corrupt, check: check), "byte \(position)") { error in
                guard let error = error as? BackupError else { return XCTFail("byte \(position): \(error)") }
                switch error {
                case .corrupt, .badHomeEntry, .notABackup: break
                default: XCTFail("byte \(position): \(error)")
                }
            }
        }
        var random = [UInt8](repeating: 0, count: 100_000)
        for index in random.indices { random[index] = UInt8.random(in: 0...255) }
        XCTAssertThrowsError(try readBack(random, check: check)) { error in
            XCTAssertEqual("\(error)", "not a devenv-gw backup: it is not a tar archive")
        }
        XCTAssertThrowsError(try readBack([], check: check)) { error in
            XCTAssertEqual("\(error)", "not a devenv-gw backup: it is empty")
        }
        let foreign = TarEntry(typeflag: TarEntry.regular, path: Array("notes.txt".utf8), mode: 0o644, mtime: 0).encodedHeader()
            + TarFormat.endOfArchive
        XCTAssertThrowsError(try readBack(foreign, check: check)) { error in
            XCTAssertEqual("\(error)", "not a devenv-gw backup: it does not start with devenv-backup.json "
                           + "(its first entry is notes.txt)")
        }
        XCTAssertThrowsError(try readBack(archive + [1, 2, 3], check: check)) { error in
            XCTAssertTrue("\(error)".contains("after the end of the archive"), "\(error)")
        }
    }

    func testManifestChecksComeFirst() throws {
        let source = directory.appendingPathComponent("src")
        try makeHome(at: source.appendingPathComponent("bob"), uid: 2001)
        let (archive, _) = try backup(of: source, user: "bob", uid: 2001)
        var reads = 0
        XCTAssertThrowsError(try readBack(archive) { manifest in
            reads += 1
            throw BackupError.otherUser(archive: manifest.user, requested: "alice")
        }) { error in
            XCTAssertEqual("\(error)", "the backup holds the home of bob, not alice; to restore it as alice, "
                           + "add --rename-from bob")
        }
        XCTAssertEqual(reads, 1)

        var future = manifest(user: "bob", uid: 2001, hasHome: false)
        future.version = 2
        let newer = BackupFormat.metadataEntry(BackupFormat.manifestPath, json: try BackupFormat.encoder.encode(future),
                                               mtime: Date()) + TarFormat.endOfArchive
        XCTAssertThrowsError(try readBack(newer) { _ in XCTFail("not reached"); throw CocoaError(.featureUnsupported) }) { error in
            XCTAssertEqual(error as? BackupError, .unsupportedVersion(2))
        }
    }

    /// Entries that would land outside the home, or that no home holds, are refused.
    func testHostileHomeEntriesAreRefused() throws {
        let top = TarEntry(typeflag: TarEntry.directory, path: Array("home/".utf8), mode: 0o750, uid: 2000, gid: 2000, mtime: 0)
        let cases: [(TarEntry, String)] = [
            (TarEntry(typeflag: TarEntry.regular, path: Array("home/../etc/passwd".utf8), mode: 0o644, mtime: 0), "'..'"),
            (TarEntry(typeflag: TarEntry.regular, path: Array("/etc/passwd".utf8), mode: 0o644, mtime: 0), "outside"),
            (TarEntry(typeflag: TarEntry.regular, path: Array("other/x".utf8), mode: 0o644, mtime: 0), "outside"),
            (TarEntry(typeflag: TarEntry.hardLink, path: Array("home/x".utf8), linkPath: Array("etc/shadow".utf8),
                      mode: 0o644, mtime: 0), "outside"),
            (TarEntry(typeflag: TarEntry.blockDevice, path: Array("home/sda".utf8), mode: 0o600, mtime: 0,
                      devMajor: 8, devMinor: 0), "device"),
            (top, "appears twice"),
        ]
        let manifestEntry = BackupFormat.metadataEntry(
            BackupFormat.manifestPath, json: try BackupFormat.encoder.encode(manifest(user: "alice", uid: 2000, hasHome: true)),
            mtime: Date())
        for (entry, reason) in cases {
            let archive = manifestEntry + top.encodedHeader() + entry.encodedHeader() + TarFormat.endOfArchive
            XCTAssertThrowsError(try readBack(archive) { _ in RestoreTarget(directory: "alice", uid: 2000, emit: nil) }) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(entry.displayPath): \(error)")
            }
        }
        let file = TarEntry(typeflag: TarEntry.regular, path: Array("home/x".utf8), mode: 0o644, mtime: 0)
        let noTop = manifestEntry + file.encodedHeader() + TarFormat.endOfArchive
        XCTAssertThrowsError(try readBack(noTop) { _ in RestoreTarget(directory: "alice", uid: 2000, emit: nil) }) { error in
            XCTAssertTrue("\(error)".contains("the home directory must come first"), "\(error)")
        }
    }

    /// Lengths, sizes and times that overflow, and entries under a symbolic link the archive
    /// made, in a backup whose manifest and end marker are valid: each is refused with why.
    func testHostileHomesAreRefusedNotACrash() throws {
        let manifestEntry = BackupFormat.metadataEntry(
            BackupFormat.manifestPath, json: try BackupFormat.encoder.encode(manifest(user: "alice", uid: 2000, hasHome: true)),
            mtime: Date())
        for hostile in HostileHome.all {
            let archive = try CraftedTar.backup(manifest: manifestEntry, home: hostile.home, entries: hostile.entries,
                                                contentBytes: hostile.contentBytes)
            for pieceSize in [512, 65536] {
                XCTAssertThrowsError(try readBack(archive, pieceSize: pieceSize) { _ in
                    RestoreTarget(directory: "alice", uid: 2000, emit: { _ in })
                }, hostile.name) { error in
                    XCTAssertTrue(hostile.isRefusal("\(error)"), "\(hostile.name): \(error)")
                }
            }
        }
    }

    /// A hard link whose target lies under a symbolic link of the archive is refused too.
    func testHardLinkThroughASymbolicLinkIsRefused() throws {
        let manifestEntry = BackupFormat.metadataEntry(
            BackupFormat.manifestPath, json: try BackupFormat.encoder.encode(manifest(user: "alice", uid: 2000, hasHome: true)),
            mtime: Date())
        let home = CraftedTar.header("home/", type: "5") + CraftedTar.header("home/esc", type: "2", linkName: "/etc")
            + CraftedTar.header("home/h", type: "1", linkName: "home/esc/shadow")
        let archive = try CraftedTar.backup(manifest: manifestEntry, home: home, entries: 3, contentBytes: 0)
        XCTAssertThrowsError(try readBack(archive) { _ in RestoreTarget(directory: "alice", uid: 2000, emit: nil) }) { error in
            XCTAssertEqual("\(error)", "the backup holds an entry that cannot be restored: home/h: "
                           + "it lies under home/esc, a symbolic link in the archive")
        }
    }

    // MARK: - Helpers

    private func manifest(user: String, uid: Int, hasHome: Bool) -> BackupManifest {
        BackupManifest(record: UserRecord(name: user, uid: uid, created: Date(timeIntervalSince1970: 1_700_000_000.123),
                                          keys: ["ssh-ed25519 AAAA test"], hostKey: "KEY"),
                       created: Date(), hasHome: hasHome, quiescent: false, prefix: "test", image: nil)
    }

    /// A home with every kind of entry, owned by `uid` (one file by root).
    private func makeHome(at home: URL, uid: Int) throws {
        let script = """
            set -e; mkdir -p '\(home.path)'; cd '\(home.path)'
            head -c 70000 /dev/urandom > random.bin; ln random.bin hard.bin; ln -s random.bin link; ln -s /nowhere dangling
            printf abc > 'name with spaces é'; chmod 600 'name with spaces é'
            mkdir -m 700 private; printf abcd > private/f; mkdir empty
            mkdir -p "\(String(repeating: "deep", count: 40))"; printf 12345 > "\(String(repeating: "deep", count: 40))/x"
            touch old; touch -h -d '2001-02-03 04:05:06' old dangling
            chown -hR \(uid):\(uid) .; chmod 750 .
            mkfifo pipe; chown 0:0 pipe
            """
        let made = try runShell(script)
        XCTAssertEqual(made.status, 0, made.stderr)
    }

    /// The archive `BackupWriter` makes of `parent/user` (fed as GNU tar writes it, in pieces).
    private func backup(of parent: URL, user: String, uid: Int) throws -> ([UInt8], BackupSummary) {
        let tar = try runProgram("/usr/bin/tar", ["--format=posix", "--numeric-owner", "-C", parent.path, "-cf", "-", user])
        XCTAssertEqual(tar.status, 0, tar.stderr)
        var archive: [UInt8] = []
        let writer = try BackupWriter(manifest: manifest(user: user, uid: uid, hasHome: true)) { archive += $0 }
        let bytes = [UInt8](tar.stdout)
        for start in stride(from: 0, to: bytes.count, by: 5000) {
            try bytes[start..<min(start + 5000, bytes.count)].withUnsafeBytes { try writer.writeHome($0) }
        }
        let summary = try writer.finish()  // before `archive` is read: it writes the end marker
        return (archive, summary)
    }

    private func readBack(_ archive: [UInt8], pieceSize: Int = 65536,
                          check: @escaping BackupReader.ManifestCheck) throws -> BackupSummary {
        let reader = BackupReader(check: check)
        for start in stride(from: 0, to: archive.count, by: pieceSize) {
            try archive[start..<min(start + pieceSize, archive.count)].withUnsafeBytes { try reader.feed($0) }
        }
        return try reader.finish()
    }

    private func listTar(_ archive: [UInt8]) throws -> [String] {
        let file = directory.appendingPathComponent("list.tar")
        try Data(archive).write(to: file)
        let result = try runProgram("/usr/bin/tar", ["-tf", file.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.output.split(separator: "\n").map(String.init)
    }

    /// Path, type, mode, owner, mtime, link target, size and content hash of every entry,
    /// and which files share an inode.
    private func listing(_ root: URL) throws -> String {
        let result = try runShell("""
            cd '\(root.path)' && find . -printf '%p %y %m %U:%G %T@ %l %s\\n' | sort
            find . -type f -exec sha256sum {} + | sort
            [ "$(stat -c %i random.bin)" = "$(stat -c %i hard.bin)" ] && echo hard link kept
            """)
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.output
    }
}
