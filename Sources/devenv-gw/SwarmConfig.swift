import DockerEngine
import Foundation
import Workspaces

/// The config file's Swarm settings (`backend = "swarm"`).
struct SwarmConfig {
    var manager: String?
    var network: String
    var nodeEngines: [String: String]
    /// The image of each node's firewall guard; nil when the admin firewalls the nodes
    /// (`swarm-node-guard = "none"`).
    var nodeGuardImage: String?

    static let defaultNodeGuardImage = "devenv-gw:latest"

    init(file: ConfigFile) {
        manager = file.string(.swarmManager)
        network = file.string(.swarmNetwork) ?? "devenv-ws"
        let guardImage = file.string(.swarmNodeGuard) ?? Self.defaultNodeGuardImage
        nodeGuardImage = guardImage == "none" ? nil : guardImage
        nodeEngines = Dictionary((file.strings(.swarmNodeEngines) ?? []).compactMap(Self.nodeEngine)) { $1 }
    }

    /// `HOSTNAME=unix://PATH` or `HOSTNAME=tcp://HOST:PORT` as (hostname, endpoint), or nil.
    static func nodeEngine(_ entry: String) -> (String, String)? {
        guard let equals = entry.firstIndex(of: "=") else { return nil }
        let hostname = String(entry[..<equals]), endpoint = String(entry[entry.index(after: equals)...])
        guard !hostname.isEmpty, endpoint.hasPrefix("unix:///") || endpoint.hasPrefix("tcp://") else { return nil }
        return (hostname, endpoint)
    }

    /// The backend; `tls` is used for every `tcp://` engine among the manager and the nodes.
    func backend(settings: WorkspaceSettings, tls: DockerTLS?) -> SwarmWorkspaces {
        SwarmWorkspaces(manager: DockerClient(host: manager, tls: tls),
                        nodeEngines: nodeEngines.mapValues { DockerClient(host: $0, tls: tls) },
                        network: network, settings: settings)
    }
}
