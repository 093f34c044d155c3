import ArgumentParser
import Foundation
import Workspaces

/// `devenv-gw nodes`: the swarm's nodes and this instance's workspaces on each.
struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes", abstract: "List the swarm's nodes with their workspace counts (backend = \"swarm\").")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard let swarm = try global.workspaceBackend() as? SwarmWorkspaces else {
            throw CLIError("nodes needs backend = \"swarm\" in the config file; the engine backend has one engine")
        }
        let rows = try swarm.nodes().map {
            Row(node: $0.node.hostname, id: $0.node.id, role: $0.node.role, state: $0.node.state,
                availability: $0.node.availability, address: $0.node.address, workspaces: $0.workspaces,
                running: $0.running, memoryMiB: $0.node.memoryBytes / (1024 * 1024), engine: $0.node.engineVersion,
                guardState: $0.guardState)
        }
        if json { return printJSON(rows) }
        printTable(["NODE", "ROLE", "STATE", "AVAILABILITY", "ADDRESS", "WORKSPACES", "RUNNING", "MEMORY", "ENGINE",
                    "GUARD"], rows.map {
            [$0.node, $0.role, $0.state, $0.availability, $0.address ?? "-", "\($0.workspaces)", "\($0.running)",
             "\($0.memoryMiB) MiB", $0.engine ?? "-", $0.guardState]
        })
    }

    struct Row: Encodable {
        let node: String
        let id: String
        let role: String
        let state: String
        let availability: String
        let address: String?
        let workspaces: Int
        let running: Int
        let memoryMiB: Int64
        let engine: String?
        /// The node guard's container state (docs/scale-out.md, "Firewall on the nodes").
        let guardState: String
    }
}
