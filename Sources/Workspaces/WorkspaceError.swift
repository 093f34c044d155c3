import DockerEngine

/// Why a workspace could not be brought up, in words a user or admin can act on.
public enum WorkspaceError: Error, CustomStringConvertible {
    case imageMissing(String)
    case exitedAtStart(container: String, exitCode: Int)
    case sshdNotReady(container: String, address: String)
    case engine(DockerError)
    /// Another actor (a login, another admin command) changed the workspace meanwhile.
    case busy(user: String, detail: String)

    public var description: String {
        switch self {
        case .imageMissing(let image):
            return "the workspace image \(image) is not present on the Docker engine"
        case .exitedAtStart(let container, let code):
            return "the workspace container \(container) exited at start with code \(code) (docker logs \(container))"
        case .sshdNotReady(let container, let address):
            return "the workspace \(container) started but its sshd at \(address):22 does not answer"
        case .engine(let error):
            return error.description
        case .busy(let user, let detail):
            return "the workspace of \(user) changed during the operation: \(detail); try again"
        }
    }
}
