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
    /// libcurl's error text.
    public let message: String
    /// True when nothing answered at all (refused, no such socket, resolve failure).
    public let isConnectFailure: Bool
    /// True when the deadline passed.
    public let isTimeout: Bool
    /// An error thrown by the caller's body source or sink, which aborted the transfer.
    public let callbackError: Error?

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
                body: Body = .none, timeout: TimeInterval? = 30, connectTimeout: TimeInterval = 5,
                stallTimeout: TimeInterval = 120) {
        self.method = method
        self.url = url
        self.headers = headers
        self.unixSocketPath = unixSocketPath
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }
}

/// Blocking HTTP over libcurl. Each call runs on the caller's thread, so callers keep
/// it off Swift's cooperative pool.
public enum HTTPClient {
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Performs `request`. When `sink` is given, a successful body streams into it and the
    /// returned response's body is empty; an error body (status >= 300) is always collected.
    public static func perform(_ request: HTTPRequest, sink: HTTPBodySink? = nil) throws -> HTTPResponse {
        _ = globalInit
        guard let handle = curl_easy_init() else {
            throw HTTPTransportError(target: request.url, message: "curl_easy_init failed",
                                     isConnectFailure: false, isTimeout: false, callbackError: nil)
        }
        defer { curl_easy_cleanup(handle) }
        let context = TransferContext(source: nil, sink: sink)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        devenv_curl_setopt_string(handle, CURLOPT_URL, request.url)
        devenv_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        devenv_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000))
        if let timeout = request.timeout {
            devenv_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        }
        devenv_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        devenv_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.stallTimeout)))
        if let socket = request.unixSocketPath {
            devenv_curl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, socket)
        }
        var headers = request.headers
        switch request.body {
        case .none:
            if request.method != "GET" { devenv_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method) }
        case .data(let data):
            context.upload = data
            devenv_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            devenv_curl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(data.count))
            devenv_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            headers.append("Expect:")
        case .stream(let source):
            context.source = source
            devenv_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            devenv_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            headers.append("Transfer-Encoding: chunked")
            headers.append("Expect:")
        }
        for header in headers { headerList = curl_slist_append(headerList, header) }
        if let headerList { devenv_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList)) }

        let opaque = Unmanaged.passUnretained(context).toOpaque()
        devenv_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, { buffer, size, count, context in
            guard let buffer, let context else { return 0 }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            transfer.receiveHeader(UnsafeRawBufferPointer(start: buffer, count: size * count))
            return size * count
        })
        devenv_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, opaque)
        devenv_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, { buffer, size, count, context in
            guard let buffer, let context else { return 0 }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            return transfer.receiveBody(UnsafeRawBufferPointer(start: buffer, count: size * count)) ? size * count : 0
        })
        devenv_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, opaque)
        devenv_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, { buffer, size, count, context in
            guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
            let transfer = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue()
            return transfer.supplyBody(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
        })
        devenv_curl_setopt_pointer(handle, CURLOPT_READDATA, opaque)

        let code = curl_easy_perform(handle)
        if let callbackError = context.callbackError {
            throw HTTPTransportError(target: request.url, message: "aborted", isConnectFailure: false,
                                     isTimeout: false, callbackError: callbackError)
        }
        guard code == CURLE_OK else {
            let target = request.unixSocketPath.map { "\(request.url) via \($0)" } ?? request.url
            let connect = [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST].contains(code)
            throw HTTPTransportError(target: target, message: String(cString: curl_easy_strerror(code)),
                                     isConnectFailure: connect, isTimeout: code == CURLE_OPERATION_TIMEDOUT,
                                     callbackError: nil)
        }
        var status = 0
        devenv_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: context.headers, body: context.collected)
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
                return try source(buffer)
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
        }
        return count
    }
}
