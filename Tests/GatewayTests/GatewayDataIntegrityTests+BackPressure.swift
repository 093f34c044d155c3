import Foundation
import TestSupport
import XCTest

/// Back-pressure: a reader slower than the gateway, a reader that stops, and a client
/// whose channel parameters make writing impossible. The gateway must neither lose data
/// nor hold more than a bounded amount of it, nor spin.
extension GatewayDataIntegrityTests {
    static let memoryBound = 32 << 20

    // MARK: - 6. A slow reader

    /// The client reads about 2 MB/s while the connection re-keys every MiB: the gateway
    /// waits for the client's window instead of dropping what does not fit.
    func testSlowReaderGetsEveryByteRekeyingEveryMiB() throws {
        let rate = 2_000_000
        let data = SeededData(seed: "slow-reader", bytes: 36_000_000)
        let sent = try data.digest()
        let outcome = try transfer("\(ssh(Self.rekeyEveryMiB)) \(shellQuoted(data.command)) | "
                                   + "\(IntegrityScripts.python) \(shellQuoted(IntegrityScripts.integrity)) slow-read \(rate); "
                                   + "echo \"exit ${PIPESTATUS[0]}\"", timeout: 90)
        assertDelivered("download to a reader of 2 MB/s, RekeyLimit=1M", outcome, sent)
        XCTAssertGreaterThan(outcome.seconds, 0.8 * Double(data.bytes / rate), "the reader was not slow")
    }

    // MARK: - 7. Stalled readers and the gateway's memory

    /// A paramiko client starts a 128 MiB download and reads nothing for 10 s: the gateway
    /// holds at most a bounded amount of it. Then it reads on, and every byte arrives.
    func testStalledClientReaderKeepsGatewayMemoryBounded() throws {
        let data = SeededData(seed: "stalled-client", bytes: 128 << 20)
        let sent = try data.digest()
        let before = ProcessFigures.residentBytes(gatewayPID)
        let client = try startParamiko("stall-read", [data.command])
        XCTAssertTrue(client.waitFor("stalling", seconds: 30), "the paramiko client did not start: \(client.output)")
        let peak = ProcessFigures.peakResidentBytes(gatewayPID, over: 10)
        assertMemoryBound(before: before, peak: peak, while: "the client read nothing for 10 s")
        client.proceed()
        let started = Date()
        XCTAssertTrue(client.finish(within: 60), "the download did not finish after the client read again")
        let result = client.result ?? [:]
        let outcome = TransferOutcome(status: Int32(result["exit"] as? Int ?? -1), stderr: client.output,
                                      received: (result["received"] as? String).flatMap(StreamDigest.init(parsing:)),
                                      seconds: Date().timeIntervalSince(started))
        assertDelivered("download resumed after a 10 s stall (paramiko)", outcome, sent)
    }

    /// The workspace's process does not read its stdin for 12 s while a paramiko client
    /// pushes 128 MiB: the gateway holds at most a bounded amount. Then it reads, and every
    /// byte arrives.
    func testStalledWorkspaceReaderKeepsGatewayMemoryBounded() throws {
        let data = SeededData(seed: "stalled-workspace", bytes: 128 << 20)
        let sent = try data.digest()
        let before = ProcessFigures.residentBytes(gatewayPID)
        let client = try startParamiko("stall-write", ["sleep 12; \(IntegrityScripts.remoteDigest)", data.command])
        XCTAssertTrue(client.waitFor("sending", seconds: 30), "the paramiko client did not start: \(client.output)")
        let peak = ProcessFigures.peakResidentBytes(gatewayPID, over: 10)
        assertMemoryBound(before: before, peak: peak, while: "the workspace read nothing for 10 s")
        let started = Date()
        XCTAssertTrue(client.finish(within: 90), "the upload did not finish after the workspace read again")
        let result = client.result ?? [:]
        XCTAssertEqual((result["sent"] as? String).flatMap(StreamDigest.init(parsing:)), sent,
                       "what the paramiko client sent")
        let outcome = TransferOutcome(status: Int32(result["exit"] as? Int ?? -1), stderr: client.output,
                                      received: (result["remote"] as? String).flatMap(StreamDigest.init(parsing:)),
                                      seconds: Date().timeIntervalSince(started))
        assertDelivered("upload resumed after a 12 s stall in the workspace (paramiko)", outcome, sent)
    }

    // MARK: - 8. A maximum packet size no data fits in

    /// A session channel whose client advertises a maximum packet size of 10 bytes: the
    /// gateway refuses or closes it, stays idle (no loop writing zero bytes at a time) and
    /// goes on serving logins.
    func testTenByteMaximumPacketIsRefusedWithoutSpinning() throws {
        let client = try startParamiko("tiny-packet", [])
        XCTAssertTrue(client.waitFor("attempted", seconds: 40), "no outcome within 40 s: \(client.output)")
        let cpuBefore = ProcessFigures.cpuSeconds(gatewayPID)
        sleep(3)
        let cpu = ProcessFigures.cpuSeconds(gatewayPID) - cpuBefore
        let result = client.result ?? [:]
        let log = client.log
        client.proceed()
        _ = client.finish(within: 10)
        print("[integrity] max packet 10: \(result), gateway CPU \(String(format: "%.2f", cpu)) s in 3 s")

        let sent = result["sent"] as? [String: Any]
        XCTAssertEqual(sent?["max_packet"] as? Int, 10, "the client did not send a maximum packet size of 10: \(result)")
        let logged = log.split(separator: "\n").contains {
            $0.contains("sent CHANNEL_OPEN session") && $0.hasSuffix("max packet 10")
        }
        XCTAssertTrue(logged, "paramiko's log does not show the CHANNEL_OPEN with max packet 10")
        let outcome = result["outcome"] as? String ?? "none"
        XCTAssertTrue(["refused", "closed"].contains(outcome),
                      "expected the channel refused or closed, got \(outcome): \(result)")
        XCTAssertLessThan(cpu, 0.5, "the gateway used \(cpu) CPU-seconds in 3 s after the attempt")
        let login = try runBash("\(ssh()) 'echo still-serving'", timeout: 30)
        XCTAssertEqual(login.output, "still-serving\n", "a normal login afterwards: status \(login.status) \(login.stderr)")
    }

    // MARK: - A peer that ignores its window

    /// A paramiko client that keeps sending after the window the gateway granted is used up
    /// (libssh would buffer all of it): the gateway closes that channel, well before 16 MiB.
    func testClientSendingFarPastItsWindowGetsTheChannelClosed() throws {
        let before = ProcessFigures.residentBytes(gatewayPID)
        let client = try startParamiko("overrun", [])
        XCTAssertTrue(client.finish(within: 60), "the overrunning client did not finish: \(client.output)")
        let result = client.result ?? [:]
        print("[integrity] window overrun: \(result)")
        XCTAssertEqual(result["outcome"] as? String, "closed", "the channel stayed open: \(result)")
        let sent = result["sent"] as? Int ?? 0
        let granted = result["granted"] as? Int ?? 0
        XCTAssertGreaterThan(sent, granted + (1 << 20), "the client did not send far past its window: \(result)")
        XCTAssertLessThan(sent, 16 << 20, "the gateway took 16 MiB past the window: \(result)")
        assertMemoryBound(before: before, peak: ProcessFigures.residentBytes(gatewayPID), while: "a client overran its window")
        XCTAssertTrue(gateway.log.contains("past the window it was granted"), "the gateway's log says why")
        let login = try runBash("\(ssh()) 'echo still-serving'", timeout: 30)
        XCTAssertEqual(login.output, "still-serving\n", "a normal login afterwards: status \(login.status) \(login.stderr)")
    }

    // MARK: - Helpers

    private func startParamiko(_ mode: String, _ arguments: [String]) throws -> ScriptRun {
        try startScript(IntegrityScripts.paramikoClient,
                        [mode, "\(gateway.port)", "alice", alice.privateKeyPath, "{control}"] + arguments)
    }

    private func assertMemoryBound(before: Int, peak: Int, while what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        let growth = peak - before
        print("[integrity] gateway RSS \(before >> 20) MiB before, \(peak >> 20) MiB at most while \(what)")
        XCTAssertLessThan(growth, Self.memoryBound,
                          "the gateway's RSS grew by \(growth >> 20) MiB (\(before >> 20) → \(peak >> 20) MiB) while \(what)",
                          file: file, line: line)
    }
}
