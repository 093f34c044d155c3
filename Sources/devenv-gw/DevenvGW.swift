import ArgumentParser
import Foundation
import Gateway

/// The `devenv-gw` command: the gateway and its admin tools in one binary.
@main
struct DevenvGW: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devenv-gw",
        abstract: "One SSH front door to per-user Docker dev workspaces.",
        discussion: """
            Every command works on the state directory (--state-dir) and the instance prefix \
            (--prefix). The Docker engine is the one DOCKER_HOST names (default \
            unix:///var/run/docker.sock); a tcp:// engine is reached over TLS with the \
            ca.pem, cert.pem and key.pem of the config file's docker-tls-dir (or of \
            DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set).

            Exit status: 0 on success, 1 when the command fails, 2 on a usage error.
            """,
        version: GatewayVersion.current,
        subcommands: [
            ServeCommand.self,
            AddUserCommand.self,
            DelUserCommand.self,
            UsersCommand.self,
            KeysCommand.self,
            PSCommand.self,
            NodesCommand.self,
            NodeGuardCommand.self,
            StatusCommand.self,
            BackupCommand.self,
            RestoreCommand.self,
            UpgradeCommand.self,
        ]
    )

    /// Runs the command line: usage errors exit 2, failures exit 1, both with
    /// `devenv-gw: error: …` on stderr.
    static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot(normalized(Array(CommandLine.arguments.dropFirst())))
        } catch {
            exitForParseError(error)
        }
        do {
            try command.run()
        } catch let error as ValidationError {
            printError(error.message)
            Foundation.exit(2)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // `help` and the like
            printError(String(describing: error))
            Foundation.exit(1)
        }
    }

    /// ArgumentParser refuses every argument starting with "---" as a malformed option, even
    /// as an option's value; a pasted private key ("-----BEGIN …") is such a value. Passed as
    /// `--key=VALUE` it reaches the key parser, which refuses it with the reason.
    static func normalized(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            if argument == "--key", index + 1 < arguments.endIndex, arguments[index + 1].hasPrefix("---") {
                result.append("--key=" + arguments[index + 1])
                index += 2
            } else {
                result.append(argument)
                index += 1
            }
        }
        return result
    }

    private static func exitForParseError(_ error: Error) -> Never {
        // --help and friends arrive as errors that end with success; ArgumentParser prints them.
        if exitCode(for: error) == .success { exit(withError: error) }
        var text = fullMessage(for: error)
        if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
        printError(text.trimmingCharacters(in: .whitespacesAndNewlines), keepingNewlines: true)
        // A failure while validating that is no usage error (a bad config file) exits 1.
        Foundation.exit(exitCode(for: error) == .failure ? 1 : 2)
    }
}

/// A failure of a command, said in one line an admin can act on.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes `devenv-gw: error: message` to stderr, with control characters from untrusted
/// text escaped. Line breaks are kept only for usage errors, whose text spans lines.
func printError(_ message: String, keepingNewlines: Bool = false) {
    let text = displayText(message, keepingNewlines: keepingNewlines)
    FileHandle.standardError.write(Data("devenv-gw: error: \(text)\n".utf8))
}

/// Writes `devenv-gw: warning: message` to stderr.
func printWarning(_ message: String) {
    FileHandle.standardError.write(Data("devenv-gw: warning: \(displayText(message))\n".utf8))
}
