import Foundation
import TestSupport
import XCTest

/// The pre-auth limiter against a real flood: idle TCP connections that never speak, from
/// eight addresses of the login's own /24, opened as fast as the gateway closes them.
final class GatewayPreAuthFloodTests: GatewayTestCase {
    func testFloodFromNeighbouringAddressesNeitherEvictsNorRefusesALogin() throws {
        let alice = try register("alice")
        // One /24 may hold 20 pending connections, below the 30 where random early drop
        // starts: the flood can only ever push out its own sockets.
        gateway.extraArguments = ["--max-startups", "30:30:60", "--max-startups-per-source", "20"]
        try gateway.start()
        // The first login creates the workspace; the ones under test then only log in.
        XCTAssertEqual(try alice.ssh("alice", port: gateway.port, "true").status, 0)

        let flood = IdleConnectionFlood(port: gateway.port, sources: (2...9).map { "127.0.0.\($0)" }, perSource: 10)
        flood.start()
        defer { flood.stop() }
        // Until the flood fills its network's share and the gateway starts pushing sockets out.
        let filled = Date().addingTimeInterval(20)
        while flood.closedByGateway < 100 && Date() < filled { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(flood.closedByGateway, 100, "the flood reached the cap")

        for attempt in 1...5 {
            let began = Date()
            let login = try alice.ssh("alice", port: gateway.port, "echo ok-\(attempt)")
            XCTAssertEqual(login.status, 0, "login \(attempt) during the flood: \(login.stderr)")
            XCTAssertEqual(login.output, "ok-\(attempt)\n")
            XCTAssertLessThan(Date().timeIntervalSince(began), 10)
        }
        let pushedOutBefore = flood.closedByGateway
        usleep(300_000)
        XCTAssertGreaterThan(flood.closedByGateway, pushedOutBefore, "the flood went on during the logins")
        flood.stop()

        // The limiter did push connections out (noted at most once a second).
        XCTAssertTrue(gateway.log.contains("pre-auth limit: pushed out a pending connection from 127.0.0."), gateway.log)
    }
}

/// Idle TCP connections to the gateway from given source addresses (any of 127/8 works on
/// loopback), each reopened as soon as the gateway closes it, until stopped.
final class IdleConnectionFlood: @unchecked Sendable {
    private let port: Int
    private let sources: [String]
    private let perSource: Int
    private let lock = NSLock()
    private var stopping = false
    private var closed = 0
    private let finished = DispatchSemaphore(value: 0)
    private var running = false

    init(port: Int, sources: [String], perSource: Int) {
        self.port = port
        self.sources = sources
        self.perSource = perSource
    }

    /// Connections the gateway closed (pushed out or dropped) so far.
    var closedByGateway: Int {
        lock.lock()
        defer { lock.unlock() }
        return closed
    }

    func start() {
        running = true
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "idle connection flood"
        thread.start()
    }

    func stop() {
        lock.lock()
        let wasStopping = stopping
        stopping = true
        lock.unlock()
        if running && !wasStopping { finished.wait() }
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func run() {
        var open: [(fd: Int32, source: String)] = []
        defer { open.forEach { close($0.fd) } }
        while !isStopping {
            // Top every source up to its share, then reap what the gateway closed.
            for source in sources where open.filter({ $0.source == source }).count < perSource {
                if let fd = connect(from: source) { open.append((fd, source)) }
                usleep(2_000)
            }
            var buffer = [UInt8](repeating: 0, count: 256)
            open.removeAll { connection in
                let count = recv(connection.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                guard count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) else { return false }
                close(connection.fd)
                lock.lock()
                closed += 1
                lock.unlock()
                return true
            }
            usleep(5_000)
        }
    }

    /// A TCP connection to 127.0.0.1:port whose source address is `source`.
    private func connect(from source: String) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(port).bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) }
        }
        let connected = bound == 0 && withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, size) }
        } == 0
        guard connected else { close(fd); return nil }
        return fd
    }
}
