import DockerEngine
import Foundation
import TestSupport

/// A standalone Docker engine that requires TLS client certificates (`dockerd --tlsverify`
/// on port 2376), in a container of the test swarm's node image on a network of its own,
/// with certificates made by openssl for this run. It never touches the shared test swarm
/// (its nodes, network or volumes): everything here has this run's own name.
final class TLSTestEngine {
    /// `tcp://ADDRESS:2376`.
    let endpoint: String
    let address: String
    /// Holds `good/` (a client directory the engine accepts) and the other cases.
    let certificates: URL
    let name: String

    static let nodeImage = "devenv-swarm-node"

    /// Makes the certificates, starts the engine and waits until it answers over TLS.
    init() throws {
        name = "devenv-tls-engine-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        certificates = try makeTemporaryDirectory("devenv-tls")
        do {
            try Self.ensureNodeImage()
            address = try Self.createNetwork(name)
        } catch {
            Self.remove(name: name, certificates: certificates)
            throw error
        }
        endpoint = "tcp://\(address):2376"
        do {
            try makeCertificates()
            try startEngine()
            try waitUntilAnswering(timeout: 20)
        } catch {
            remove()
            throw error
        }
    }

    /// The client directory named `name` under `certificates`.
    func directory(_ name: String) -> String { certificates.appendingPathComponent(name).path }

    /// Removes the container with its data volume, the network and the certificates.
    func remove() {
        Self.remove(name: name, certificates: certificates)
    }

    private static func remove(name: String, certificates: URL) {
        _ = try? docker(["rm", "-f", "-v", name])
        _ = try? docker(["network", "rm", name])
        try? FileManager.default.removeItem(at: certificates)
    }

    // MARK: - Set-up steps

    /// Builds the node image as scripts/swarm-cluster.sh does, only when it is missing: a
    /// present one is the shared swarm's, and is left as it is.
    private static func ensureNodeImage() throws {
        if try docker(["image", "inspect", nodeImage]).status == 0 { return }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let built = try docker(["build", "-q", "--label", "devenv-swarm.cluster=test", "-t", nodeImage,
                                repository.appendingPathComponent("scripts/swarm-node").path])
        guard built.status == 0 else {
            throw TLSTestEngineError("cannot build \(nodeImage) (needs debian:bookworm-slim: scripts/setup.sh): \(built.stderr)")
        }
    }

    /// A bridge network with a subnet of its own, so the engine's address is known before
    /// its certificate is made; returns that address.
    private static func createNetwork(_ name: String) throws -> String {
        var failure = ""
        for _ in 0..<8 {
            let subnet = "10.218.\(Int.random(in: 1...254))"
            let created = try docker(["network", "create", "--driver", "bridge", "--subnet", "\(subnet).0/24", name])
            if created.status == 0 { return "\(subnet).2" }
            failure = created.stderr  // most likely the subnet overlaps another network
        }
        throw TLSTestEngineError("cannot create network \(name): \(failure)")
    }

    private func makeCertificates() throws {
        let dir = certificates.path
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/ca-key.pem", "-out", "\(dir)/ca.pem", "-days", "2", "-subj", "/CN=devenv test CA"])
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/other-ca-key.pem", "-out", "\(dir)/other-ca.pem", "-days", "2",
                     "-subj", "/CN=unrelated CA"])
        try issue("server", by: "ca", extensions: "subjectAltName=IP:\(address)\nextendedKeyUsage=serverAuth\n")
        try issue("client", by: "ca", extensions: "extendedKeyUsage=clientAuth\n")
        try issue("rogue-client", by: "other-ca", extensions: "extendedKeyUsage=clientAuth\n")
        // The engine reads its files as root from a read-only mount.
        let server = certificates.appendingPathComponent("server")
        try FileManager.default.createDirectory(at: server, withIntermediateDirectories: true)
        for (from, to) in [("ca.pem", "ca.pem"), ("server.pem", "cert.pem"), ("server-key.pem", "key.pem")] {
            try FileManager.default.copyItem(atPath: "\(dir)/\(from)", toPath: server.appendingPathComponent(to).path)
        }
        // Client directories as an admin would lay them out (DOCKER_CERT_PATH style).
        try clientDirectory("good", ca: "ca", certificate: "client", key: "client")
        try clientDirectory("unknown-server-ca", ca: "other-ca", certificate: "client", key: "client")
        try clientDirectory("rogue-client", ca: "ca", certificate: "rogue-client", key: "rogue-client")
        try clientDirectory("mismatched-key", ca: "ca", certificate: "client", key: "rogue-client")
    }

    private func issue(_ name: String, by ca: String, extensions: String) throws {
        let dir = certificates.path
        try extensions.write(toFile: "\(dir)/\(name).ext", atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/\(name)-key.pem", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(name)"])
        try openssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(ca).pem", "-CAkey", "\(dir)/\(ca)-key.pem",
                     "-CAcreateserial", "-days", "2", "-out", "\(dir)/\(name).pem", "-extfile", "\(dir)/\(name).ext"])
    }

    private func clientDirectory(_ name: String, ca: String, certificate: String, key: String) throws {
        let target = certificates.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let dir = certificates.path
        for (from, to) in [("\(ca).pem", "ca.pem"), ("\(certificate).pem", "cert.pem"), ("\(key)-key.pem", "key.pem")] {
            try FileManager.default.copyItem(atPath: "\(dir)/\(from)", toPath: target.appendingPathComponent(to).path)
        }
    }

    /// Runs the node image's engine with TLS only: the entrypoint passes these arguments
    /// to dockerd. The capabilities are those scripts/swarm-cluster.sh gives a node, less
    /// the cgroup tree: this engine runs no containers.
    private func startEngine() throws {
        let started = try docker([
            "run", "-d", "--name", name, "--network", name, "--ip", address,
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
            "--security-opt", "apparmor=unconfined", "--tmpfs", "/run",
            "--volume", "\(certificates.appendingPathComponent("server").path):/tls:ro",
            Self.nodeImage,
            "--tlsverify", "--tlscacert", "/tls/ca.pem", "--tlscert", "/tls/cert.pem", "--tlskey", "/tls/key.pem",
            "-H", "tcp://0.0.0.0:2376",
        ])
        guard started.status == 0 else { throw TLSTestEngineError("cannot start \(name): \(started.stderr)") }
    }

    private func waitUntilAnswering(timeout: TimeInterval) throws {
        let client = DockerClient(host: endpoint, tls: try DockerTLS(directory: directory("good")), requestTimeout: 2)
        let deadline = Date().addingTimeInterval(timeout)
        var lastError: Error?
        while Date() < deadline {
            do {
                _ = try client.apiVersion()
                return
            } catch {
                lastError = error
                usleep(100_000)
            }
        }
        let logs = (try? docker(["logs", "--tail", "20", name]))?.stderr ?? ""
        throw TLSTestEngineError("the TLS engine \(name) did not answer: \(lastError.map { "\($0)" } ?? "?")\n\(logs)")
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runProgram("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw TLSTestEngineError("openssl \(arguments.first ?? ""): \(result.stderr)") }
    }

    @discardableResult
    private static func docker(_ arguments: [String]) throws -> ProgramResult {
        try runProgram("/usr/bin/env", ["docker"] + arguments)
    }

    private func docker(_ arguments: [String]) throws -> ProgramResult { try Self.docker(arguments) }
}

struct TLSTestEngineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
