import ArgumentParser
import Foundation
import Workspaces
import Registry
import UserNames

/// Options every command takes: where the state lives and which instance this is.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Directory holding the registry and the gateway's state (env DEVENV_GW_STATE_DIR).",
        valueName: "dir"))
    var stateDir: String = ProcessInfo.processInfo.environment["DEVENV_GW_STATE_DIR"] ?? "/var/lib/devenv-gw"

    @Option(help: ArgumentHelp(
        "Prefix of the container, volume and network names on the Docker engine that DOCKER_HOST names "
            + "(env DEVENV_GW_PREFIX): a lowercase letter, then up to 15 lowercase letters, digits or '-'.",
        valueName: "prefix"))
    var prefix: String = ProcessInfo.processInfo.environment["DEVENV_GW_PREFIX"] ?? "devenv"

    func validate() throws {
        guard Self.isValidPrefix(prefix) else {
            throw ValidationError("invalid prefix \(UserName.quoted(prefix)): "
                                  + "use a lowercase letter, then up to 15 lowercase letters, digits or '-'")
        }
        guard !stateDir.isEmpty else { throw ValidationError("the state directory is empty") }
    }

    /// `^[a-z][a-z0-9-]{0,15}$`, checked on bytes so no Unicode lookalike passes.
    static func isValidPrefix(_ prefix: String) -> Bool {
        let bytes = Array(prefix.utf8)
        func isLower(_ b: UInt8) -> Bool { b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        guard let first = bytes.first, isLower(first), bytes.count <= 16 else { return false }
        return bytes.dropFirst().allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "-") }
    }

    /// The key the gateway logs in to workspaces with (`serve` creates it at the same path).
    var upstreamKeyPath: String { (stateDir as NSString).appendingPathComponent("upstream_ed25519_key") }

    func openRegistry() throws -> Registry {
        try Registry(stateDirectory: stateDir)
    }

    /// When each user last used their workspace, as the gateway records it.
    func activityLog() -> WorkspaceActivityLog {
        WorkspaceActivityLog(directory: (stateDir as NSString).appendingPathComponent("activity"))
    }
}
