@testable import Gateway
import XCTest

/// The order of data, EOF, exit status and close in one direction of a bridged channel.
final class ChannelDirectionTests: XCTestCase {
    /// Runs every action the direction is due and returns them in order.
    private func drain(_ direction: inout ChannelDirection, dataPending: Bool = false) -> [ChannelDirection.Action] {
        var sent: [ChannelDirection.Action] = []
        while let action = direction.nextAction(dataPending: dataPending) {
            sent.append(action)
            direction.performed(action)
        }
        return sent
    }

    func testOpenDirectionSendsNothing() {
        var direction = ChannelDirection()
        XCTAssertEqual(direction.phase, .open)
        XCTAssertEqual(drain(&direction), [])
        direction.sourceReported(.status(0))
        XCTAssertEqual(drain(&direction, dataPending: true), [], "an exit status waits for the data before it")
        XCTAssertEqual(drain(&direction), [.sendExit(.status(0))], "then goes on, as sshd sent it, before EOF")
        XCTAssertEqual(direction.phase, .open)
    }

    func testEOFWaitsForTheDataBeforeIt() {
        var direction = ChannelDirection()
        direction.sourceSentEOF()
        XCTAssertEqual(direction.phase, .draining)
        XCTAssertEqual(drain(&direction, dataPending: true), [], "EOF must not overtake data")
        XCTAssertEqual(drain(&direction), [.sendEOF])
        XCTAssertEqual(direction.phase, .eofSent)
        XCTAssertFalse(direction.isFinished, "the source has not closed yet")
    }

    func testCommandEndsWithDataExitStatusEOFClose() {
        var direction = ChannelDirection()
        // sshd reports the exit status before its EOF and close, often before the data drains.
        direction.sourceReported(.status(3))
        direction.sourceSentEOF()
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction, dataPending: true), [])
        // The exit status before EOF: a client whose input ended closes on EOF (see ChannelDirection).
        XCTAssertEqual(drain(&direction), [.sendExit(.status(3)), .sendEOF, .sendClose])
        XCTAssertEqual(direction.phase, .closed)
        XCTAssertTrue(direction.isFinished)
    }

    func testExitStatusStillReachesAClientThatClosedOnEOF() {
        var direction = ChannelDirection()
        // sshd sent EOF before the exit status; the client, its input ended, closed on EOF.
        direction.sourceSentEOF()
        XCTAssertEqual(drain(&direction), [.sendEOF])
        direction.sinkClosed()
        XCTAssertEqual(drain(&direction, dataPending: true), [], "no close before the exit status or the source's close")
        direction.sourceReported(.status(7))
        XCTAssertEqual(drain(&direction, dataPending: true), [.sendExit(.status(7)), .sendClose])
        XCTAssertFalse(direction.isFinished, "the source has not closed yet")
        direction.sourceClosedChannel()
        XCTAssertTrue(direction.isFinished)
    }

    func testAClosedClientWithoutAnExitStatusIsClosedWhenTheSourceCloses() {
        var direction = ChannelDirection()
        direction.sinkClosed()
        XCTAssertEqual(drain(&direction), [])
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction), [.sendClose])
        XCTAssertTrue(direction.isFinished)
    }

    func testExitSignalIsPassedOnLikeAStatus() {
        var direction = ChannelDirection()
        let signal = ChannelExit.signal(name: "KILL", coreDumped: false, message: "")
        direction.sourceSentEOF()
        direction.sourceReported(signal)
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction), [.sendExit(signal), .sendEOF, .sendClose])
    }

    func testCloseWithoutEOFStillSendsEOFFirst() {
        var direction = ChannelDirection()
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction), [.sendEOF, .sendClose])
    }

    func testExitStatusArrivingAfterEOFIsSentBeforeClose() {
        var direction = ChannelDirection()
        direction.sourceSentEOF()
        XCTAssertEqual(drain(&direction), [.sendEOF])
        direction.sourceReported(.status(0))
        XCTAssertEqual(drain(&direction), [.sendExit(.status(0))])
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction), [.sendClose])
    }

    func testFailedSourceDeliversItsDataButNoExitStatus() {
        var direction = ChannelDirection()
        direction.sourceReported(.status(0))
        direction.sourceFailed()
        XCTAssertTrue(direction.failed)
        XCTAssertEqual(drain(&direction, dataPending: true), [], "what was received is still written first")
        XCTAssertEqual(drain(&direction), [.sendEOF, .sendClose], "no clean exit after a failure")
        direction.sourceReported(.status(0))
        XCTAssertEqual(drain(&direction), [], "a late exit status is ignored")
        XCTAssertTrue(direction.isFinished)
    }

    func testLostSinkStopsEverything() {
        var direction = ChannelDirection()
        direction.sourceReported(.status(0))
        direction.sinkLost()
        XCTAssertEqual(direction.phase, .closed)
        XCTAssertEqual(drain(&direction), [])
        XCTAssertFalse(direction.isFinished, "waits for the source's close")
        direction.sourceClosedChannel()
        XCTAssertEqual(direction.phase, .closed, "a closed direction does not reopen")
        XCTAssertTrue(direction.isFinished)
    }

    func testEOFIsSentOnceAndNothingFollowsClose() {
        var direction = ChannelDirection()
        direction.sourceSentEOF()
        direction.sourceSentEOF()
        XCTAssertEqual(drain(&direction), [.sendEOF])
        direction.sourceSentEOF()
        XCTAssertEqual(drain(&direction), [])
        direction.sourceClosedChannel()
        XCTAssertEqual(drain(&direction), [.sendClose])
        direction.sourceReported(.status(1))
        direction.sourceSentEOF()
        XCTAssertEqual(drain(&direction), [])
    }

    func testAbandonEndsAtOnce() {
        var direction = ChannelDirection()
        direction.sourceReported(.status(0))
        direction.abandon()
        XCTAssertTrue(direction.isFinished)
        XCTAssertEqual(drain(&direction), [])
    }
}

/// The queue that holds what one side sent and the other has not taken yet.
final class ByteQueueTests: XCTestCase {
    private func popAll(_ queue: ByteQueue, chunk: Int) -> [UInt8] {
        var out: [UInt8] = []
        while !queue.isEmpty {
            queue.consumeFront(upTo: chunk) { bytes in
                out.append(contentsOf: bytes)
                return bytes.count
            }
        }
        return out
    }

    func testKeepsOrderAcrossWrapAndGrowth() {
        let queue = ByteQueue()
        var expected: [UInt8] = []
        var produced: UInt8 = 0
        var received: [UInt8] = []
        // Interleave appends and partial removals so the ring wraps and grows while wrapped.
        for round in 0..<200 {
            let size = (round * 7919) % 9000 + 1
            let bytes = (0..<size).map { _ -> UInt8 in produced &+= 1; return produced }
            expected += bytes
            queue.append(bytes)
            let take = (round * 104_729) % 7000
            queue.consumeFront(upTo: take) { chunk in
                received.append(contentsOf: chunk)
                return chunk.count
            }
        }
        received += popAll(queue, chunk: 3000)
        XCTAssertEqual(received, expected)
    }

    func testShortConsumptionKeepsTheRestForNextTime() {
        let queue = ByteQueue()
        queue.append(Array(0..<100))
        // A sink that takes only 10 of the 50 offered (a short write).
        let used = queue.consumeFront(upTo: 50) { _ in 10 }
        XCTAssertEqual(used, 10)
        XCTAssertEqual(queue.count, 90)
        // A sink that takes nothing (a key re-exchange): nothing is lost.
        XCTAssertEqual(queue.consumeFront(upTo: 50) { _ in 0 }, 0)
        XCTAssertEqual(popAll(queue, chunk: 1000), Array(10..<100))
    }

    func testFillWritesIntoFreeSpaceInOrder() {
        let queue = ByteQueue()
        var model: [UInt8] = Array(repeating: 1, count: 10)
        queue.append(model)
        var next: UInt8 = 2
        for _ in 0..<50 {
            queue.fill(upTo: 5000) { free in
                let written = min(free.count, 3001)  // fewer than offered, like a short read
                for i in 0..<written { free[i] = next &+ UInt8(truncatingIfNeeded: i) }
                model += (0..<written).map { next &+ UInt8(truncatingIfNeeded: $0) }
                next &+= 1
                return written
            }
            let drop = min(queue.count, 1234)
            queue.removeFirst(drop)
            model.removeFirst(drop)
        }
        XCTAssertEqual(popAll(queue, chunk: 100_000), model)
    }

    func testTrimGivesMemoryBackOnlyWhenEmpty() {
        let queue = ByteQueue()
        queue.append([1, 2, 3])
        queue.trim()
        XCTAssertGreaterThan(queue.capacity, 0)
        queue.removeFirst(3)
        queue.trim()
        XCTAssertEqual(queue.capacity, 0)
        queue.append([4])
        XCTAssertEqual(popAll(queue, chunk: 10), [4])
    }
}
