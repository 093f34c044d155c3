import ArgumentParser
import Foundation

/// The `devenv-gw` command: the gateway and its admin tools in one binary.
@main
struct DevenvGW: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devenv-gw",
        abstract: "One SSH front door to per-user Docker dev workspaces.",
        discussion: "The Docker engine is taken from DOCKER_HOST (default unix:///var/run/docker.sock).",
        subcommands: [
            ServeCommand.self, AddUserCommand.self, DelUserCommand.self, UsersCommand.self, KeysCommand.self,
            PSCommand.self,
        ]
    )

    /// Usage errors exit 2, failures exit 1 with `devenv-gw: error: …` on stderr.
    static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(2)
        }
        do {
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("devenv-gw: error: \(error.message)\n".utf8))
            Foundation.exit(2)
        } catch {
            FileHandle.standardError.write(Data("devenv-gw: error: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// A failure of a command, said in one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
