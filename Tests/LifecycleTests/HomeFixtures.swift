import Foundation
import TestSupport
import XCTest

/// Files of every kind a home holds, made in a workspace through the gateway, and a
/// description of a home precise enough to compare two of them.
enum HomeFixtures {
    /// A 50 MB random file, a hard link to it, symbolic links (one dangling), a 0600 file,
    /// a 0700 directory, an empty directory, names with spaces and `é`, a file dated 2001.
    static let makeFiles = """
        set -e; cd ~
        head -c 50M /dev/urandom > random.bin
        ln random.bin hardlink.bin
        ln -s random.bin link-to-random; ln -s /nonexistent dangling-link
        echo secret > private.txt; chmod 600 private.txt
        mkdir -m 700 private-dir; echo inside > private-dir/file
        mkdir empty-dir
        mkdir 'dir with spaces é'; echo 'naïve' > 'dir with spaces é/file é.txt'
        echo old > old.txt; touch -d '2001-02-03 04:05:06' old.txt
        """

    /// Every entry of the home (the home itself included) with type, mode, owner, mtime in
    /// seconds (the engine's archives keep whole seconds), size and link target; the
    /// SHA-256 of every file; and whether the hard link still shares its inode.
    static let describeHome = """
        cd ~ && find . -printf '%p|%y|%m|%U:%G|%Ts|%s|%l\\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        if [ -e hardlink.bin ]; then [ "$(stat -c %i random.bin)" = "$(stat -c %i hardlink.bin)" ] && echo hard link shared; fi
        """
}

extension GatewayTestCase {
    /// The home of `user` as `HomeFixtures.describeHome` sees it, through the gateway.
    func describeHome(_ user: String, _ identity: SSHClientIdentity, gateway: GatewayProcess? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try identity.ssh(user, port: (gateway ?? self.gateway).port, HomeFixtures.describeHome)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return result.output
    }

    /// The public host key the workspace's sshd presents, read directly from the container.
    func workspaceHostKey(_ user: String, gateway: GatewayProcess? = nil,
                          file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let gateway = gateway ?? self.gateway!
        let details = try gateway.docker.inspectContainer("\(gateway.prefix)-\(user)")
        let address = try XCTUnwrap(details.ipAddress(on: gateway.prefix), file: file, line: line)
        let scan = try runProgram("/usr/bin/ssh-keyscan", ["-t", "ed25519", address])
        let key = scan.output.split(separator: "\n").first { !$0.hasPrefix("#") }?.split(separator: " ").dropFirst().joined(separator: " ")
        return try XCTUnwrap(key, "ssh-keyscan \(address): \(scan.stderr)", file: file, line: line)
    }

    /// Runs a subcommand of the gateway's binary and expects it to succeed.
    @discardableResult
    func admin(_ arguments: [String], gateway: GatewayProcess? = nil, input: Data? = nil,
               file: StaticString = #filePath, line: UInt = #line) throws -> ProgramResult {
        let result = try (gateway ?? self.gateway).admin(arguments, input: input)
        XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)", file: file, line: line)
        return result
    }
}
