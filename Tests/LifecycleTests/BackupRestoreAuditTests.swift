import Foundation
import TestSupport
import XCTest

/// What backup and restore leave in the real journal, and the order in which
/// `restore --force` treats a running workspace.
final class BackupRestoreAuditTests: GatewayTestCase {
    var user: String!
    var identity: SSHClientIdentity!

    override func setUpWithError() throws {
        try super.setUpWithError()
        try Journal.requireJournald()
        // A name of its own: the journal keeps the events of every earlier run.
        user = "r\(UInt32.random(in: 0...UInt32.max))"
        identity = try register(user)
        try gateway.start()
    }

    private var archive: String { keys.appendingPathComponent("home.tar").path }

    /// backup, then restore of the purged user: `workspace-backed-up`, then the restore's
    /// registration (`user-added` and its keys, as adduser records them) and
    /// `workspace-restored`, each naming the admin who ran it.
    func testBackupAndRestoreAreInTheJournalWithTheAdmin() throws {
        XCTAssertEqual(try identity.ssh(user, port: gateway.port, "echo data > file.txt").status, 0)
        try admin(["backup", user, "-o", archive])
        try admin(["deluser", user, "--purge", "--yes"])
        try admin(["restore", user, "-i", archive])

        let entries = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 7)
            .filter { $0["DEVENV_ADMIN_UID"] != nil }
        XCTAssertEqual(entries.map { $0["DEVENV_EVENT"] }, ["user-added", "key-added", "workspace-backed-up",
                                                            "user-removed", "user-added", "key-added",
                                                            "workspace-restored"])
        guard entries.count == 7 else { return }
        let backedUp = entries[2], added = entries[4], restored = entries[6]
        let size = try FileManager.default.attributesOfItem(atPath: archive)[.size] as? Int
        XCTAssertEqual(backedUp["MESSAGE_ID"], "0067229c7c6644279f4195e1958418d9")
        XCTAssertEqual(backedUp["DEVENV_ARCHIVE"], archive)
        XCTAssertEqual(backedUp["DEVENV_ARCHIVE_BYTES"], size.map(String.init))
        XCTAssertEqual(backedUp["DEVENV_CONTAINER"], "\(gateway.prefix)-\(user!)")
        XCTAssertEqual(backedUp["DEVENV_VOLUME"], "\(gateway.prefix)-\(user!)-home")
        XCTAssertEqual(added["MESSAGE_ID"], "db746a451b87443fa599af23dcab5913")
        XCTAssertEqual(added["DEVENV_UID"], "2000", "the uid of the archive")
        XCTAssertEqual(added["DEVENV_KEY_COUNT"], "1")
        XCTAssertEqual(entries[5]["DEVENV_KEY_FINGERPRINT"], entries[1]["DEVENV_KEY_FINGERPRINT"])
        XCTAssertEqual(restored["MESSAGE_ID"], "e30ed6a5eb414fbbbb03a81f11cc7dce")
        XCTAssertEqual(restored["DEVENV_ARCHIVE"], archive)
        XCTAssertEqual(restored["DEVENV_VOLUME"], "\(gateway.prefix)-\(user!)-home")
        let name = String(cString: getpwuid(getuid()).pointee.pw_name)
        for entry in entries {
            XCTAssertEqual(entry["DEVENV_ADMIN_UID"], String(getuid()))
            XCTAssertEqual(entry["DEVENV_ADMIN_USER"], name)
            XCTAssertEqual(entry["_UID"], String(getuid()))
        }
        XCTAssertEqual(restored["MESSAGE"], "restored the home of \"\(user!)\" from \"\(archive)\" by \(name) (uid \(getuid()))")

        // A restore into a registered user records no registration.
        try admin(["restore", user, "-i", archive, "--force"])
        let after = try Journal.entries(where: "DEVENV_USER", is: user, atLeast: 8).filter { $0["DEVENV_ADMIN_UID"] != nil }
        XCTAssertEqual(after.dropFirst(7).map { $0["DEVENV_EVENT"] }, ["workspace-restored"])
    }

    /// `restore --force` over a running workspace in which a process keeps writing: the
    /// engine's events show the container stopped before the home is read for the saved
    /// copy, and the saved copy holds the writer's last write (its two files agree).
    func testRestoreForceStopsTheWorkspaceBeforeSavingTheHome() throws {
        XCTAssertEqual(try identity.ssh(user, port: gateway.port, "echo 0 > count").status, 0)
        try admin(["backup", user, "-o", archive])
        try startInWorkspace(identity, user, "cd; i=0; while :; do i=$((i+1)); echo $i >> log; echo $i > last; sleep 0.01; done")
        XCTAssertTrue(waitFor(10) {
            let lines = (try? self.identity.ssh(self.user, port: self.gateway.port, "wc -l < log").output) ?? ""
            return (Int(lines.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 10
        }, "the writer runs")

        let since = String(Int(Date().timeIntervalSince1970) - 1)
        let restored = try admin(["restore", user, "-i", archive, "--force"])
        let saved = try XCTUnwrap(restored.output.split(separator: "\n").first { $0.hasPrefix("saved the replaced home") }
            .map { String($0.split(separator: " ").last!) }, restored.output)
        let container = "\(gateway.prefix)-\(user!)"
        let events = try runProgram("/usr/bin/docker", [
            "events", "--since", since, "--until", String(Int(Date().timeIntervalSince1970) + 1),
            "--filter", "container=\(container)", "--format", "{{.Action}}",
        ]).output.split(separator: "\n").map(String.init)
        let died = try XCTUnwrap(events.firstIndex(of: "die"), "\(events)")
        let destroyed = try XCTUnwrap(events.firstIndex(of: "destroy"), "\(events)")
        XCTAssertTrue(events[died..<destroyed].contains("archive-path"),
                      "the home was read for the saved copy after the container stopped: \(events)")

        let log = try runProgram("/bin/tar", ["-xOf", saved, "home/log"]).output
        let last = try runProgram("/bin/tar", ["-xOf", saved, "home/last"]).output
        let lastLogged = Int(log.split(separator: "\n").last ?? "") ?? -1
        let lastWritten = Int(last.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -2
        // The writer writes log, then last: stopped in between, log is one ahead.
        XCTAssertTrue([lastWritten, lastWritten + 1].contains(lastLogged),
                      "log ends at \(lastLogged), last says \(lastWritten)")
    }

    private func waitFor(_ seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return false
    }
}
