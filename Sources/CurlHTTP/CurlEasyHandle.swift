import CCurl
import CShims
import Foundation

/// One libcurl easy handle for one transfer, with every option call checked: an option
/// libcurl refuses (say, TLS options on a libcurl built without TLS) fails the request
/// with the option's name instead of being silently ignored.
final class CurlEasyHandle {
    private let raw: UnsafeMutableRawPointer
    /// What the transfer is for, named in errors: the URL, and the unix socket if any.
    let target: String
    /// libcurl writes a detailed message for a failed transfer here (CURLOPT_ERRORBUFFER);
    /// ours, so it lives exactly as long as the handle.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init(target: String) throws {
        guard let raw = curl_easy_init() else {
            throw HTTPTransportError(target: target, message: "curl_easy_init failed")
        }
        self.raw = raw
        self.target = target
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// Runs the transfer on this thread; the handle lives at least until it returns.
    func perform() -> CURLcode {
        curl_easy_perform(raw)
    }

    /// libcurl's detailed message for the last failure, or its generic text for `code`.
    func failureDetail(_ code: CURLcode) -> String {
        let detail = String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines)
        return detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
    }

    func set(_ option: CURLoption, _ value: Int) throws {
        try check(devenv_curl_setopt_long(raw, option, value), option)
    }

    /// Sets a string option (libcurl copies it); nil clears it.
    func set(_ option: CURLoption, _ value: String?) throws {
        try check(devenv_curl_setopt_string(raw, option, value), option)
    }

    func set(_ option: CURLoption, offset value: curl_off_t) throws {
        try check(devenv_curl_setopt_offset(raw, option, value), option)
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws {
        try check(devenv_curl_setopt_pointer(raw, option, value), option)
    }

    func set(_ option: CURLoption, callback: devenv_curl_data_callback) throws {
        try check(devenv_curl_setopt_data_callback(raw, option, callback), option)
    }

    func set(debugCallback: devenv_curl_debug_callback) throws {
        try check(devenv_curl_setopt_debug_callback(raw, debugCallback), CURLOPT_DEBUGFUNCTION)
    }

    func long(_ info: CURLINFO) throws -> Int {
        var value = 0
        let code = devenv_curl_getinfo_long(raw, info, &value)
        guard code == CURLE_OK else {
            throw HTTPTransportError(target: target, message: "libcurl cannot report info \(info.rawValue): "
                                     + String(cString: curl_easy_strerror(code)))
        }
        return value
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws {
        guard code == CURLE_OK else {
            throw HTTPTransportError(target: target, message: "libcurl refused option CURLOPT_"
                                     + String(cString: devenv_curl_option_name(option)) + ": "
                                     + String(cString: curl_easy_strerror(code)))
        }
    }
}
