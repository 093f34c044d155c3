import ArgumentParser
import Foundation
import Registry
import UserNames

/// Options every command takes: where the state lives and which instance this is.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("State directory holding the registry (env DEVENV_GW_STATE_DIR).", valueName: "dir"))
    var stateDir: String = ProcessInfo.processInfo.environment["DEVENV_GW_STATE_DIR"] ?? "/var/lib/devenv-gw"

    @Option(help: ArgumentHelp("Prefix of container, volume and network names (env DEVENV_GW_PREFIX).", valueName: "prefix"))
    var prefix: String = ProcessInfo.processInfo.environment["DEVENV_GW_PREFIX"] ?? "devenv"

    func validate() throws {
        let valid = prefix.utf8.count <= 16 && prefix.first.map { $0 >= "a" && $0 <= "z" } == true
            && prefix.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }
        guard valid else {
            throw ValidationError("invalid prefix \(UserName.quoted(prefix)): use up to 16 lowercase letters, digits and '-'")
        }
        guard !stateDir.isEmpty else { throw ValidationError("the state directory is empty") }
    }

    func openRegistry() throws -> Registry {
        try Registry(stateDirectory: stateDir)
    }
}

/// Parses a user name given on the command line, failing with a message that shows it escaped.
func parseUserName(_ raw: String) throws -> UserName {
    do {
        return try UserName(raw)
    } catch let error as UserNameError {
        throw CLIError("\(error)")
    }
}
