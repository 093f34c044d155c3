/// An Engine API failure, carrying the engine's own message where it sent one.
public enum DockerError: Error, Equatable, CustomStringConvertible {
    /// Nothing answered on the engine's socket (or TCP address).
    case unreachable(endpoint: String, reason: String)
    /// TLS with a `tcp://` engine failed: its certificate is not trusted, it refused ours,
    /// ours cannot be loaded, or the engine requires TLS and none is configured.
    case tls(endpoint: String, reason: String)
    /// The engine did not answer in time.
    case timedOut(endpoint: String, operation: String)
    /// 404: no such container, volume, network or image.
    case notFound(String)
    /// 409: the name is in use, or the object is in a conflicting state.
    case conflict(String)
    /// 304: the container was already started or stopped.
    case notModified
    /// Any other error status.
    case engine(status: Int, message: String)
    /// The engine answered with something this client cannot read.
    case badResponse(String)
    /// A streamed body's source or sink failed.
    case stream(String)

    public var description: String {
        switch self {
        case .unreachable(let endpoint, let reason):
            return "the Docker engine is unreachable at \(endpoint) (\(reason))"
        case .tls(let endpoint, let reason):
            return "TLS with the Docker engine at \(endpoint) failed: \(reason)"
        case .timedOut(let endpoint, let operation):
            return "the Docker engine at \(endpoint) did not answer \(operation) in time"
        case .notFound(let message): return message
        case .conflict(let message): return message
        case .notModified: return "not modified"
        case .engine(let status, let message): return "Docker engine error \(status): \(message)"
        case .badResponse(let detail): return "unexpected answer from the Docker engine: \(detail)"
        case .stream(let detail): return detail
        }
    }
}
