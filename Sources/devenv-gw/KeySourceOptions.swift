import ArgumentParser
import CurlHTTP
import Foundation
import SSHKeys
import UserNames

/// Where public keys come from: `--key` (repeatable), `--key-file FILE|-` or `--github HANDLE`.
struct KeySourceOptions: ParsableArguments {
    // `.unconditional…`: a key argument is taken as given even when it starts with '-'
    // (a pasted private key starts with "-----BEGIN"), so it is refused with a reason.
    @Option(name: .customLong("key"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A public key line, e.g. 'ssh-ed25519 AAAA… alice@laptop' (repeatable).",
                               valueName: "public-key"))
    var keys: [String] = []

    @Option(name: .customLong("key-file"), parsing: .unconditional,
            help: ArgumentHelp("A file of public keys in authorized_keys form; '-' reads standard input.",
                               valueName: "file"))
    var keyFile: String?

    @Option(name: .customLong("github"),
            help: ArgumentHelp("Register the public keys the GitHub account publishes (<url>/HANDLE.keys).",
                               valueName: "handle"))
    var github: String?

    @Option(name: .customLong("github-url"),
            help: ArgumentHelp("Base URL for --github (env DEVENV_GW_GITHUB_URL).", valueName: "url",
                               visibility: .hidden))
    var githubURL: String = ProcessInfo.processInfo.environment["DEVENV_GW_GITHUB_URL"] ?? "https://github.com"

    /// Key files larger than this are not key files.
    static let maxKeyFileSize = 1 << 20

    func validate() throws {
        let given = [!keys.isEmpty, keyFile != nil, github != nil].filter { $0 }.count
        guard given == 1 else {
            throw ValidationError("give exactly one key source: --key (repeatable), --key-file or --github")
        }
        if let github, !Self.isValidGitHubHandle(github) {
            throw ValidationError("invalid GitHub user name \(UserName.quoted(github))")
        }
        if github != nil, !(githubURL.hasPrefix("https://") || githubURL.hasPrefix("http://")) {
            throw ValidationError("the GitHub URL \(UserName.quoted(githubURL)) is not an http(s) URL")
        }
    }

    /// GitHub's rule for account names: `^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`.
    static func isValidGitHubHandle(_ handle: String) -> Bool {
        let bytes = Array(handle.utf8)
        func isAlnum(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
        }
        guard let first = bytes.first, isAlnum(first), bytes.count <= 39 else { return false }
        return bytes.dropFirst().allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// Reads and validates the keys. Any invalid `--key` or key-file line fails the command.
    func load() throws -> [PublicKey] {
        if !keys.isEmpty {
            return try keys.enumerated().map { index, line in
                do {
                    return try PublicKey(parsing: line)
                } catch {
                    throw CLIError("invalid key" + (keys.count > 1 ? " \(index + 1) of \(keys.count)" : "") + ": \(error)")
                }
            }
        }
        if let keyFile {
            let source = keyFile == "-" ? "standard input" : UserName.quoted(keyFile)
            let text = try Self.readKeyFile(keyFile, source: source)
            let parsed: [PublicKey]
            do { parsed = try PublicKey.parseAll(text) } catch { throw CLIError("invalid key in \(source): \(error)") }
            guard !parsed.isEmpty else { throw CLIError("no public key in \(source)") }
            return parsed
        }
        if let github { return try loadFromGitHub(github) }
        return []
    }

    private static func readKeyFile(_ path: String, source: String) throws -> String {
        let handle: FileHandle
        if path == "-" {
            handle = .standardInput
        } else {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError("cannot read \(source): \(String(cString: strerror(errno)))") }
            // open(2) succeeds on a directory; only the read fails, with a Foundation error
            // that names no file.
            var status = stat()
            if fstat(fd, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                throw CLIError("cannot read \(source): it is a directory, not a key file")
            }
            handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        }
        let data: Data
        do {
            data = try handle.read(upToCount: maxKeyFileSize + 1) ?? Data()
        } catch {
            throw CLIError("cannot read \(source): \((error as NSError).localizedFailureReason ?? "\(error)")")
        }
        guard data.count <= maxKeyFileSize else { throw CLIError("\(source) is too large for a key file") }
        return String(decoding: data, as: UTF8.self)
    }

    /// GitHub lists every key the account has; keys this gateway refuses (DSA, short RSA)
    /// are skipped with a warning. Keys without a comment are labelled `github:HANDLE`.
    private func loadFromGitHub(_ handle: String) throws -> [PublicKey] {
        var base = githubURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = "\(base)/\(handle).keys"
        let response: HTTPResponse
        do {
            response = try HTTPClient.get(url, timeout: 20)
        } catch {
            throw CLIError("cannot fetch \(url): \(error)")
        }
        guard response.status == 200 else {
            let hint = response.status == 404 ? " (no such GitHub user?)" : ""
            throw CLIError("cannot fetch \(url): HTTP \(response.status)\(hint)")
        }
        var accepted: [PublicKey] = []
        for line in String(decoding: response.body, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = line.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            do {
                let key = try PublicKey(parsing: line)
                accepted.append(key.comment.isEmpty
                    ? PublicKey(type: key.type, base64: key.base64, comment: "github:\(handle)", bits: key.bits,
                                fingerprint: key.fingerprint)
                    : key)
            } catch {
                printWarning("skipping a key of GitHub user \(handle): \(error)")
            }
        }
        guard !accepted.isEmpty else { throw CLIError("\(url) lists no usable public key") }
        return accepted
    }
}
