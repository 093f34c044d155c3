import DockerEngine
import Foundation
import Registry
import UserNames
import Workspaces

/// Takes the backup of one user: their registry record and their home volume, streamed
/// from the engine into `output` without ever holding more than a tar header in memory.
public struct HomeBackup {
    public let registry: Registry
    public let workspaces: any WorkspaceBackend

    public init(registry: Registry, workspaces: any WorkspaceBackend) {
        self.registry = registry
        self.workspaces = workspaces
    }

    /// Writes the archive of `user` to `output`. A running workspace keeps running unless
    /// `stopWorkspace` (a quiescent copy: it is stopped, read, and started again).
    /// `record` overrides the registry's (for a removed user's kept home). `warn` hears of
    /// trouble that does not spoil the backup.
    public func write(_ user: UserName, stopWorkspace: Bool = false, record: UserRecord? = nil,
                      warn: (String) -> Void = { _ in }, output: @escaping BackupWriter.Output) throws -> BackupSummary {
        let record = try record ?? registry.record(of: user)
        let resources = try workspaces.resources(of: user)
        let restart = stopWorkspace && resources.isRunning
        if restart { try workspaces.stop(user) }
        let manifest = BackupManifest(record: record, created: Date(), hasHome: resources.volumeExists,
                                      quiescent: !resources.isRunning || restart, prefix: workspaces.settings.prefix,
                                      image: resources.image)
        let summary: BackupSummary
        do {
            let writer = try BackupWriter(manifest: manifest, output: output)
            if manifest.hasHome {
                guard try workspaces.readHome(of: user, into: { try writer.writeHome($0) }) else {
                    throw WorkspaceError.busy(user: user.value, detail: "the home volume was removed")
                }
            }
            summary = try writer.finish()
        } catch {
            if restart { startAgain(user, warn: warn) }
            throw error
        }
        if restart { startAgain(user, warn: warn) }
        return summary
    }

    private func startAgain(_ user: UserName, warn: (String) -> Void) {
        do {
            try workspaces.start(user)
        } catch {
            warn("the workspace of \(user), stopped for the backup, did not start again (\(error)); "
                 + "it starts at the next login")
        }
    }
}
