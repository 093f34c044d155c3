import ArgumentParser
import Audit
import DockerEngine
import Foundation
import Registry
import SSHKeys
import UserNames
import Workspaces

/// `devenv-gw upgrade NAME | --all [--image IMAGE] [--now]`.
struct UpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Replace workspace containers with new ones from the current (or given) image.",
        discussion: """
            The home volume, uid, limits and the workspace's sshd host key are kept. The new \
            container is created and started under a temporary name and must answer on its sshd \
            before the old one is touched; if it does not (or the image is missing), the user \
            keeps the old workspace and the upgrade counts as failed. A stopped workspace gets a \
            stopped new container.

            A running workspace where the user has ssh connections or processes (a tmux, a \
            build) is skipped, and said so; --now upgrades it anyway, which ends them.

            Exit status: 0 when nothing failed (skipped workspaces included), 1 otherwise.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user whose workspace to upgrade.")
    var name: String?

    @Flag(help: "Upgrade every workspace of this instance.")
    var all = false

    @Option(help: ArgumentHelp("The image for the new containers (env DEVENV_GW_IMAGE, config image; "
                               + "default devenv-workspace:latest).", valueName: "image"))
    var image: String?

    @Flag(help: "Upgrade workspaces in use too, ending their sessions and processes.")
    var now = false

    @Option(help: "How many workspaces to upgrade at a time with --all.")
    var parallel = 4

    func validate() throws {
        guard (name == nil) == all else { throw ValidationError("give a user name or --all (not both)") }
        guard (1...32).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 32") }
    }

    func run() throws {
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let manager = try global.workspaceBackend(WorkspaceFlags(image: image))
        let image = manager.settings.image
        let gatewayKey = try PrivateKey.loadOrCreate(path: global.upstreamKeyPath, kind: .ed25519).key.publicKey.line
        let users = try name.map { [try UserName($0)] }
            ?? manager.list().filter { $0.container != nil }.map { try UserName($0.user) }

        let results = UpgradeResults()
        let next = WorkQueue(users)
        let threads = (0..<min(parallel, max(users.count, 1))).map { _ in
            Thread {
                while let user = next.take() {
                    let result = Result { try Self.upgrade(user, registry: registry, manager: manager, image: image,
                                                           gatewayKey: gatewayKey, now: now) }
                    if case .success(.upgraded(_, let previous)) = result {
                        let settings = manager.settings
                        audit.record(.workspaceUpgraded(
                            AuditWorkspace(user: user.value, container: settings.containerName(for: user), image: image,
                                           volume: settings.volumeName(for: user)),
                            previousImage: previous, by: AuditAdmin.current))
                    }
                    results.record(user, result)
                }
            }
        }
        threads.forEach { $0.start() }
        results.waitFor(users.count)

        let (upgraded, skipped, failed) = results.counts
        if all || users.count > 1 {
            print("upgrade to \(image): \(upgraded) upgraded, \(skipped) skipped, \(failed) failed")
        }
        if failed > 0 { throw ExitCode.failure }
    }

    private static func upgrade(_ user: UserName, registry: Registry, manager: any WorkspaceBackend, image: String,
                                gatewayKey: String, now: Bool) throws -> UpgradeOutcome {
        guard let account = try registry.user(named: user) else { return .skipped("not registered") }
        let identity = WorkspaceIdentity(user: user, uid: account.uid, gatewayPublicKey: gatewayKey,
                                         hostKeyPEM: try registry.workspaceHostKey(for: user).pemText,
                                         registration: try registry.registration(of: user).map {
                                             WorkspaceRegistration(id: $0, since: account.created)
                                         })
        return try manager.upgrade(identity, to: image, endingSessions: now)
    }
}

/// The users still to upgrade, taken one at a time by the worker threads.
private final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: [UserName]

    init(_ users: [UserName]) { remaining = users.reversed() }

    func take() -> UserName? {
        lock.lock()
        defer { lock.unlock() }
        return remaining.popLast()
    }
}

/// Prints each result as it comes and counts them.
private final class UpgradeResults: @unchecked Sendable {
    private let condition = NSCondition()
    private var upgraded = 0, skipped = 0, failed = 0

    func record(_ user: UserName, _ result: Result<UpgradeOutcome, Error>) {
        condition.lock()
        defer { condition.unlock() }
        switch result {
        case .success(.upgraded(let running, _)):
            upgraded += 1
            print("\(user): upgraded" + (running ? "" : " (stopped; the new container starts at the next login)"))
        case .success(.skipped(let reason)):
            skipped += 1
            print("\(user): skipped: \(displayText(reason))")
        case .failure(let error):
            failed += 1
            print("\(user): failed: \(displayText("\(error)")); the workspace is unchanged")
        }
        fflush(stdout)
        condition.broadcast()
    }

    var counts: (Int, Int, Int) {
        condition.lock()
        defer { condition.unlock() }
        return (upgraded, skipped, failed)
    }

    func waitFor(_ total: Int) {
        condition.lock()
        while upgraded + skipped + failed < total { condition.wait() }
        condition.unlock()
    }
}
