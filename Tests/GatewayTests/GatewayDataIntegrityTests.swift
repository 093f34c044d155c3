import Foundation
import TestSupport
import XCTest

/// Issue 9: every byte through the bridge arrives, in order, with the real clients, across
/// key re-exchanges on the client's hop and with the other end slower than the gateway.
/// Data comes from a seeded generator (`SeededData`); what arrives is hashed on the
/// receiving end and compared with the digest of what was sent. The back-pressure cases
/// (slow and stalled readers, a hostile maximum packet size) are in
/// GatewayDataIntegrityTests+BackPressure.swift.
final class GatewayDataIntegrityTests: IntegrityTestCase {
    static let twoGiB = 2 << 30

    /// The per-tool cases. RekeyLimit=1M covers every tool both ways with 300 MB files.
    /// RekeyLimit=256K covers exec and sftp only, with 100 MB files (still 400 key
    /// exchanges each): exchanges cost a round trip each, and a 300 MB upload at 256K took
    /// 45 s here against 5 s at 1M.
    struct Rekeying {
        let options: [String]
        let label: String
        let fileSize: Int
    }
    static let everyMiB = Rekeying(options: rekeyEveryMiB, label: "RekeyLimit=1M", fileSize: 300_000_000)
    static let every256KiB = Rekeying(options: rekeyEvery256KiB, label: "RekeyLimit=256K", fileSize: 100_000_000)

    // MARK: - 1. Large streams with the client's default settings

    /// OpenSSH re-keys chacha20 about every GiB: one or two re-exchanges on each hop.
    func testTwoGiBDownloadWithDefaultSettings() throws {
        let data = SeededData(seed: "download-2GiB", bytes: Self.twoGiB)
        let sent = try data.digest()
        assertDelivered("ssh exec download 2 GiB", try download(data, timeout: 120), sent)
    }

    func testTwoGiBUploadWithDefaultSettings() throws {
        let data = SeededData(seed: "upload-2GiB", bytes: Self.twoGiB)
        let sent = try data.digest()
        assertDelivered("ssh exec upload 2 GiB", try upload(data, timeout: 120), sent)
    }

    // MARK: - 2. Each tool, re-keying every MiB or 256 KiB (see `Rekeying`)

    func testExecBothWaysRekeyingEveryMiB() throws {
        try execBothWays(Self.everyMiB)
    }

    func testExecBothWaysRekeyingEvery256KiB() throws {
        try execBothWays(Self.every256KiB)
    }

    func testSFTPGetAndPutRekeyingEveryMiB() throws {
        try sftpGetAndPut(Self.everyMiB)
    }

    func testSFTPGetAndPutRekeyingEvery256KiB() throws {
        try sftpGetAndPut(Self.every256KiB)
    }

    func testSCPBothModesBothWaysRekeyingEveryMiB() throws {
        let (local, remote) = try makeFilePair("scp", Self.everyMiB.fileSize)
        for (mode, name, flags) in [("scp (sftp mode)", "sftp", [String]()), ("scp -O (legacy mode)", "legacy", ["-O"])] {
            let put = try runClient("/usr/bin/scp", flags + copyOptions(Self.rekeyEveryMiB)
                                        + [local.path, "alice@127.0.0.1:up-\(name).bin"])
            try checkRemoteFile("\(mode) upload, RekeyLimit=1M", put, "up-\(name).bin", local.data)
            let back = work.appendingPathComponent("down-\(name).bin").path
            let get = try runClient("/usr/bin/scp", flags + copyOptions(Self.rekeyEveryMiB)
                                        + ["alice@127.0.0.1:\(remote.path)", back])
            try checkLocalFile("\(mode) download, RekeyLimit=1M", get, back, remote.data)
        }
    }

    func testRsyncBothWaysRekeyingEveryMiB() throws {
        let (local, remote) = try makeFilePair("rsync", Self.everyMiB.fileSize)
        let rsh = (["/usr/bin/ssh"] + alice.sshOptions(port: gateway.port) + Self.rekeyEveryMiB).joined(separator: " ")
        let put = try runClient("/usr/bin/rsync", ["-e", rsh, local.path, "alice@127.0.0.1:up-rsync.bin"])
        try checkRemoteFile("rsync upload, RekeyLimit=1M", put, "up-rsync.bin", local.data)
        let back = work.appendingPathComponent("down-rsync.bin").path
        let get = try runClient("/usr/bin/rsync", ["-e", rsh, "alice@127.0.0.1:\(remote.path)", back])
        try checkLocalFile("rsync download, RekeyLimit=1M", get, back, remote.data)
    }

    // MARK: - 3. Several channels of one connection

    /// A ControlMaster connection re-keying every MiB carries four channels at once, two
    /// downloads and two uploads of 200 MB each.
    func testFourMultiplexedChannelsRekeyingEveryMiB() throws {
        let control = work.appendingPathComponent("mux").path
        let master = try startSSH(alice, "alice", ["-M", "-S", control, "-N", "-o", "ControlPersist=no"]
                                    + Self.rekeyEveryMiB)
        XCTAssertTrue(waitUntil(15) { FileManager.default.fileExists(atPath: control) }, "the master's control socket")
        let logins = gateway.log.components(separatedBy: "auth accepted").count
        let mux = ssh(["-S", control, "-o", "ControlMaster=no"])
        let streams = (1...4).map { SeededData(seed: "mux-\($0)", bytes: 200_000_000) }
        let sent = try streams.map { try $0.digest() }
        let results = streams.indices.map { work.appendingPathComponent("mux-\($0).out").path }
        let jobs = streams.indices.map { index -> String in
            let script = index % 2 == 0 ? downloadScript(streams[index], ssh: mux) : uploadScript(streams[index], ssh: mux)
            return "( \(script) ) > \(shellQuoted(results[index])) 2>&1 &"
        }
        let started = Date()
        let run = try runBash(jobs.joined(separator: "\n") + "\nwait", timeout: 120)
        XCTAssertNotEqual(run.status, 124, "four channels timed out")
        for index in streams.indices {
            let output = (try? String(contentsOfFile: results[index], encoding: .utf8)) ?? ""
            let outcome = TransferOutcome(output: output, status: run.status, stderr: output,
                                          seconds: Date().timeIntervalSince(started))
            let direction = index % 2 == 0 ? "download" : "upload"
            assertDelivered("multiplexed channel \(index + 1) (\(direction) 200 MB)", outcome, sent[index])
        }
        XCTAssertTrue(master.isRunning, "the master connection is still up")
        XCTAssertEqual(gateway.log.components(separatedBy: "auth accepted").count, logins,
                       "the four channels used the master's connection, no new login")
    }

    // MARK: - 4. Forwarded TCP streams

    /// `ssh -L`: 500 MB from the client through a forwarded connection to a listener in the
    /// workspace, which hashes what it receives.
    func testLocalForwardStreamRekeyingEveryMiB() throws {
        let data = SeededData(seed: "local-forward", bytes: 500_000_000)
        let sent = try data.digest()
        let received = ".integrity/received-L", ready = ".integrity/ready-L"
        try startInWorkspace(alice, "alice", "python3 \(IntegrityScripts.remotePath) tcp-receive 9100 \(received) \(ready)")
        let listening = try inWorkspace("for i in $(seq 150); do test -f \(ready) && exit 0; sleep 0.1; done; exit 1")
        XCTAssertEqual(listening.status, 0, "the listener in the workspace did not start")
        let port = try GatewayProcess.freePort()
        try startSSH(alice, "alice", ["-N", "-o", "ExitOnForwardFailure=yes", "-L", "\(port):127.0.0.1:9100"]
                        + Self.rekeyEveryMiB)
        XCTAssertTrue(waitUntil(15) { isListeningWithoutConnecting(port: port) }, "ssh -L listens on \(port)")
        var outcome = try transfer("{ \(data.command); } | \(IntegrityScripts.python) \(shellQuoted(IntegrityScripts.integrity)) "
                                   + "tcp-send 127.0.0.1 \(port); echo \"exit ${PIPESTATUS[1]}\"", timeout: 90)
        let result = try inWorkspace("for i in $(seq 300); do test -f \(received) && exec cat \(received); sleep 0.1; done")
        outcome.received = StreamDigest(parsing: result.output)
        assertDelivered("ssh -L stream into the workspace, RekeyLimit=1M", outcome, sent)
    }

    /// `ssh -R`: 500 MB from the workspace through the reverse forward to a listener on
    /// the client's host, which hashes what it receives.
    func testRemoteForwardStreamRekeyingEveryMiB() throws {
        let data = SeededData(seed: "remote-forward", bytes: 500_000_000)
        let sent = try data.digest()
        let port = try GatewayProcess.freePort()
        let received = work.appendingPathComponent("received-R").path, ready = work.appendingPathComponent("ready-R").path
        try startBackground(IntegrityScripts.python, [IntegrityScripts.integrity, "tcp-receive", "\(port)", received, ready])
        XCTAssertTrue(waitUntil(15) { FileManager.default.fileExists(atPath: ready) }, "the listener on the host")
        try startSSH(alice, "alice", ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "9200:127.0.0.1:\(port)"]
                        + Self.rekeyEveryMiB)
        // integrity.py retries the connection while the forward is not listening yet.
        let send = "{ \(data.command); } | python3 \(IntegrityScripts.remotePath) tcp-send 127.0.0.1 9200"
        var outcome = try transfer("\(ssh()) \(shellQuoted(send)); echo \"exit $?\"", timeout: 90)
        _ = waitUntil(30) { FileManager.default.fileExists(atPath: received) }
        outcome.received = StreamDigest(parsing: (try? String(contentsOfFile: received, encoding: .utf8)) ?? "")
        assertDelivered("ssh -R stream to the client's host, RekeyLimit=1M", outcome, sent)
    }

    // MARK: - 5. stdout and stderr of one channel

    /// 200 MB on stdout and a different 200 MB on stderr, written at the same time, each
    /// checked on its own (re-keying every MiB, as the stderr path writes separately).
    func testStdoutAndStderrInterleavedRekeyingEveryMiB() throws {
        let out = SeededData(seed: "stdout", bytes: 200_000_000), err = SeededData(seed: "stderr", bytes: 200_000_000)
        let (sentOut, sentErr) = (try out.digest(), try err.digest())
        let fifo = work.appendingPathComponent("stderr.fifo").path
        let errDigest = work.appendingPathComponent("stderr.digest").path
        let remote = "{ \(out.command); } & { \(err.command); } >&2; wait"
        let outcome = try transfer("""
            mkfifo \(shellQuoted(fifo))
            \(IntegrityScripts.localDigest) < \(shellQuoted(fifo)) > \(shellQuoted(errDigest)) &
            \(ssh(Self.rekeyEveryMiB)) \(shellQuoted(remote)) 2> \(shellQuoted(fifo)) | \(IntegrityScripts.localDigest)
            status=${PIPESTATUS[0]}
            wait
            echo "exit $status"
            """, timeout: 90)
        assertDelivered("stdout of an interleaved exec, RekeyLimit=1M", outcome, sentOut)
        var stderrOutcome = outcome
        stderrOutcome.received = StreamDigest(parsing: (try? String(contentsOfFile: errDigest, encoding: .utf8)) ?? "")
        assertDelivered("stderr of an interleaved exec, RekeyLimit=1M", stderrOutcome, sentErr)
    }

    // MARK: - Helpers

    private func execBothWays(_ rekeying: Rekeying) throws {
        let label = rekeying.label
        let down = SeededData(seed: "exec-down-\(label)", bytes: rekeying.fileSize)
        let up = SeededData(seed: "exec-up-\(label)", bytes: rekeying.fileSize)
        let (sentDown, sentUp) = (try down.digest(), try up.digest())
        assertDelivered("ssh exec download, \(label)", try download(down, rekeying.options), sentDown)
        assertDelivered("ssh exec upload, \(label)", try upload(up, rekeying.options), sentUp)
    }

    private func sftpGetAndPut(_ rekeying: Rekeying) throws {
        let (label, rekey) = (rekeying.label, rekeying.options)
        let (local, remote) = try makeFilePair("sftp-\(label)", rekeying.fileSize)
        let back = work.appendingPathComponent("down-sftp.bin").path
        let commands = work.appendingPathComponent("sftp-batch").path
        for (direction, command) in [("put", "put \(local.path) up-sftp.bin"), ("get", "get \(remote.path) \(back)")] {
            try (command + "\n").write(toFile: commands, atomically: true, encoding: .utf8)
            let outcome = try runClient("/usr/bin/sftp", ["-b", commands] + copyOptions(rekey) + ["alice@127.0.0.1"])
            if direction == "put" {
                try checkRemoteFile("sftp put, \(label)", outcome, "up-sftp.bin", local.data)
            } else {
                try checkLocalFile("sftp get, \(label)", outcome, back, remote.data)
            }
        }
    }

    /// A file on the host to upload and a different one in the workspace to download.
    private func makeFilePair(_ name: String, _ bytes: Int) throws -> (local: (path: String, data: SeededData),
                                                                        remote: (path: String, data: SeededData)) {
        let localData = SeededData(seed: "\(name)-local", bytes: bytes)
        let remoteData = SeededData(seed: "\(name)-remote", bytes: bytes)
        let localPath = try makeLocalFile(localData, "\(name)-local.bin")
        try makeRemoteFile(remoteData, "\(name)-remote.bin")
        return ((localPath, localData), ("\(name)-remote.bin", remoteData))
    }

    private func checkRemoteFile(_ name: String, _ outcome: TransferOutcome, _ path: String, _ data: SeededData) throws {
        var outcome = outcome
        outcome.received = try remoteDigest(path)
        assertDelivered(name, outcome, try data.digest())
    }

    private func checkLocalFile(_ name: String, _ outcome: TransferOutcome, _ path: String, _ data: SeededData) throws {
        var outcome = outcome
        outcome.received = try localDigest(path)
        assertDelivered(name, outcome, try data.digest())
    }
}
