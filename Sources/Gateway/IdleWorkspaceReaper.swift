import Audit
import Foundation
import GatewayMetrics
import Logging
import UserNames
import Workspaces

/// Stops workspaces nobody has used for `limit`, giving their memory back. A workspace
/// with any open session (an idle shell, a forward) is never stopped; the next login
/// starts it again. Runs on a thread of its own: every check makes blocking Engine calls.
final class IdleWorkspaceReaper: @unchecked Sendable {
    private let limit: TimeInterval
    private let activity: WorkspaceActivityLog
    private let workspaces: any WorkspaceBackend
    private let audit: AuditLog
    private let logger: Logger
    private let started = Date()
    private let stopped = DispatchSemaphore(value: 0)

    init(limit: TimeInterval, activity: WorkspaceActivityLog, workspaces: any WorkspaceBackend, audit: AuditLog,
         logger: Logger) {
        self.audit = audit
        self.limit = limit
        self.activity = activity
        self.workspaces = workspaces
        self.logger = logger
    }

    func start() {
        let interval = min(60, max(1, limit / 5))
        let thread = Thread { [self] in
            while stopped.wait(timeout: .now() + interval) == .timedOut {
                sweep()
            }
        }
        thread.name = "devenv-gw idle"
        thread.start()
    }

    func stop() { stopped.signal() }

    /// One pass over the running workspaces of this instance.
    func sweep() {
        let running: [WorkspaceStatus]
        do {
            running = try workspaces.list().filter { $0.state == "running" }
        } catch {
            logger.warning("idle check skipped: \(error)")
            return
        }
        for status in running {
            guard let user = try? UserName(status.user) else { continue }
            let isIdle = { [self] in
                // Never used through this gateway since it started: count from its start.
                let last = activity.lastActivity(user) ?? started
                return activity.activeSessions(user) == 0 && Date().timeIntervalSince(max(last, started)) >= limit
            }
            guard isIdle() else { continue }
            do {
                if try workspaces.stopIfIdle(user, timeout: 10, isIdle: isIdle) {
                    GatewayMetric.workspacesStoppedIdle.counter().increment()
                    logger.info("workspace stopped after being idle", metadata: ["user": .string(user.value)])
                    let idleFor = Date().timeIntervalSince(max(activity.lastActivity(user) ?? started, started))
                    audit.record(.workspaceStopped(
                        AuditWorkspace(user: user.value, container: workspaces.settings.containerName(for: user),
                                       image: status.image, volume: status.volume),
                        reason: "idle", idleFor: idleFor))
                }
            } catch {
                logger.warning("cannot stop idle workspace of \(user): \(error)")
            }
        }
    }
}
