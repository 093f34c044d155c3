import ArgumentParser
import Foundation
import Registry

/// `devenv-gw keys`: list, add and remove a user's public keys.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "List, add or remove a user's public keys.",
        subcommands: [List.self, Add.self, Remove.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a user's keys.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user name.") var name: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let keys = try global.openRegistry().keys(of: parseUserName(name))
            let formatter = ISO8601DateFormatter()
            if json {
                printJSON(keys.map {
                    KeyRow(type: $0.key.type, fingerprint: $0.key.fingerprint, comment: $0.key.comment,
                           bits: $0.key.bits, added: formatter.string(from: $0.added), key: $0.key.line)
                })
            } else {
                printTable(["FINGERPRINT", "TYPE", "BITS", "COMMENT"],
                           keys.map { [$0.key.fingerprint, $0.key.type, "\($0.key.bits)", $0.key.comment] })
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add keys to a user.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user name.") var name: String
        @OptionGroup var keySource: KeySourceOptions

        func run() throws {
            let user = try parseUserName(name)
            let keys = try keySource.load()
            try global.openRegistry().addKeys(keys, to: user)
            for key in keys { print("added \(key.fingerprint) \(key.type) \(key.comment) to \(user)") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a key by its SHA256 fingerprint.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user name.") var name: String
        @Argument(help: "The key's fingerprint, SHA256:…") var fingerprint: String

        func run() throws {
            let user = try parseUserName(name)
            let registry = try global.openRegistry()
            try registry.removeKey(fingerprint: fingerprint, from: user)
            print("removed \(fingerprint) from \(user)")
            if try registry.keys(of: user).isEmpty {
                print("\(user) has no key left and cannot log in until one is added")
            }
        }
    }

    struct KeyRow: Encodable {
        let type: String
        let fingerprint: String
        let comment: String
        let bits: Int
        let added: String
        let key: String
    }
}
