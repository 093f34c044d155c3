import CurlHTTP
import Foundation

/// A Docker TLS directory, the layout `DOCKER_CERT_PATH` names for the docker CLI:
/// `ca.pem`, the CA that signed the engines' server certificates, and `cert.pem` with
/// `key.pem`, the client certificate engines started with `--tlsverify` require.
///
/// Loading checks that the three files are there, readable and of the right kind, so a
/// bad directory is refused when the gateway starts rather than at a user's login.
public struct DockerTLS: Sendable, Equatable {
    /// The directory the files were found in.
    public let directory: String
    /// The files, for libcurl.
    public let files: TLSFiles

    public static let caFileName = "ca.pem"
    public static let certificateFileName = "cert.pem"
    public static let keyFileName = "key.pem"

    /// Loads and checks `directory`; throws `DockerTLSError` naming the first bad file.
    public init(directory: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw DockerTLSError(path: directory, reason: "no such directory")
        }
        guard isDirectory.boolValue else { throw DockerTLSError(path: directory, reason: "not a directory") }
        let base = directory as NSString
        let ca = base.appendingPathComponent(Self.caFileName)
        let certificate = base.appendingPathComponent(Self.certificateFileName)
        let key = base.appendingPathComponent(Self.keyFileName)
        try Self.check(ca, holds: .certificate)
        try Self.check(certificate, holds: .certificate)
        try Self.check(key, holds: .privateKey)
        self.directory = directory
        files = TLSFiles(caCertificate: ca, client: TLSClientIdentity(certificate: certificate, key: key))
    }

    private enum PEMKind {
        case certificate, privateKey
    }

    /// A regular, readable file with a PEM block of `kind`; an encrypted key is refused,
    /// since nobody is there to type its passphrase.
    private static func check(_ path: String, holds kind: PEMKind) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DockerTLSError(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw DockerTLSError(path: path, reason: "is a directory, not a file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DockerTLSError(path: path, reason: "cannot be read (permission denied?)")
        }
        defer { try? handle.close() }
        // PEM files are small; a megabyte is more than any certificate chain.
        let head: Data
        do {
            head = try handle.read(upToCount: 1 << 20) ?? Data()
        } catch {
            throw DockerTLSError(path: path, reason: "cannot be read: \(error.localizedDescription)")
        }
        let text = String(decoding: head, as: UTF8.self)
        switch kind {
        case .certificate:
            guard text.contains("-----BEGIN CERTIFICATE-----") else {
                throw DockerTLSError(path: path, reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
            }
        case .privateKey:
            if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
                throw DockerTLSError(path: path, reason: "is encrypted with a passphrase, which the gateway cannot ask for")
            }
            guard text.range(of: #"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"#, options: .regularExpression) != nil else {
                throw DockerTLSError(path: path, reason: "holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
            }
        }
    }
}

/// A Docker TLS directory that cannot be used: the file (or directory) and why.
public struct DockerTLSError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

extension DockerTLS {
    /// What went wrong, in an admin's words, naming the files involved.
    func explain(_ problem: TLSProblem, detail: String) -> String {
        let ca = files.caCertificate
        let certificate = files.client?.certificate ?? "(none)", key = files.client?.key ?? "(none)"
        switch problem {
        case .serverNotTrusted:
            return "the engine's certificate is not trusted: it must be signed by the CA in \(ca) and name "
                + "the address the gateway connects to in its subjectAltName (\(detail))"
        case .clientCertificateRefused:
            return "the engine refused the client certificate \(certificate): it must be signed by the CA "
                + "the engine's --tlscacert names (\(detail))"
        case .clientCertificateUnusable:
            return "cannot use the client certificate \(certificate) with the key \(key) (\(detail))"
        case .caCertificateUnusable:
            return "cannot load the CA certificate \(ca) (\(detail))"
        case .handshakeFailed:
            return "the TLS handshake failed (\(detail))"
        }
    }
}
