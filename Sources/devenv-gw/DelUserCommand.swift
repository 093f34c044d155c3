import ArgumentParser
import Audit
import Foundation
import Registry
import UserNames
import Workspaces

/// `devenv-gw deluser NAME`: the registration goes, the data stays.
struct DelUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deluser",
        abstract: "Remove a user's registration and keys. Their home volume is kept.",
        discussion: """
            The user can no longer log in. Their home volume is never removed here; if the \
            name is registered again, the volume, uid and workspace host key are theirs again.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user name.")
    var name: String

    func run() throws {
        let user = try UserName(name)
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let keyCount = try registry.user(named: user)?.keyCount
        try registry.removeUser(user)
        audit.record(.userRemoved(user.value, keyCount: keyCount, by: AuditAdmin.current))
        let volume = WorkspaceSettings(prefix: global.prefix).volumeName(for: user)
        print("removed \(user); the home volume \(volume) is kept")
    }
}
