import ArgumentParser
import CurlHTTP
import Foundation
import SSHKeys

/// Where public keys come from: `--key`, `--key-file FILE|-` or `--github HANDLE`.
struct KeySourceOptions: ParsableArguments {
    @Option(name: .customLong("key"), help: "A public key line, e.g. 'ssh-ed25519 AAAA… alice@laptop' (repeatable).")
    var keys: [String] = []

    @Option(name: .customLong("key-file"), help: "A file of public keys, one per line; - reads stdin.")
    var keyFile: String?

    @Option(name: .customLong("github"), help: "A GitHub user name whose published keys to register.")
    var github: String?

    @Option(name: .customLong("github-url"), help: ArgumentHelp("Base URL for --github (env DEVENV_GW_GITHUB_URL).", visibility: .hidden))
    var githubURL: String = ProcessInfo.processInfo.environment["DEVENV_GW_GITHUB_URL"] ?? "https://github.com"

    func validate() throws {
        let given = [!keys.isEmpty, keyFile != nil, github != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --key, --key-file or --github") }
        if let github {
            let valid = (1...39).contains(github.count) && github.first != "-"
                && github.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            guard valid else { throw ValidationError("invalid GitHub user name \(github.debugDescription)") }
        }
    }

    /// Reads and validates the keys; any invalid explicit key fails the whole command.
    func load() throws -> [PublicKey] {
        if !keys.isEmpty {
            return try keys.map { line in
                do { return try PublicKey(parsing: line) } catch { throw CLIError("invalid key: \(error)") }
            }
        }
        if let keyFile {
            let text: String
            if keyFile == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                do {
                    text = try String(contentsOfFile: keyFile, encoding: .utf8)
                } catch {
                    throw CLIError("cannot read key file \(keyFile): \(error.localizedDescription)")
                }
            }
            let parsed: [PublicKey]
            do { parsed = try PublicKey.parseAll(text) } catch { throw CLIError("invalid key in \(keyFile): \(error)") }
            guard !parsed.isEmpty else { throw CLIError("no public key in \(keyFile)") }
            return parsed
        }
        return try loadFromGitHub()
    }

    /// GitHub lists every key a user ever added; keys we do not accept are skipped with a warning.
    private func loadFromGitHub() throws -> [PublicKey] {
        guard let handle = github else { return [] }
        let url = githubURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/\(handle).keys"
        let response: HTTPResponse
        do {
            response = try HTTPClient.get(url, timeout: 15)
        } catch {
            throw CLIError("cannot fetch \(url): \(error)")
        }
        guard response.status == 200 else { throw CLIError("cannot fetch \(url): HTTP \(response.status)") }
        var accepted: [PublicKey] = []
        for line in String(decoding: response.body, as: UTF8.self).split(whereSeparator: \.isNewline) where !line.isEmpty {
            do {
                accepted.append(try PublicKey(parsing: String(line)))
            } catch {
                FileHandle.standardError.write(Data("devenv-gw: warning: skipping a key of \(handle): \(error)\n".utf8))
            }
        }
        guard !accepted.isEmpty else { throw CLIError("\(url) lists no usable public key") }
        return accepted
    }
}
