import ArgumentParser
import Audit
import Foundation
import Registry
import UserNames

/// `devenv-gw keys`: list, add and remove a user's public keys.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List, add or remove a user's public keys.",
        subcommands: [List.self, Add.self, Remove.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a user's keys (the default).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The user name.")
        var name: String

        @Flag(help: "Print a JSON array of {fingerprint, type, bits, comment, added, key}.")
        var json = false

        func run() throws {
            let keys = try global.openRegistry().keys(of: UserName(name))
            if json {
                printJSON(keys.map {
                    Row(fingerprint: $0.key.fingerprint, type: $0.key.type, bits: $0.key.bits, comment: $0.key.comment,
                        added: displayDate($0.added), key: $0.key.line)
                })
            } else {
                printTable(["FINGERPRINT", "TYPE", "BITS", "ADDED", "COMMENT"], keys.map {
                    [$0.key.fingerprint, $0.key.type, "\($0.key.bits)", displayDate($0.added), $0.key.comment]
                })
            }
        }

        struct Row: Encodable {
            let fingerprint: String
            let type: String
            let bits: Int
            let comment: String
            let added: String
            /// The key in authorized_keys form.
            let key: String
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add public keys to a user. Nothing is added if any key is refused.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The user name.")
        var name: String

        @OptionGroup var keySource: KeySourceOptions

        func run() throws {
            let user = try UserName(name)
            let keys = try keySource.load()
            let audit = try global.openAuditLog()
            let added = try global.openRegistry().addKeys(keys, to: user)
            let admin = AuditAdmin.current
            for key in added { audit.record(.keyAdded(AuditKey(key), to: user.value, by: admin)) }
            print("added \(added.count) \(added.count == 1 ? "key" : "keys") to \(user):")
            for key in added { print("  \(describe(key))") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove one of a user's keys.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The user name.")
        var name: String

        @Argument(help: "The key's fingerprint as `keys NAME` shows it (SHA256:…; the prefix may be left out).")
        var fingerprint: String

        func run() throws {
            let user = try UserName(name)
            let registry = try global.openRegistry()
            let canonical = fingerprint.hasPrefix("SHA256:") ? fingerprint : "SHA256:" + fingerprint
            let audit = try global.openAuditLog()
            let removed = try registry.removeKey(fingerprint: canonical, from: user)
            audit.record(.keyRemoved(AuditKey(removed.key), from: user.value, by: AuditAdmin.current))
            print("removed \(describe(removed.key)) from \(user)")
            if try registry.keys(of: user).isEmpty {
                printWarning("\(user) has no key left and cannot log in until one is added "
                             + "(devenv-gw keys add \(user) --key …)")
            }
        }
    }
}
