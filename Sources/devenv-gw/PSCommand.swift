import ArgumentParser
import DockerEngine
import Foundation
import Registry
import UserNames
import Workspaces

/// `devenv-gw ps`: every user's workspace and its state.
struct PSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List workspaces and their state.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let registry = try global.openRegistry()
        let manager = try global.workspaceBackend()
        let workspaces = Dictionary(uniqueKeysWithValues: try manager.list().map { ($0.user, $0) })
        let registered = Set(try registry.users().map(\.name))
        let activity = global.activityLog()
        let formatter = ISO8601DateFormatter()
        let rows = registered.union(workspaces.keys).sorted().map { name -> Row in
            let workspace = workspaces[name]
            let lastActivity = (try? UserName(name)).flatMap(activity.lastActivity).map(formatter.string(from:))
            return Row(user: name, registered: registered.contains(name), state: workspace?.state ?? "none",
                       container: workspace?.container, image: workspace?.image, volume: workspace?.volume,
                       node: workspace?.node, lastActivity: lastActivity)
        }
        if json {
            printJSON(rows)
        } else {
            // A swarm places workspaces on nodes; one engine has none to show.
            let onNodes = manager is SwarmWorkspaces
            printTable(["USER", "STATE", "LAST ACTIVITY"] + (onNodes ? ["NODE", "SERVICE"] : ["CONTAINER"]) + ["IMAGE", "VOLUME"],
                       rows.map {
                [$0.registered ? $0.user : "\($0.user) (unregistered)", $0.state, $0.lastActivity ?? "never"]
                    + (onNodes ? [$0.node ?? "-"] : []) + [$0.container ?? "-", $0.image ?? "-", $0.volume ?? "-"]
            })
        }
    }

    struct Row: Encodable {
        let user: String
        let registered: Bool
        let state: String
        let container: String?
        let image: String?
        let volume: String?
        /// The swarm node; absent on the engine backend.
        let node: String?
        let lastActivity: String?
    }
}
