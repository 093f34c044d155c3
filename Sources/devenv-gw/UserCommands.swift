import ArgumentParser
import DockerEngine
import Foundation
import Registry
import SSHKeys
import Workspaces

/// `devenv-gw adduser`.
struct AddUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adduser", abstract: "Register a user with their public keys.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The user name: lowercase letters, digits, '_' and '-', at most 32.") var name: String
    @OptionGroup var keySource: KeySourceOptions

    func run() throws {
        let user = try parseUserName(name)
        let keys = try keySource.load()
        let registry = try global.openRegistry()
        let (added, returning) = try registry.addUser(user, keys: keys)
        let noun = keys.count == 1 ? "key" : "keys"
        print("added \(user) (uid \(added.uid)) with \(keys.count) \(noun):")
        for key in keys { print("  \(key.fingerprint) \(key.type) \(key.comment)") }
        let volume = WorkspaceSettings(prefix: global.prefix).volumeName(for: user)
        if (try? DockerClient(requestTimeout: 5).inspectVolume(volume)) != nil {
            print("the existing home volume \(volume) is reattached\(returning ? " with the same uid" : "")")
        }
    }
}

/// `devenv-gw deluser`.
struct DelUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deluser", abstract: "Remove a user's registration. Their home volume is kept.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The user name.") var name: String

    func run() throws {
        let user = try parseUserName(name)
        try global.openRegistry().removeUser(user)
        let volume = WorkspaceSettings(prefix: global.prefix).volumeName(for: user)
        print("removed \(user); the home volume \(volume) is kept")
    }
}

/// `devenv-gw users`.
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "List registered users.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let registry = try global.openRegistry()
        let rows = try registry.users().map { user -> UserRow in
            UserRow(name: user.name, uid: user.uid,
                    keys: (try? registry.keys(of: parseUserName(user.name)).count) ?? 0,
                    created: ISO8601DateFormatter().string(from: user.created))
        }
        if json {
            printJSON(rows)
        } else {
            printTable(["NAME", "UID", "KEYS", "CREATED"], rows.map { [$0.name, "\($0.uid)", "\($0.keys)", $0.created] })
        }
    }

    struct UserRow: Encodable {
        let name: String
        let uid: Int
        let keys: Int
        let created: String
    }
}

/// Prints a value as pretty, stable JSON.
func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self))
}

/// Prints rows as left-aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  "))
    }
}
