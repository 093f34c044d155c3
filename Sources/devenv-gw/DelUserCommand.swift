import ArgumentParser
import Audit
import DockerEngine
import Foundation
import Registry
import UserNames
import Workspaces

/// `devenv-gw deluser NAME [--purge [--yes]]`: the registration goes, the data stays
/// unless purged.
struct DelUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deluser",
        abstract: "Remove a user's registration and keys. Their home volume is kept unless --purge.",
        discussion: """
            The user can no longer log in. Without --purge the home volume is kept; if the name \
            is registered again, the volume, uid and workspace host key are theirs again.

            --purge also removes the workspace container and the home volume with all its files, \
            after the user name is typed on the terminal to confirm (--yes confirms in scripts). \
            It also removes the kept volume of a user removed earlier.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user name.")
    var name: String

    @Flag(help: "Remove the workspace container and the home volume too (asks for confirmation).")
    var purge = false

    @Flag(help: "With --purge: do not ask for confirmation.")
    var yes = false

    func validate() throws {
        if yes && !purge { throw ValidationError("--yes only confirms --purge") }
    }

    func run() throws {
        let user = try UserName(name)
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let keyCount = try registry.user(named: user)?.keyCount
        let volume = try global.workspaceSettings().volumeName(for: user)
        let manager = try global.workspaceBackend()
        guard purge else {
            try registry.removeUser(user)
            audit.record(.userRemoved(user.value, keyCount: keyCount, by: AuditAdmin.current))
            let stopped = stopWorkspace(of: user, manager: manager, audit: audit)
            print("removed \(user)" + (stopped ? ", stopped the workspace" : "") + "; the home volume \(volume) is kept")
            return
        }
        let registered = try registry.user(named: user) != nil
        let resources = try manager.resources(of: user)
        guard registered || resources.volumeExists || resources.hasContainer else {
            throw RegistryError.noSuchUser(user.value)
        }
        if !yes { try confirm(user, volume: volume) }
        if registered {
            try registry.removeUser(user)
            audit.record(.userRemoved(user.value, keyCount: keyCount, by: AuditAdmin.current))
        }
        let removedVolume = try manager.removeHomeVolume(of: user)  // the container goes first
        print((registered ? "removed \(user), " : "\(user) was not registered; removed ")
              + (removedVolume ? "the workspace and the home volume \(volume)" : "the workspace (there was no home volume)"))
    }

    /// Stops the removed user's container, so nothing they left running goes on (`serve`
    /// ends their connections on its own, from the registry). The removal stands when the
    /// engine cannot be reached: the container can no longer be entered through the gateway,
    /// and the next registration of the name gets a new one. Returns whether one was stopped.
    private func stopWorkspace(of user: UserName, manager: any WorkspaceBackend, audit: AuditLog) -> Bool {
        let container = manager.settings.containerName(for: user)
        do {
            guard try manager.stop(user) else { return false }
            audit.record(.workspaceStopped(AuditWorkspace(user: user.value, container: container,
                                                          volume: manager.settings.volumeName(for: user)),
                                           reason: "user removed", by: AuditAdmin.current))
            return true
        } catch {
            printWarning("the workspace \(container) could not be stopped: \(error)")
            return false
        }
    }

    /// Asks for the user name on the terminal; refuses without one.
    private func confirm(_ user: UserName, volume: String) throws {
        guard isatty(STDIN_FILENO) == 1 else {
            throw CLIError("--purge deletes every file of \(user) (volume \(volume)); "
                           + "confirm on a terminal, or add --yes")
        }
        FileHandle.standardError.write(Data(("This deletes the workspace and the home volume \(volume) of \(user) "
                                             + "with all its files.\nType the user name to confirm: ").utf8))
        guard let answer = readLine(), answer.trimmingCharacters(in: .whitespaces) == user.value else {
            throw CLIError("not confirmed; nothing was removed")
        }
    }
}
