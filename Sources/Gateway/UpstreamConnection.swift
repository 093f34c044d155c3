import CLibSSH
import Foundation
import SSHKeys

/// Why the hop from the gateway to a workspace's sshd failed.
enum UpstreamError: Error, CustomStringConvertible {
    case connect(String)
    case hostKeyMismatch(expected: String, presented: String)
    case authentication(String)

    var description: String {
        switch self {
        case .connect(let detail): return "cannot reach the workspace's sshd: \(detail)"
        case .hostKeyMismatch(let expected, let presented):
            return "the workspace's sshd presented host key \(presented), expected \(expected); refusing"
        case .authentication(let detail): return "the workspace's sshd refused the gateway: \(detail)"
        }
    }
}

/// The gateway's libssh client session to one workspace's sshd, with the host key pinned.
/// Owned by one connection thread; freed when released.
final class UpstreamConnection {
    let session: ssh_session

    /// Connects and authenticates, retrying the TCP connect briefly (sshd may just be starting).
    init(address: String, port: Int, user: String, clientKey: PrivateKey, pinnedHostKey: PublicKey,
         timeout: TimeInterval) throws {
        guard let session = ssh_new() else { throw UpstreamError.connect("ssh_new failed") }
        self.session = session
        var noConfig = false
        ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &noConfig)
        ssh_options_set(session, SSH_OPTIONS_HOST, address)
        var portValue = UInt32(port)
        ssh_options_set(session, SSH_OPTIONS_PORT, &portValue)
        ssh_options_set(session, SSH_OPTIONS_USER, user)
        var seconds = Int(timeout.rounded(.up))
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &seconds)
        ssh_options_set(session, SSH_OPTIONS_HOSTKEYS, pinnedHostKey.type)
        ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null")
        // AES-GCM is the fastest cipher with AES-NI; this hop never leaves the host.
        let ciphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
        ssh_options_set(session, SSH_OPTIONS_CIPHERS_C_S, ciphers)
        ssh_options_set(session, SSH_OPTIONS_CIPHERS_S_C, ciphers)
        ssh_options_set(session, SSH_OPTIONS_COMPRESSION, "no")

        // On a failure the session is freed by deinit, which runs when an initialiser of a
        // class throws after setting every property; freeing it here too was a double free
        // (seen when a workspace was stopped while a login was connecting to it).
        try connect(deadline: Date().addingTimeInterval(timeout))
        try verifyHostKey(pinnedHostKey)
        try authenticate(with: clientKey)
    }

    deinit {
        ssh_disconnect(session)
        ssh_free(session)
    }

    var isConnected: Bool { ssh_is_connected(session) != 0 }

    private func connect(deadline: Date) throws {
        while true {
            if ssh_connect(session) == SSH_OK { return }
            let message = String(cString: ssh_get_error(UnsafeMutableRawPointer(session)))
            ssh_disconnect(session)
            guard Date() < deadline else { throw UpstreamError.connect(message) }
            usleep(100_000)
        }
    }

    private func verifyHostKey(_ pinned: PublicKey) throws {
        var key: ssh_key?
        guard ssh_get_server_publickey(session, &key) == SSH_OK, let key else {
            throw UpstreamError.connect("no host key")
        }
        defer { ssh_key_free(key) }
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else {
            throw UpstreamError.connect("unreadable host key")
        }
        defer { ssh_string_free_char(b64) }
        let presented = String(cString: b64)
        guard presented == pinned.base64 else {
            throw UpstreamError.hostKeyMismatch(expected: pinned.fingerprint, presented: String(presented.prefix(24)) + "…")
        }
    }

    private func authenticate(with clientKey: PrivateKey) throws {
        var key: ssh_key?
        guard ssh_pki_import_privkey_base64(clientKey.pemText, nil, nil, nil, &key) == SSH_OK, let key else {
            throw UpstreamError.authentication("the gateway's upstream key is unreadable")
        }
        defer { ssh_key_free(key) }
        let rc = ssh_userauth_publickey(session, nil, key)
        guard rc == SSH_AUTH_SUCCESS.rawValue else {
            throw UpstreamError.authentication(String(cString: ssh_get_error(UnsafeMutableRawPointer(session))))
        }
    }

    /// Opens a session channel on the workspace (blocking).
    func openSessionChannel() -> ssh_channel? {
        guard let channel = ssh_channel_new(session) else { return nil }
        guard ssh_channel_open_session(channel) == SSH_OK else {
            ssh_channel_free(channel)
            return nil
        }
        return channel
    }
}
