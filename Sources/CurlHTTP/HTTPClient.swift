import CCurl
import CShims
import Foundation

/// A finished HTTP exchange. `body` holds the whole body unless a sink consumed it.
public struct HTTPResponse: Sendable {
    public let status: Int
    /// Header names lowercased; the last value wins.
    public let headers: [String: String]
    public let body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A transfer that did not produce an HTTP response.
public struct HTTPTransportError: Error, CustomStringConvertible {
    /// What was tried: the URL, and the unix socket when there is one.
    public let target: String
    /// libcurl's error text, as detailed as it gives it.
    public let message: String
    /// True when nothing answered at all (refused, no such socket, resolve failure).
    public let isConnectFailure: Bool
    /// True when the deadline passed.
    public let isTimeout: Bool
    /// Set when TLS failed, and how.
    public let tlsProblem: TLSProblem?
    /// An error thrown by the caller's body source or sink, which aborted the transfer.
    public let callbackError: Error?

    init(target: String, message: String, isConnectFailure: Bool = false, isTimeout: Bool = false,
         tlsProblem: TLSProblem? = nil, callbackError: Error? = nil) {
        self.target = target
        self.message = message
        self.isConnectFailure = isConnectFailure
        self.isTimeout = isTimeout
        self.tlsProblem = tlsProblem
        self.callbackError = callbackError
    }

    public var description: String {
        if let callbackError { return "\(callbackError)" }
        return "\(target): \(message)"
    }
}

/// Supplies a request body in pieces: fill the buffer, return the count, 0 at the end.
public typealias HTTPBodySource = (UnsafeMutableRawBufferPointer) throws -> Int
/// Receives a successful (status < 300) response body in pieces as it arrives.
public typealias HTTPBodySink = (UnsafeRawBufferPointer) throws -> Void

/// One HTTP request for `HTTPClient.perform`.
public struct HTTPRequest {
    public var method: String
    public var url: String
    public var headers: [String]
    /// Path of a unix socket to connect to instead of the URL's host.
    public var unixSocketPath: String?
    /// The CA and client certificate for an `https` URL with a private CA; nil uses the
    /// system's CA store and presents no client certificate.
    public var tls: TLSFiles?
    public var body: Body
    /// Limit for the whole transfer; nil for streams, which use `stallTimeout` instead.
    public var timeout: TimeInterval?
    public var connectTimeout: TimeInterval
    /// A stream that moves no byte for this long is aborted.
    public var stallTimeout: TimeInterval

    public enum Body {
        case none
        case data(Data)
        case stream(HTTPBodySource)
    }

    public init(method: String = "GET", url: String, headers: [String] = [], unixSocketPath: String? = nil,
                tls: TLSFiles? = nil, body: Body = .none, timeout: TimeInterval? = 30, connectTimeout: TimeInterval = 5,
                stallTimeout: TimeInterval = 120) {
        self.method = method
        self.url = url
        self.headers = headers
        self.unixSocketPath = unixSocketPath
        self.tls = tls
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }
}

/// Blocking HTTP over libcurl. Each call runs on the caller's thread, so callers keep
/// it off Swift's cooperative pool.
public enum HTTPClient {
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    /// Performs `request`. When `sink` is given, a successful body streams into it and the
    /// returned response's body is empty; an error body (status >= 300) is always collected.
    public static func perform(_ request: HTTPRequest, sink: HTTPBodySink? = nil) throws -> HTTPResponse {
        let target = request.unixSocketPath.map { "\(request.url) via \($0)" } ?? request.url
        guard globalInit == CURLE_OK else {
            throw HTTPTransportError(target: target, message: "curl_global_init failed: "
                                     + String(cString: curl_easy_strerror(globalInit)))
        }
        let handle = try CurlEasyHandle(target: target)
        let context = TransferContext(source: nil, sink: sink)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        try handle.set(CURLOPT_URL, request.url)
        try handle.set(CURLOPT_NOSIGNAL, 1)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000))
        if let timeout = request.timeout {
            try handle.set(CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        }
        try handle.set(CURLOPT_LOW_SPEED_LIMIT, 1)
        try handle.set(CURLOPT_LOW_SPEED_TIME, max(1, Int(request.stallTimeout)))
        if let socket = request.unixSocketPath {
            try handle.set(CURLOPT_UNIX_SOCKET_PATH, socket)
        }
        try configureTLS(request, on: handle)
        var headers = request.headers
        switch request.body {
        case .none:
            if request.method != "GET" { try handle.set(CURLOPT_CUSTOMREQUEST, request.method) }
        case .data(let data):
            context.upload = data
            try handle.set(CURLOPT_UPLOAD, 1)
            try handle.set(CURLOPT_INFILESIZE_LARGE, offset: curl_off_t(data.count))
            try handle.set(CURLOPT_CUSTOMREQUEST, request.method)
            headers.append("Expect:")
        case .stream(let source):
            context.source = source
            try handle.set(CURLOPT_UPLOAD, 1)
            try handle.set(CURLOPT_CUSTOMREQUEST, request.method)
            headers.append("Transfer-Encoding: chunked")
            headers.append("Expect:")
        }
        for header in headers {
            guard let appended = curl_slist_append(headerList, header) else {
                throw HTTPTransportError(target: target, message: "curl_slist_append failed (out of memory)")
            }
            headerList = appended
        }
        if let headerList { try handle.set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(headerList)) }

        let opaque = Unmanaged.passUnretained(context).toOpaque()
        try handle.set(CURLOPT_HEADERFUNCTION, callback: { buffer, size, count, context in
            guard let buffer, let context else { return 0 }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            transfer.receiveHeader(UnsafeRawBufferPointer(start: buffer, count: size * count))
            return size * count
        })
        try handle.set(CURLOPT_HEADERDATA, pointer: opaque)
        try handle.set(CURLOPT_WRITEFUNCTION, callback: { buffer, size, count, context in
            guard let buffer, let context else { return 0 }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            return transfer.receiveBody(UnsafeRawBufferPointer(start: buffer, count: size * count)) ? size * count : 0
        })
        try handle.set(CURLOPT_WRITEDATA, pointer: opaque)
        try handle.set(CURLOPT_READFUNCTION, callback: { buffer, size, count, context in
            guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            return transfer.supplyBody(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
        })
        try handle.set(CURLOPT_READDATA, pointer: opaque)
        if request.tls != nil {
            // libcurl's error buffer keeps only its first message, which can be an aside
            // (getpeername failing once the engine has closed); the engine's TLS alert is
            // in its log, kept for the error (a few lines per request).
            try handle.set(CURLOPT_VERBOSE, 1)
            try handle.set(debugCallback: { _, type, text, size, context in
                guard type == CURLINFO_TEXT, let text, let context else { return 0 }
                let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
                transfer.noteLog(UnsafeRawBufferPointer(start: text, count: size))
                return 0
            })
            try handle.set(CURLOPT_DEBUGDATA, pointer: opaque)
        }

        let code = handle.perform()
        if let callbackError = context.callbackError {
            throw HTTPTransportError(target: target, message: "aborted", callbackError: callbackError)
        }
        guard code == CURLE_OK else {
            var detail = handle.failureDetail(code)
            var tlsProblem: TLSProblem?
            if request.tls != nil {
                if let alert = context.tlsRefusal, !TLSProblem.isRefusal(detail) {
                    detail = alert
                } else if context.tlsRefusal == nil, context.serverAskedForCertificate, !context.exchangedData,
                          [CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING].contains(code) {
                    // With TLS 1.3 the server checks our certificate after the handshake and
                    // may reset the connection before its alert can be read.
                    detail = "the engine asked for a client certificate and closed the connection right after "
                        + "the handshake, without a TLS alert (\(detail))"
                    tlsProblem = .clientCertificateRefused
                }
                tlsProblem = tlsProblem ?? TLSProblem(code: code, detail: detail)
            }
            throw HTTPTransportError(target: target, message: detail,
                                     isConnectFailure: [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST].contains(code),
                                     isTimeout: code == CURLE_OPERATION_TIMEDOUT, tlsProblem: tlsProblem)
        }
        return HTTPResponse(status: try handle.long(CURLINFO_RESPONSE_CODE), headers: context.headers,
                            body: context.collected)
    }

    /// Verifies every server (libcurl's default, set anyway so no default can change it)
    /// and, with `request.tls`, trusts only its CA and presents its client certificate.
    private static func configureTLS(_ request: HTTPRequest, on handle: CurlEasyHandle) throws {
        try handle.set(CURLOPT_SSL_VERIFYPEER, 1)
        try handle.set(CURLOPT_SSL_VERIFYHOST, 2)
        guard let tls = request.tls else { return }
        guard request.url.lowercased().hasPrefix("https://") else {
            throw HTTPTransportError(target: handle.target, message: "TLS files were given for a URL that is not https")
        }
        try handle.set(CURLOPT_CAINFO, tls.caCertificate)
        // libcurl would also trust the system's CA directory (/etc/ssl/certs); only the
        // private CA may vouch for the server.
        try handle.set(CURLOPT_CAPATH, nil)
        if let client = tls.client {
            try handle.set(CURLOPT_SSLCERTTYPE, "PEM")
            try handle.set(CURLOPT_SSLCERT, client.certificate)
            try handle.set(CURLOPT_SSLKEYTYPE, "PEM")
            try handle.set(CURLOPT_SSLKEY, client.key)
        }
    }

    /// Fetches `url` with GET and returns the whole response.
    public static func get(_ url: String, timeout: TimeInterval = 15) throws -> HTTPResponse {
        try perform(HTTPRequest(url: url, timeout: timeout))
    }
}

/// State shared with libcurl's callbacks for one transfer; lives until perform returns.
private final class TransferContext {
    var source: HTTPBodySource?
    let sink: HTTPBodySink?
    var upload = Data()
    var uploadOffset = 0
    var status = 0
    var headers: [String: String] = [:]
    var collected = Data()
    var callbackError: Error?
    /// From libcurl's log (TLS requests only): the alert a server sent refusing our client
    /// certificate, and whether it asked for one at all.
    private(set) var tlsRefusal: String?
    private(set) var serverAskedForCertificate = false
    /// Whether any of the request body went out or any response came back.
    var exchangedData: Bool { status != 0 || uploadedSome }
    private var uploadedSome = false

    init(source: HTTPBodySource?, sink: HTTPBodySink?) {
        self.source = source
        self.sink = sink
    }

    func receiveHeader(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            // A new status line (after 100-continue or a redirect) starts a new header block.
            let parts = line.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    func noteLog(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes.prefix(400), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if TLSProblem.isRefusal(line) { tlsRefusal = line }
        // OpenSSL's trace of the server's CertificateRequest message.
        if line.contains("TLS handshake, Request CERT") { serverAskedForCertificate = true }
    }

    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let sink, status < 300 else {
            collected.append(contentsOf: bytes)
            return true
        }
        do {
            try sink(bytes)
            return true
        } catch {
            callbackError = error
            return false
        }
    }

    func supplyBody(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        if let source {
            do {
                let count = try source(buffer)
                if count > 0 { uploadedSome = true }
                return count
            } catch {
                callbackError = error
                return Int(CURL_READFUNC_ABORT)
            }
        }
        let count = min(buffer.count, upload.count - uploadOffset)
        if count > 0 {
            upload.withUnsafeBytes { bytes in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[uploadOffset..<uploadOffset + count]))
            }
            uploadOffset += count
            uploadedSome = true
        }
        return count
    }
}
