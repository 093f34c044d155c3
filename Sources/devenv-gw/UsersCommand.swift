import ArgumentParser
import Foundation
import Registry

/// `devenv-gw users [--json]`.
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "List registered users.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print a JSON array of {name, uid, keys, created}.")
    var json = false

    func run() throws {
        let rows = try global.openRegistry().users().map {
            Row(name: $0.name, uid: $0.uid, keys: $0.keyCount, created: displayDate($0.created))
        }
        if json {
            printJSON(rows)
        } else {
            printTable(["NAME", "UID", "KEYS", "CREATED"], rows.map { [$0.name, "\($0.uid)", "\($0.keys)", $0.created] })
        }
    }

    struct Row: Encodable {
        let name: String
        let uid: Int
        let keys: Int
        let created: String
    }
}
