import Foundation
import TestSupport
import XCTest

/// backup, restore and deluser --purge with the real binary, the real engine and real ssh.
final class BackupRestoreTests: GatewayTestCase {
    var alice: SSHClientIdentity!
    var second: GatewayProcess?

    override func setUpWithError() throws {
        try super.setUpWithError()
        alice = try register("alice")
        try gateway.start()
    }

    override func tearDown() {
        if let second {
            if (testRun?.totalFailureCount ?? 0) > 0 { print("second gateway log:\n\(second.log)") }
            second.tearDown()
        }
        super.tearDown()
    }

    private var archive: String { keys.appendingPathComponent("alice.tar").path }

    /// The round trip of the issue: every kind of file, backup, purge, restore on the same
    /// gateway, then on a second gateway with a fresh state directory (from standard input).
    /// Each time every file's hash, mode, owner, mtime and link target is identical, the
    /// same key logs in, and the workspace presents the same host key.
    func testBackupPurgeRestoreHereAndOnAFreshGateway() throws {
        let made = try alice.ssh("alice", port: gateway.port, HomeFixtures.makeFiles)
        XCTAssertEqual(made.status, 0, made.stderr)
        let original = try describeHome("alice", alice)
        XCTAssertTrue(original.contains("./private-dir|d|700|2000:2000|"), original)
        XCTAssertTrue(original.contains("./private.txt|f|600|"), original)
        XCTAssertTrue(original.contains("./old.txt|f|644|2000:2000|981173106|"), original)
        XCTAssertTrue(original.contains("./dangling-link|l|777|2000:2000|"), original)
        XCTAssertTrue(original.contains("hard link shared"), original)
        let hostKey = try workspaceHostKey("alice")
        let record = try registration(on: gateway)

        let backup = try admin(["backup", "alice", "-o", archive])
        XCTAssertTrue(backup.output.hasPrefix("backed up alice (uid 2000) to \(archive): "), backup.output)
        XCTAssertEqual(backup.stderr, "", "no progress output when stderr is not a terminal")
        XCTAssertFalse(FileManager.default.fileExists(atPath: archive + ".partial"))
        XCTAssertGreaterThan(try fileSize(archive), 50 * 1024 * 1024)

        let purged = try admin(["deluser", "alice", "--purge", "--yes"])
        XCTAssertEqual(purged.output, "removed alice, the workspace and the home volume \(gateway.prefix)-alice-home\n")
        XCTAssertEqual(try gateway.docker.listVolumes(labels: ["devenv.instance=\(gateway.prefix)"]).count, 0)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 255, "alice is gone")

        let restored = try admin(["restore", "alice", "-i", archive])
        XCTAssertTrue(restored.output.contains("registered alice from the backup: uid 2000, 1 key"), restored.output)
        XCTAssertEqual(try describeHome("alice", alice), original, "restored on the same gateway")
        XCTAssertEqual(try workspaceHostKey("alice"), hostKey)
        XCTAssertEqual(try registration(on: gateway), record)

        // A second gateway that has never seen alice: a fresh state directory and prefix.
        let fresh = try GatewayProcess()
        second = fresh
        try fresh.start()
        let piped = try runShell("\(shellQuoted(DevenvBinary.path)) restore alice -i - "
                                 + fresh.instanceArguments.map(shellQuoted).joined(separator: " ") + " < \(shellQuoted(archive))")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertTrue(piped.output.contains("registered alice from the backup: uid 2000"), piped.output)
        XCTAssertEqual(try describeHome("alice", alice, gateway: fresh), original, "restored on a fresh gateway")
        XCTAssertEqual(try workspaceHostKey("alice", gateway: fresh), hostKey)
        XCTAssertEqual(try registration(on: fresh), record)
    }

    /// Truncated, random, corrupt and another user's archives, and a restore over a home with
    /// data, are refused with a clear message and change nothing; --force then replaces the
    /// home and keeps the old one as a backup.
    func testBadArchivesAndAHomeWithDataAreRefusedChangingNothing() throws {
        let bob = try register("bob")
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo one > first.txt").status, 0)
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "echo bob > bob.txt").status, 0)
        try admin(["backup", "alice", "-o", archive])
        let bobArchive = keys.appendingPathComponent("bob.tar").path
        try admin(["backup", "bob", "-o", bobArchive])
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo two > after-backup.txt").status, 0)

        let truncated = keys.appendingPathComponent("truncated.tar").path
        let random = keys.appendingPathComponent("random.bin").path
        let corrupt = keys.appendingPathComponent("corrupt.tar").path
        let size = try fileSize(archive)
        XCTAssertEqual(try runShell("""
            head -c \(size / 2) \(archive) > \(truncated)
            head -c 1000000 /dev/urandom > \(random)
            cp \(archive) \(corrupt); printf 'X' | dd of=\(corrupt) bs=1 seek=\(size / 2) conv=notrunc 2>/dev/null
            """).status, 0)
        let before = try state()
        let refusals: [([String], String)] = [
            (["restore", "alice", "-i", truncated], "devenv-gw: error: the backup is incomplete (truncated): it ends after "),
            (["restore", "alice", "-i", random], "devenv-gw: error: not a devenv-gw backup: it is not a tar archive"),
            (["restore", "alice", "-i", corrupt], "devenv-gw: error: the backup is corrupt: its checksum does not match"),
            (["restore", "alice", "-i", bobArchive], "devenv-gw: error: the backup holds the home of bob, not alice; "
                + "to restore it as alice, add --rename-from bob"),
            (["restore", "alice", "-i", archive], "devenv-gw: error: the home of alice (volume \(gateway.prefix)-alice-home) "
                + "holds data; restore refuses to merge into it. Add --force"),
            (["restore", "carol", "-i", truncated, "--rename-from", "alice"], "the backup is incomplete (truncated)"),
            (["restore", "alice", "-i", keys.appendingPathComponent("missing.tar").path], "cannot open"),
        ]
        for (arguments, message) in refusals {
            let result = try gateway.admin(arguments)
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix(message) || result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr)
            XCTAssertEqual(try state(), before, "\(arguments) changed nothing")
        }

        let forced = try admin(["restore", "alice", "-i", archive, "--force"])
        let saved = try XCTUnwrap(forced.output.split(separator: "\n").first { $0.hasPrefix("saved the replaced home") }
            .map { String($0.split(separator: " ").last!) }, forced.output)
        XCTAssertTrue(forced.output.contains("alice is registered here: registration, keys and host key unchanged"),
                      forced.output)
        let listing = try alice.ssh("alice", port: gateway.port, "cat first.txt; ls after-backup.txt")
        XCTAssertEqual(listing.output, "one\n", "replaced, not merged: \(listing.stderr)")
        let savedFiles = try runProgram("/usr/bin/tar", ["-tf", saved]).output
        XCTAssertTrue(savedFiles.contains("home/after-backup.txt"), "the replaced home is kept: \(savedFiles)")

        // The saved home is itself a backup: it brings the newer file back.
        try admin(["restore", "alice", "-i", saved, "--force"])
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat after-backup.txt").output, "two\n")
    }

    /// Archives with a valid manifest and end marker whose home lies about a length, a size or
    /// a time, or holds a file under a symbolic link it made: `restore --force` of each exits
    /// 1 saying why (no crash, no backtrace) and changes nothing.
    func testCraftedArchivesAreRefusedChangingNothing() throws {
        let bob = try register("bob")
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo one > first.txt").status, 0)
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "true").status, 0)
        try admin(["backup", "alice", "-o", archive])
        let manifest = CraftedTar.manifestEntry(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: archive))))
        let before = try state()
        for hostile in HostileHome.all {
            let crafted = keys.appendingPathComponent("crafted.tar")
            try Data(try CraftedTar.backup(manifest: manifest, home: hostile.home, entries: hostile.entries,
                                           contentBytes: hostile.contentBytes)).write(to: crafted)
            let result = try gateway.admin(["restore", "alice", "-i", crafted.path, "--force"])
            XCTAssertEqual(result.status, 1, "\(hostile.name): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("devenv-gw: error: the backup "), "\(hostile.name): \(result.stderr)")
            XCTAssertTrue(hostile.isRefusal(result.stderr), "\(hostile.name): \(result.stderr)")
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr)
            XCTAssertEqual(try state(), before, "\(hostile.name) changed nothing")
        }
    }

    /// bob's archive restored as carol: a registration of her own with bob's keys, and the
    /// files given to her uid.
    func testRestoreUnderAnotherNameGivesTheFilesToTheNewUid() throws {
        let bob = try register("bob")
        XCTAssertEqual(try bob.ssh("bob", port: gateway.port, "mkdir -m 700 secret && echo s > secret/f").status, 0)
        let bobArchive = keys.appendingPathComponent("bob.tar").path
        try admin(["backup", "bob", "-o", bobArchive])
        try admin(["deluser", "bob"])
        let restored = try admin(["restore", "carol", "-i", bobArchive, "--rename-from", "bob"])
        XCTAssertTrue(restored.output.contains("registered carol (uid 2002) with the 1 key of bob"), restored.output)
        let home = try bob.ssh("carol", port: gateway.port, "id -u; stat -c '%u %a' . secret secret/f; cat secret/f")
        XCTAssertEqual(home.output, "2002\n2002 750\n2002 700\n2002 644\ns\n", home.stderr)
    }

    func testPurgeNeedsConfirmationAndAddUserReattachesAKeptVolume() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo kept > kept.txt").status, 0)
        let refused = try gateway.admin(["deluser", "alice", "--purge"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr, "devenv-gw: error: --purge deletes every file of alice (volume "
                       + "\(gateway.prefix)-alice-home); confirm on a terminal, or add --yes\n")
        XCTAssertEqual(try gateway.admin(["deluser", "alice", "--yes"]).status, 2, "--yes without --purge")
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat kept.txt").output, "kept\n", "nothing removed")

        try admin(["deluser", "alice"])
        let again = try admin(["adduser", "alice", "--key", alice.publicKeyLine])
        XCTAssertTrue(again.output.contains("the existing home volume \(gateway.prefix)-alice-home is reattached"),
                      again.output)
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "cat kept.txt").output, "kept\n")

        // A removed user's kept volume can be purged later.
        try admin(["deluser", "alice"])
        let purged = try admin(["deluser", "alice", "--purge", "--yes"])
        XCTAssertEqual(purged.output, "alice was not registered; removed the workspace and the home volume "
                       + "\(gateway.prefix)-alice-home\n")
        XCTAssertEqual(try gateway.admin(["deluser", "alice", "--purge", "--yes"]).status, 1, "nothing left")
    }

    /// A running workspace keeps running (or is stopped and started again with --stop), a
    /// stopped one stays stopped, one without a container is read through a helper that is
    /// removed afterwards; `-o -` writes the archive to a pipe and the report to stderr.
    func testBackupOfRunningStoppedAndContainerlessWorkspaces() throws {
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "echo data > file.txt").status, 0)
        let name = "\(gateway.prefix)-alice"
        let started = try gateway.docker.inspectContainer(name).state.startedAt

        try admin(["backup", "alice", "-o", archive])
        XCTAssertEqual(try gateway.docker.inspectContainer(name).state.startedAt, started, "not stopped")
        XCTAssertEqual(try manifest(of: archive)["quiescent"] as? Bool, false)

        try admin(["backup", "alice", "-o", archive, "--stop"])
        let restarted = try gateway.docker.inspectContainer(name).state
        XCTAssertTrue(restarted.running)
        XCTAssertNotEqual(restarted.startedAt, started, "stopped for the copy and started again")
        XCTAssertEqual(try manifest(of: archive)["quiescent"] as? Bool, true)

        try gateway.docker.stopContainer(name, timeout: 5)
        try admin(["backup", "alice", "-o", archive])
        XCTAssertFalse(try gateway.docker.inspectContainer(name).state.running, "a stopped workspace stays stopped")

        try gateway.docker.removeContainer(name)
        let piped = try runShell(([DevenvBinary.path, "backup", "alice", "-o", "-"] + gateway.instanceArguments)
            .map(shellQuoted).joined(separator: " ") + " | tar -tf -")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertTrue(piped.output.hasPrefix("devenv-backup.json\nhome/\n"), piped.output)
        XCTAssertTrue(piped.output.contains("home/file.txt\n"), piped.output)
        XCTAssertTrue(piped.stderr.hasPrefix("backed up alice (uid 2000) to standard output: "), piped.stderr)
        XCTAssertEqual(try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"]).count, 0,
                       "the helper is gone")

        let unknown = try gateway.admin(["backup", "nobody", "-o", archive])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.stderr, "devenv-gw: error: no such user: 'nobody'\n")
    }

    /// A backup of a 1 GB home streams: the backup process's peak RSS stays under 64 MB.
    func testBackupOfAOneGigabyteHomeKeepsMemoryFlat() throws {
        let made = try alice.ssh("alice", port: gateway.port, "head -c 1G /dev/urandom > big.bin && sha256sum big.bin")
        XCTAssertEqual(made.status, 0, made.stderr)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DevenvBinary.path)
        process.arguments = ["backup", "alice", "-o", archive] + gateway.instanceArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let started = Date()
        try process.run()
        var peakKiB = 0
        while process.isRunning {
            if let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let value = Int(line.split(separator: " ").dropFirst().first ?? "") {
                peakKiB = max(peakKiB, value)
            }
            usleep(20_000)
        }
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(process.terminationStatus, 0)
        print("backup of a 1 GiB home: \(String(format: "%.1f", seconds)) s, peak RSS \(peakKiB / 1024) MiB")
        XCTAssertGreaterThan(peakKiB, 0, "VmHWM was read")
        XCTAssertLessThan(peakKiB, 64 * 1024, "peak RSS \(peakKiB) KiB")
        XCTAssertGreaterThan(try fileSize(archive), 1 << 30)
        let listed = try runProgram("/usr/bin/tar", ["-tvf", archive])
        XCTAssertTrue(listed.output.contains(" 1073741824 "), listed.output)

        // Interrupted half-way, a backup fails and leaves no file under either name; the
        // complete archive of the first run is not replaced.
        let complete = try fileSize(archive)
        let interrupted = Process()
        interrupted.executableURL = URL(fileURLWithPath: DevenvBinary.path)
        interrupted.arguments = ["backup", "alice", "-o", archive] + gateway.instanceArguments
        interrupted.standardOutput = FileHandle.nullDevice
        interrupted.standardError = FileHandle.nullDevice
        try interrupted.run()
        while (try? fileSize(archive + ".partial")) ?? 0 < 100 << 20 && interrupted.isRunning { usleep(10_000) }
        interrupted.terminate()
        interrupted.waitUntilExit()
        XCTAssertEqual(interrupted.terminationStatus, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: archive + ".partial"))
        XCTAssertEqual(try fileSize(archive), complete)

        // The complete archive restores the 1 GiB file byte for byte onto a fresh volume.
        try admin(["deluser", "alice", "--purge", "--yes"])
        try admin(["restore", "alice", "-i", archive])
        let restored = try alice.ssh("alice", port: gateway.port, "sha256sum big.bin")
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(restored.output, made.output, "SHA-256 of the restored 1 GiB file")
    }

    // MARK: - Helpers

    /// The manifest of a backup archive.
    private func manifest(of path: String) throws -> [String: Any] {
        let json = try runProgram("/usr/bin/tar", ["-xOf", path, "devenv-backup.json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
    }

    /// `users --json` (name, uid, key count, creation time) and alice's key lines.
    private func registration(on gateway: GatewayProcess) throws -> [String] {
        let keys = try JSONSerialization.jsonObject(with: try admin(["keys", "alice", "--json"], gateway: gateway).stdout)
        return [try admin(["users", "--json"], gateway: gateway).output]
            + ((keys as? [[String: Any]]) ?? []).compactMap { $0["key"] as? String }
    }

    private func fileSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }

    /// Registry, containers, volumes and alice's home: what a refused restore must not change.
    private func state() throws -> String {
        let users = try gateway.admin(["users", "--json"]).output
        let keysOf = try ["alice", "bob"].map { try gateway.admin(["keys", $0, "--json"]).output }.joined()
        let containers = try gateway.docker.listContainers(labels: ["devenv.instance=\(gateway.prefix)"])
            .map { "\($0.name) \($0.id) \($0.state)" }.sorted()
        let volumes = try gateway.docker.listVolumes(labels: ["devenv.instance=\(gateway.prefix)"]).map(\.name).sorted()
        let replaced = (try? FileManager.default.contentsOfDirectory(
            atPath: gateway.stateDirectory.appendingPathComponent("replaced-homes").path)) ?? []
        return [users, keysOf, containers.joined(separator: "\n"), volumes.joined(separator: "\n"),
                replaced.joined(separator: "\n"), try describeHome("alice", alice)].joined(separator: "\n--\n")
    }
}
