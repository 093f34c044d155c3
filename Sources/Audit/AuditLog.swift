import Foundation
import GatewayMetrics

/// Where audit events go: journald, or JSON lines on stderr.
///
/// `record(_:)` is synchronous and thread-safe: one datagram to journald (or one write to
/// stderr) on the caller's thread, which may be any thread but should not be one of Swift's
/// cooperative pool (the gateway calls it from its own connection threads). It never
/// throws: when journald stops answering, events go to stderr as JSON, a warning says so
/// once, and journald is tried again every `retryInterval` seconds.
public final class AuditLog: @unchecked Sendable {
    /// The `--audit` values.
    public enum Destination: String, CaseIterable, Sendable {
        /// JSON lines on stderr.
        case stderr
        /// journald's native socket; starting fails when there is none.
        case journald
        /// journald when its socket exists, else stderr.
        case auto
    }

    public static let defaultJournalSocket = "/run/systemd/journal/socket"

    /// SYSLOG_IDENTIFIER of every event.
    public let identifier: String
    /// Seconds between attempts to reach journald again after it failed.
    public var retryInterval: TimeInterval = 30

    let journal: JournaldWriter?
    private let stream: JSONLinesWriter?
    private let memory: MemorySink?
    private let lock = NSLock()
    /// When journald failed last; nil while it answers.
    private var journalFailedAt: Date?

    /// An audit log for `--audit DESTINATION`. Throws only for `.journald` when no journal
    /// socket exists at `journalSocket`. `descriptor` is where JSON lines and the fallback
    /// go (stderr).
    public init(_ destination: Destination, journalSocket: String = AuditLog.defaultJournalSocket,
                descriptor: Int32 = STDERR_FILENO, identifier: String = "devenv-gw") throws {
        self.identifier = identifier
        memory = nil
        stream = JSONLinesWriter(descriptor: descriptor)
        let useJournal: Bool
        switch destination {
        case .stderr: useJournal = false
        case .auto: useJournal = JournaldWriter.socketExists(at: journalSocket)
        case .journald:
            guard JournaldWriter.socketExists(at: journalSocket) else {
                throw AuditError.journal(journalSocket, "no such socket (is systemd-journald running?)")
            }
            useJournal = true
        }
        journal = useJournal ? try JournaldWriter(socketPath: journalSocket) : nil
    }

    private init(memory: MemorySink?) {
        identifier = "devenv-gw"
        journal = nil
        stream = nil
        self.memory = memory
    }

    /// An audit log that drops every event.
    public static func discarding() -> AuditLog { AuditLog(memory: nil) }

    /// An audit log that keeps events in memory (`recordedEvents`), for tests.
    public static func inMemory() -> AuditLog { AuditLog(memory: MemorySink()) }

    /// "journald" or "stderr": where events go while journald answers.
    public var destinationDescription: String {
        if let journal { return "journald (\(journal.socketPath))" }
        return memory != nil ? "memory" : (stream != nil ? "stderr" : "nowhere")
    }

    /// Whether events go to journald (as chosen at start; a temporary fallback aside).
    public var writesToJournal: Bool { journal != nil }

    /// The events an `inMemory()` log has recorded.
    public var recordedEvents: [AuditEvent] { memory?.events ?? [] }

    /// Records one event. Never throws and never blocks for long (at most about a second
    /// when journald's queue is full, then the event goes to stderr).
    public func record(_ event: AuditEvent) {
        if let memory { memory.append(event); return }
        let fields = event.record(identifier: identifier)
        guard let journal else { stream?.write(fields); return }

        lock.lock()
        let failedAt = journalFailedAt
        lock.unlock()
        if let failedAt, Date().timeIntervalSince(failedAt) < retryInterval {
            fallBack(fields)
            return
        }
        do {
            try journal.send(fields)
            if failedAt != nil {
                lock.lock()
                journalFailedAt = nil
                lock.unlock()
                stream?.writeLine("devenv-gw: audit: \(journal.socketPath) answers again; audit events go to journald")
            }
        } catch {
            lock.lock()
            let firstFailure = journalFailedAt == nil && failedAt == nil
            journalFailedAt = Date()
            lock.unlock()
            if firstFailure {
                stream?.writeLine("devenv-gw: warning: audit: cannot write to \(error); "
                                  + "audit events go to stderr as JSON lines until journald answers again")
            }
            fallBack(fields)
        }
    }

    /// Writes an event journald did not take to stderr, counting it as sent to the
    /// fallback, or as dropped when there is no stderr stream.
    private func fallBack(_ fields: [AuditFieldValue]) {
        guard let stream else {
            GatewayMetric.auditDropped.counter().increment()
            return
        }
        GatewayMetric.auditFallback.counter().increment()
        stream.write(fields)
    }
}

/// Events kept in memory by `AuditLog.inMemory()`.
final class MemorySink: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [AuditEvent] = []

    func append(_ event: AuditEvent) {
        lock.lock()
        stored.append(event)
        lock.unlock()
    }

    var events: [AuditEvent] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}
