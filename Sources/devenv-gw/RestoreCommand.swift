import ArgumentParser
import Audit
import Backup
import Foundation
import Registry
import UserNames
import Workspaces

/// `devenv-gw restore NAME [-i FILE | -i -] [--force] [--rename-from OLD]`.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Bring a user back from a backup archive: registration, keys, uid, host key and home.",
        discussion: """
            The whole archive is checked first (format, version, that it is NAME's, every entry, \
            and its end marker's checksum); a truncated, corrupt or foreign file is refused and \
            nothing changes. Standard input (-i -) is copied to a temporary file (TMPDIR) for that.

            A user the registry does not know is registered exactly as in the archive (uid, keys, \
            workspace host key). A registered user keeps their registration and keys; only the \
            home is restored, owned by their uid here.

            The home is written into a fresh volume; the user's container is removed and the next \
            login creates a new one. A home that holds data is never merged into: restore refuses \
            unless --force, which stops the workspace (ending its sessions), saves the current home \
            as a backup archive in the save directory, and then replaces it.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user name.")
    var name: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The archive to read; '-' reads standard input (default: NAME-backup.tar).",
                                                    valueName: "file"))
    var input: String?

    @Flag(help: "Replace a home that holds data, after saving it as a backup archive.")
    var force = false

    @Option(help: ArgumentHelp("Restore the archive of user OLD as NAME (a new registration with OLD's keys).",
                               valueName: "old"))
    var renameFrom: String?

    @Option(help: ArgumentHelp("Where --force saves the replaced home (default: STATE_DIR/replaced-homes).",
                               valueName: "dir"))
    var saveDir: String?

    @OptionGroup var image: HelperImageOption

    func run() throws {
        let user = try UserName(name)
        let renamedFrom = try renameFrom.map { try UserName($0) }
        let source = input ?? "\(user)-backup.tar"
        let archive: ArchiveInput
        if source == "-" {
            if isatty(STDIN_FILENO) == 1 {
                throw CLIError("-i - reads the archive from standard input, which is a terminal; redirect it from a file")
            }
            archive = SpooledInput()
        } else {
            archive = ArchiveFileInput(path: source)
        }
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let workspaces = try global.workspaceBackend(image.flags)
        let restore = HomeRestore(registry: registry, workspaces: workspaces)
        let request = RestoreRequest(
            user: user, renamedFrom: renamedFrom, force: force,
            saveDirectory: saveDir ?? (global.stateDir as NSString).appendingPathComponent("replaced-homes"))
        let meters = [ProgressMeter("checking \(source == "-" ? "standard input" : source)"),
                      ProgressMeter("restoring the home of \(user)")]
        var pass = 0
        let report: RestoreReport
        Interruption.install()
        do {
            report = try restore.run(request, from: archive) { current, bytes in
                try Interruption.check()
                if current != pass {
                    if pass > 0 { meters[pass - 1].end() }
                    pass = current
                }
                meters[current - 1].set(bytes)
            }
        } catch {
            if pass > 0 { meters[pass - 1].end() }
            throw error
        }
        if pass > 0 { meters[pass - 1].end() }
        try recordAudit(report, user: user, source: source, registry: registry, workspaces: workspaces, audit: audit)

        let summary = report.summary
        let keys = summary.manifest.record.keys.count
        let keyCount = "\(keys) \(keys == 1 ? "key" : "keys")"
        if let saved = report.savedHome { print("saved the replaced home of \(user) in \(saved)") }
        switch report.registration {
        case .restored:
            print("registered \(user) from the backup: uid \(report.uid), \(keyCount), the workspace host key")
        case .registeredRenamed:
            print("registered \(user) (uid \(report.uid)) with the \(keyCount) of \(summary.manifest.user)")
        case .kept:
            print("\(user) is registered here: registration, keys and host key unchanged (uid \(report.uid))")
        }
        if summary.manifest.hasHome {
            print("restored the home of \(user): \(summary.entries) entries, \(formatBytes(summary.contentBytes)) "
                  + "of files, from the backup of \(displayDate(summary.manifest.created)); "
                  + "the next login starts a new workspace")
        } else {
            print("the backup holds no home (\(summary.manifest.user) had not logged in); the next login creates one")
        }
    }

    /// A registration is recorded as `adduser` records one (the user and each key), then
    /// the restore itself.
    private func recordAudit(_ report: RestoreReport, user: UserName, source: String, registry: Registry,
                             workspaces: any WorkspaceBackend, audit: AuditLog) throws {
        let admin = AuditAdmin.current
        if report.registration != .kept {
            let keys = try registry.keys(of: user).map(\.key)
            audit.record(.userAdded(user.value, uid: report.uid, keyCount: keys.count, by: admin))
            for key in keys { audit.record(.keyAdded(AuditKey(key), to: user.value, by: admin)) }
        }
        let settings = workspaces.settings
        audit.record(.workspaceRestored(
            AuditWorkspace(user: user.value, container: settings.containerName(for: user),
                           volume: report.summary.manifest.hasHome ? settings.volumeName(for: user) : nil),
            archive: source == "-" ? "-" : BackupCommand.absolute(source), by: admin))
    }
}
