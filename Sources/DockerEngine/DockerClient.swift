import CurlHTTP
import Foundation

/// A blocking client for the Docker Engine API over its unix socket or TCP, built on libcurl.
///
/// A `tcp://` engine is reached over HTTPS with client certificates when a `DockerTLS`
/// directory is given (an engine started with `--tlsverify`), and over plain HTTP only
/// when none is. Every call blocks its caller's thread; keep it off Swift's cooperative
/// pool. Safe to use from many threads at once: each request has its own libcurl handle.
public final class DockerClient: @unchecked Sendable {
    /// Where requests go, as given (`unix:///var/run/docker.sock`, `tcp://host:port`).
    public let endpoint: String
    /// The TLS directory in use: nil for a unix socket and for plain-HTTP TCP.
    public let tls: DockerTLS?
    private let socketPath: String?
    private let baseURL: String
    private let requestTimeout: TimeInterval
    private let lock = NSLock()
    private var negotiatedVersion: String?

    /// The highest API version this client speaks; older engines are used at their own version.
    public static let maximumAPIVersion = "1.43"

    /// - Parameters:
    ///   - host: a `DOCKER_HOST` value; nil reads the environment, defaulting to the local socket.
    ///   - tls: the certificates for a `tcp://` host, which is then reached over HTTPS (port
    ///     2376 unless the host names one, as the docker CLI does); ignored for a unix socket.
    ///   - requestTimeout: the limit for ordinary (non-streaming) requests.
    public init(host: String? = nil, tls: DockerTLS? = nil, requestTimeout: TimeInterval = 60) {
        let host = host ?? ProcessInfo.processInfo.environment["DOCKER_HOST"] ?? "unix:///var/run/docker.sock"
        endpoint = host
        self.requestTimeout = requestTimeout
        if host.hasPrefix("unix://") {
            socketPath = String(host.dropFirst("unix://".count))
            baseURL = "http://localhost"
            self.tls = nil
        } else if host.hasPrefix("tcp://") {
            socketPath = nil
            let address = Self.withDefaultPort(String(host.dropFirst("tcp://".count)), tls: tls != nil)
            baseURL = (tls == nil ? "http://" : "https://") + address
            self.tls = tls
        } else {
            socketPath = host
            baseURL = "http://localhost"
            self.tls = nil
        }
    }

    /// True for a `tcp://` engine reached without TLS: unauthenticated and unencrypted.
    public var isPlainTCP: Bool { socketPath == nil && tls == nil }

    /// `address` with Docker's default port when it names none: 2376 for TLS, 2375 without.
    static func withDefaultPort(_ address: String, tls: Bool) -> String {
        let path = address.firstIndex(of: "/").map { address[$0...] } ?? ""
        let authority = address.dropLast(path.count)
        // An IPv6 literal's colons are inside its brackets.
        let afterHost = authority.lastIndex(of: "]").map { authority[$0...] } ?? authority
        guard !authority.isEmpty, !afterHost.contains(":") else { return address }
        return "\(authority):\(tls ? 2376 : 2375)\(path)"
    }

    /// The API version in use, negotiated from `/_ping` on first use and again after a failure.
    public func apiVersion() throws -> String {
        lock.lock()
        if let negotiatedVersion { lock.unlock(); return negotiatedVersion }
        lock.unlock()
        let response = try send(HTTPRequest(url: baseURL + "/_ping", timeout: 10), operation: "ping")
        if response.status == 400, isPlainTCP,
           String(decoding: response.body, as: UTF8.self).contains("HTTP request to an HTTPS server") {
            EngineErrorCount.note("ping")
            throw DockerError.tls(endpoint: endpoint, reason: "the engine requires TLS, and no TLS directory "
                                  + "(ca.pem, cert.pem, key.pem) is configured for it")
        }
        guard response.status == 200, let engineVersion = response.headers["api-version"] else {
            throw DockerError.badResponse("/_ping answered \(response.status) without Api-Version")
        }
        let version = Self.compare(engineVersion, Self.maximumAPIVersion) < 0 ? engineVersion : Self.maximumAPIVersion
        lock.lock()
        negotiatedVersion = version
        lock.unlock()
        return version
    }

    /// Compares dotted versions numerically.
    static func compare(_ a: String, _ b: String) -> Int {
        let x = a.split(separator: ".").map { Int($0) ?? 0 }
        let y = b.split(separator: ".").map { Int($0) ?? 0 }
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0, r = i < y.count ? y[i] : 0
            if l != r { return l < r ? -1 : 1 }
        }
        return 0
    }

    // MARK: - Requests

    /// Sends a request to `path` (with query) and returns the response, mapping error statuses.
    func call(_ method: String, _ path: String, json body: Data? = nil, timeout: TimeInterval? = nil,
              operation: String) throws -> HTTPResponse {
        let version = try apiVersion()
        var request = HTTPRequest(method: method, url: "\(baseURL)/v\(version)\(path)",
                                  timeout: timeout ?? requestTimeout)
        if let body {
            request.body = .data(body)
            request.headers = ["Content-Type: application/json"]
        } else if method == "POST" {
            request.body = .data(Data())
        }
        let response = try send(request, operation: operation)
        try check(response, operation: operation)
        return response
    }

    /// Sends a streaming request: `source` supplies the upload body, `sink` takes the download.
    func stream(_ method: String, _ path: String, contentType: String? = nil, source: HTTPBodySource? = nil,
                sink: HTTPBodySink? = nil, operation: String) throws {
        let version = try apiVersion()
        var request = HTTPRequest(method: method, url: "\(baseURL)/v\(version)\(path)", timeout: nil)
        if let source {
            request.body = .stream(source)
            if let contentType { request.headers = ["Content-Type: \(contentType)"] }
        }
        let response = try send(request, sink: sink, operation: operation)
        try check(response, operation: operation)
    }

    private func send(_ request: HTTPRequest, sink: HTTPBodySink? = nil, operation: String) throws -> HTTPResponse {
        var request = request
        request.unixSocketPath = socketPath
        request.tls = tls?.files
        do {
            return try HTTPClient.perform(request, sink: sink)
        } catch let error as HTTPTransportError {
            EngineErrorCount.note(operation)
            lock.lock()
            negotiatedVersion = nil  // the engine may come back as another version
            lock.unlock()
            if let inner = error.callbackError { throw DockerError.stream("\(inner)") }
            if error.isTimeout { throw DockerError.timedOut(endpoint: endpoint, operation: operation) }
            if let problem = error.tlsProblem, let tls {
                throw DockerError.tls(endpoint: endpoint, reason: tls.explain(problem, detail: error.message))
            }
            throw DockerError.unreachable(endpoint: endpoint, reason: error.message)
        }
    }

    /// `check`, counting a status the caller does not expect in `devenv_gw_engine_errors_total`.
    private func check(_ response: HTTPResponse, operation: String) throws {
        do {
            try Self.check(response)
        } catch DockerError.engine(let status, let message) {
            EngineErrorCount.note(operation)
            throw DockerError.engine(status: status, message: message)
        }
    }

    static func check(_ response: HTTPResponse) throws {
        switch response.status {
        case 200..<300: return
        case 304: throw DockerError.notModified
        default: break
        }
        let message = (try? JSONDecoder().decode(EngineMessage.self, from: response.body))?.message
            ?? String(decoding: response.body.prefix(500), as: UTF8.self)
        switch response.status {
        case 404: throw DockerError.notFound(message)
        case 409: throw DockerError.conflict(message)
        default: throw DockerError.engine(status: response.status, message: message)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, from response: HTTPResponse) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: response.body)
        } catch {
            throw DockerError.badResponse("cannot decode \(T.self): \(error)")
        }
    }

    static func encode<T: Encodable>(_ value: T) -> Data {
        // Encoding our own plain structs cannot fail.
        (try? JSONEncoder().encode(value)) ?? Data()
    }

    /// Percent-encodes a query value.
    static func query(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    /// The `filters` query parameter selecting objects by label (`key=value`).
    static func labelFilter(_ labels: [String]) -> String {
        query(String(decoding: encode(["label": labels]), as: UTF8.self))
    }
}

private struct EngineMessage: Decodable {
    let message: String
}

/// The engine's own version, as `GET /version` reports it.
public struct EngineVersion: Decodable, Sendable {
    /// The engine's release, e.g. `20.10.24+dfsg1`.
    public let version: String
    /// The newest API version the engine speaks, e.g. `1.41`.
    public let apiVersion: String

    enum CodingKeys: String, CodingKey {
        case version = "Version"
        case apiVersion = "ApiVersion"
    }
}

extension DockerClient {
    /// The engine's release and API version (`devenv-gw status`).
    public func engineVersion() throws -> EngineVersion {
        try decode(EngineVersion.self, from: call("GET", "/version", operation: "read version"))
    }
}
