import CCurl

/// The files for TLS to a server with a certificate from a private CA, and for mutual TLS
/// the client certificate it requires. The server is always verified: its certificate must
/// chain to `caCertificate` and name the URL's host. There is deliberately no switch to
/// turn that off.
public struct TLSFiles: Sendable, Equatable {
    /// PEM file of the CA (or CAs) the server's certificate must chain to. Only these are
    /// trusted, not the system's CA store.
    public var caCertificate: String
    /// The client certificate to present, or nil to present none.
    public var client: TLSClientIdentity?

    public init(caCertificate: String, client: TLSClientIdentity?) {
        self.caCertificate = caCertificate
        self.client = client
    }
}

/// A client certificate and its private key, both PEM files.
public struct TLSClientIdentity: Sendable, Equatable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}

/// Why a TLS transfer failed, as far as libcurl lets us tell.
public enum TLSProblem: Sendable, Equatable {
    /// The server's certificate does not chain to the given CA, or does not name the host.
    case serverNotTrusted
    /// The server refused the client certificate, or the missing one (a TLS alert).
    case clientCertificateRefused
    /// The client certificate or key could not be loaded (unreadable, not PEM, key mismatch).
    case clientCertificateUnusable
    /// The CA file could not be loaded.
    case caCertificateUnusable
    /// Any other handshake failure.
    case handshakeFailed
}

extension TLSProblem {
    /// The TLS problem a failed transfer's code and detail show, or nil when the failure
    /// was not about TLS.
    /// Whether libcurl's `text` reports the alert a server sends when it refuses the client
    /// certificate: during the handshake with TLS 1.2, at the first read after it with TLS 1.3.
    static func isRefusal(_ text: String) -> Bool {
        let text = text.lowercased()
        return ["alert bad certificate", "alert certificate required", "alert unknown ca",
                "alert certificate unknown", "alert unsupported certificate"].contains(where: text.contains)
    }

    init?(code: CURLcode, detail: String) {
        switch code {
        case CURLE_PEER_FAILED_VERIFICATION: self = .serverNotTrusted
        case CURLE_SSL_CERTPROBLEM: self = .clientCertificateUnusable
        case CURLE_SSL_CACERT_BADFILE: self = .caCertificateUnusable
        case CURLE_SSL_CONNECT_ERROR, CURLE_RECV_ERROR, CURLE_SEND_ERROR:
            if Self.isRefusal(detail) {
                self = .clientCertificateRefused
            } else if code == CURLE_SSL_CONNECT_ERROR {
                self = .handshakeFailed
            } else {
                return nil
            }
        default:
            return nil
        }
    }
}
