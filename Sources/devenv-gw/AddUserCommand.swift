import ArgumentParser
import Audit
import DockerEngine
import Foundation
import Registry
import SSHKeys
import UserNames
import Workspaces

/// `devenv-gw adduser NAME (--key … | --key-file FILE|- | --github HANDLE)`.
struct AddUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adduser",
        abstract: "Register a user with their public keys.",
        discussion: "The user logs in with `ssh NAME@gateway`; their workspace is created at the first login.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The user name: a lowercase letter or '_', then up to 31 lowercase letters, digits, '_' or '-'.")
    var name: String

    @OptionGroup var keySource: KeySourceOptions

    func run() throws {
        let user = try UserName(name)
        try Registry.checkAllowed(user)
        let keys = try keySource.load()
        let registry = try global.openRegistry()
        let audit = try global.openAuditLog()
        let added = try registry.addUser(user, keys: keys)
        let stored = try registry.keys(of: user).map(\.key)
        let admin = AuditAdmin.current
        audit.record(.userAdded(user.value, uid: added.uid, keyCount: stored.count, by: admin))
        for key in stored { audit.record(.keyAdded(AuditKey(key), to: user.value, by: admin)) }
        let noun = stored.count == 1 ? "key" : "keys"
        if stored.count == 1 {
            print("added \(user) (uid \(added.uid)) with 1 key: \(describe(stored[0]))")
        } else {
            print("added \(user) (uid \(added.uid)) with \(stored.count) \(noun):")
            for key in stored { print("  \(describe(key))") }
        }
        let volume = try global.workspaceSettings().volumeName(for: user)
        if (try? global.dockerClient(requestTimeout: 5).inspectVolume(volume)) != nil {
            print("the existing home volume \(volume) is reattached")
        }
    }
}

/// One key as the admin commands show it: fingerprint, type and comment.
func describe(_ key: PublicKey) -> String {
    displayText(key.comment.isEmpty ? "\(key.fingerprint) \(key.type)" : "\(key.fingerprint) \(key.type) \(key.comment)")
}
