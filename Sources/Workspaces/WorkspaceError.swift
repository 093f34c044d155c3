import DockerEngine

/// Why a workspace could not be brought up, in words a user or admin can act on.
public enum WorkspaceError: Error, CustomStringConvertible {
    case imageMissing(String)
    case exitedAtStart(container: String, exitCode: Int)
    case sshdNotReady(container: String, address: String)
    case engine(DockerError)
    /// The container meant to replace a workspace's did not come up; it was removed.
    case replacementFailed(image: String, reason: String, log: String)
    /// Another actor (a login, another admin command) changed the workspace meanwhile.
    case busy(user: String, detail: String)
    /// Another operation held the workspace longer than the caller would wait.
    case locked(user: String, holder: String)
    /// The swarm node that holds the workspace's home cannot run it now.
    case nodeUnavailable(workspace: String, node: String, state: String)
    /// A first login cannot tell whether the user's home is on a node that is away.
    case homeUnknown(user: String, node: String, state: String)

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
        case .replacementFailed(let image, let reason, let log):
            return "the new container from \(image) did not come up: \(reason)"
                + (log.isEmpty ? "" : " (its last log lines: \(log.split(separator: "\n").joined(separator: " | ")))")
        case .locked(let user, let holder):
            return "the workspace of \(user) is busy: it is \(holder); try again in a minute"
        case .nodeUnavailable(let workspace, let node, let state):
            return "the workspace \(workspace) lives on swarm node \(node), which is \(state); its home is there, "
                + "so it is back when the node is"
        case .homeUnknown(let user, let node, let state):
            return "cannot tell whether the home of \(user) is on swarm node \(node), which is \(state): "
                + "a first login waits until the node is back, so that no second home is made"
        case .busy(let user, let detail):
            return "the workspace of \(user) changed during the operation: \(detail); try again"
        }
    }
}
