import Foundation

/// One refused login as `devenv-gw status` lists it.
public struct RefusedLogin: Codable, Sendable, Equatable {
    public let time: Date
    /// The user name the client asked for, as it sent it (escaped for display by the reader).
    public let user: String
    /// The client's address.
    public let address: String
    /// Why, as in `devenv_gw_logins_refused_total{reason}`.
    public let reason: String

    public init(time: Date, user: String, address: String, reason: String) {
        self.time = time
        self.user = user
        self.address = address
        self.reason = reason
    }
}

/// The last `capacity` refused logins, kept in a file of the state directory (mode 0600)
/// for `devenv-gw status`, which may run in another process or container.
///
/// Names and addresses stay out of the metrics (see `GatewayMetric`); this file is as
/// private as the registry beside it. Writes happen on a queue of their own, at most once
/// a second, so a flood of refusals costs a connection thread no file I/O.
public final class RefusedLoginLog: @unchecked Sendable {
    /// How many refusals are kept: what `devenv-gw status` shows.
    public static let capacity = 10
    private let file: JSONStateFile<[RefusedLogin]>
    private let lock = NSLock()
    private var entries: [RefusedLogin]
    private var writeScheduled = false
    private let queue = DispatchQueue(label: "devenv-gw refused-login log")

    /// Continues the list already in `path`, if any.
    public init(path: String) {
        file = JSONStateFile(path: path)
        entries = Self.read(path: path)
    }

    /// Adds a refusal; the file follows within about a second.
    public func note(_ refusal: RefusedLogin) {
        lock.lock()
        entries.append(refusal)
        if entries.count > Self.capacity { entries.removeFirst(entries.count - Self.capacity) }
        let schedule = !writeScheduled
        writeScheduled = true
        lock.unlock()
        if schedule { queue.asyncAfter(deadline: .now() + 1) { [self] in write() } }
    }

    /// Writes the file now (at shutdown), so no refusal of the last second is lost.
    public func flush() { queue.sync { write() } }

    private func write() {
        lock.lock()
        let current = entries
        writeScheduled = false
        lock.unlock()
        file.write(current)
    }

    /// The refusals in `path`, oldest first; none when it is missing or unreadable.
    public static func read(path: String) -> [RefusedLogin] {
        JSONStateFile<[RefusedLogin]>(path: path).read() ?? []
    }
}
