import Foundation
import Gateway

/// `STATE_DIR/gateway.json`: what a running `serve` tells `devenv-gw status`, which may run
/// in another process or container (`docker exec` on CoreOS): its pid, version, start time
/// and addresses. Written at start, removed at a clean stop.
struct GatewayStatusFile {
    /// The refused-login list's file name in the state directory (see `RefusedLoginLog`).
    static let refusedLoginsName = "refused-logins.json"

    struct Contents: Codable {
        let pid: Int32
        let version: String
        let started: Date
        let listen: [String]
        /// `HOST:PORT` of the metrics endpoint, or nil when it is off.
        let metrics: String?
    }

    private let file: JSONStateFile<Contents>

    init(stateDirectory: String) {
        file = JSONStateFile(path: (stateDirectory as NSString).appendingPathComponent("gateway.json"))
    }

    /// Writes the file; a failure only costs `status` its details.
    func write(_ contents: Contents) { file.write(contents) }

    /// What the file says, or nil when there is none (no gateway started on this state).
    func read() -> Contents? { file.read() }

    func remove() { file.remove() }
}
