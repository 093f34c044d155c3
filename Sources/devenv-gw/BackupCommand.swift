import ArgumentParser
import Audit
import Backup
import DockerEngine
import Foundation
import UserNames
import Workspaces

/// `devenv-gw backup NAME [-o FILE | -o -] [--stop]`.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write one archive with a user's home and everything needed to bring them back.",
        discussion: """
            The archive is a tar file: a manifest (format version, user, uid, keys, the workspace's \
            sshd host key), the home directory with owners, modes, times and links, and an end \
            marker with a SHA-256 of everything before it. It streams from the Docker engine to \
            the file: memory and temporary disk use stay flat whatever the home's size. The \
            file appears under its name only when complete (it is written as FILE.partial).

            A running workspace keeps running (the copy is then of a live home); --stop stops it \
            for a quiescent copy and starts it again afterwards. Restore with `devenv-gw restore`.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user name.")
    var name: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The archive to write; '-' writes to standard output (default: NAME-backup.tar).",
                                                    valueName: "file"))
    var output: String?

    @Flag(help: "Stop a running workspace while its home is read (ends its sessions), then start it again.")
    var stop = false

    @OptionGroup var image: HelperImageOption

    func run() throws {
        let user = try UserName(name)
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let workspaces = try global.workspaceBackend(image.flags)
        let backup = HomeBackup(registry: registry, workspaces: workspaces)
        let target = output ?? "\(user)-backup.tar"
        let toStdout = target == "-"
        if toStdout && isatty(STDOUT_FILENO) == 1 {
            throw CLIError("refusing to write an archive to a terminal; redirect standard output or use -o FILE")
        }
        let progress = ProgressMeter("backup of \(user)")
        let file = toStdout ? nil : try ArchiveFileWriter(path: target)
        Interruption.install()
        let summary: BackupSummary
        do {
            summary = try backup.write(user, stopWorkspace: stop, warn: printWarning) { bytes in
                try Interruption.check()
                if let file { try file.write(bytes) } else { try writeAll(STDOUT_FILENO, bytes, name: "standard output") }
                progress.add(bytes.count)
            }
            try file?.commit()
        } catch {
            progress.end()
            file?.abandon()
            throw error
        }
        progress.end()
        let where_ = toStdout ? "standard output" : target
        let settings = workspaces.settings
        audit.record(.workspaceBackedUp(
            AuditWorkspace(user: user.value, container: settings.containerName(for: user), image: summary.manifest.image,
                           volume: summary.manifest.hasHome ? settings.volumeName(for: user) : nil),
            archive: toStdout ? "-" : Self.absolute(target), bytes: summary.archiveBytes, by: AuditAdmin.current))
        let text = "backed up \(user) (uid \(summary.manifest.uid)) to \(where_): "
            + (summary.manifest.hasHome
                ? "\(summary.entries) entries, \(formatBytes(summary.contentBytes)) of files"
                : "no home yet (the user has not logged in)")
            + "; archive \(formatBytes(summary.archiveBytes)), sha256 \(summary.sha256)"
        // With the archive on standard output, the report goes to standard error.
        if toStdout { FileHandle.standardError.write(Data((text + "\n").utf8)) } else { print(text) }
    }

    /// The archive's path as the audit trail keeps it: absolute, so it says where the file is.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }
}

/// The image of the temporary helper containers that read or write a home volume when the
/// user has no container.
struct HelperImageOption: ParsableArguments {
    @Option(help: ArgumentHelp("Workspace image (env DEVENV_GW_IMAGE, config image; default "
                                   + "devenv-workspace:latest), used only for temporary helper containers "
                                   + "when the user has no workspace container.", valueName: "image"))
    var image: String?

    var flags: WorkspaceFlags { WorkspaceFlags(image: image) }
}

/// Bytes and rate on standard error while a transfer runs, only when standard error is a
/// terminal; nothing when it is piped or redirected.
final class ProgressMeter {
    private let label: String
    private let enabled = isatty(STDERR_FILENO) == 1
    private let started = Date()
    private var lastShown = Date.distantPast
    private var bytes: Int64 = 0

    init(_ label: String) { self.label = label }

    func add(_ count: Int) { set(bytes + Int64(count)) }

    func set(_ total: Int64) {
        bytes = total
        guard enabled, Date().timeIntervalSince(lastShown) >= 0.25 else { return }
        lastShown = Date()
        show()
    }

    /// Shows the final figures and ends the line.
    func end() {
        guard enabled else { return }
        show()
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func show() {
        let seconds = max(Date().timeIntervalSince(started), 0.001)
        let rate = formatBytes(Int64(Double(bytes) / seconds))
        FileHandle.standardError.write(Data("\r\u{1b}[K\(label): \(formatBytes(bytes)) at \(rate)/s".utf8))
    }
}

/// Sizes in binary units, as `ls -h` shows them.
func formatBytes(_ count: Int64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(count) bytes" : String(format: "%.1f", value) + " " + units[unit]
}
