import Dispatch
import Foundation
import GatewayMetrics

/// Keeps `devenv_gw_workspaces{state}` current: counts this instance's workspace containers,
/// running and stopped, from the engine every `interval` seconds on a queue of its own, so
/// a slow engine delays only the gauge, never a login.
public final class WorkspaceCensus: @unchecked Sendable {
    private let manager: any WorkspaceBackend
    private let interval: TimeInterval
    private let queue = DispatchQueue(label: "devenv-gw workspace census")
    private var timer: DispatchSourceTimer?
    private let onFailure: @Sendable (Error) -> Void

    /// - Parameters:
    ///   - interval: seconds between counts; the engine is asked at most this often.
    ///   - onFailure: told when a count fails (the gauge then keeps the last count).
    public init(manager: any WorkspaceBackend, interval: TimeInterval = 30, onFailure: @escaping @Sendable (Error) -> Void) {
        self.manager = manager
        self.interval = interval
        self.onFailure = onFailure
    }

    /// Counts now and then every `interval` seconds, until `stop`.
    public func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: interval, leeway: .seconds(1))
        timer.setEventHandler { [weak self] in self?.count() }
        self.timer = timer
        timer.resume()
    }

    /// Stops counting; the gauge keeps its last value.
    public func stop() {
        timer?.cancel()
        timer = nil
    }

    private func count() {
        do {
            let containers = try manager.list().filter { $0.container != nil }
            let running = containers.filter { $0.state == "running" }.count
            GatewayMetric.workspaces.gauge("running").record(running)
            GatewayMetric.workspaces.gauge("stopped").record(containers.count - running)
        } catch {
            onFailure(error)
        }
    }
}
