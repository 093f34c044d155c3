@testable import Gateway
import SSHKeys
import TestSupport
import XCTest

/// The gateway's client session to a workspace's sshd, on its failure paths.
final class UpstreamConnectionTests: XCTestCase {
    /// A failed connect frees its libssh session exactly once: the initialiser used to free
    /// it and then deinit, which Swift runs when a class initialiser throws, freed it again
    /// (glibc aborted with "double free or corruption" in the gateway).
    func testAFailedConnectFreesItsSessionOnce() throws {
        let key = try PrivateKey.generate(.ed25519)
        let port = try GatewayProcess.freePort()  // nothing listens there
        for _ in 0..<200 {
            XCTAssertThrowsError(try UpstreamConnection(address: "127.0.0.1", port: port, user: "nobody",
                                                        clientKey: key, pinnedHostKey: key.publicKey, timeout: 0))
        }
    }
}
