import DockerEngine
import Foundation

/// The TLS directory (`ca.pem`, `cert.pem`, `key.pem`) for every `tcp://` Docker engine
/// the gateway talks to: the engine backend's DOCKER_HOST, `swarm-manager` and each of
/// `swarm-node-engines`. One directory for all, as one CA signs the engines' certificates
/// and one client certificate is the gateway's. Unix sockets never use it.
///
/// Docker's own convention comes first, as for DOCKER_HOST: with DOCKER_TLS_VERIFY or
/// DOCKER_TLS set, the directory DOCKER_CERT_PATH names (default `~/.docker`), and the
/// engine is always verified (DOCKER_TLS alone does not turn verification off here). Else
/// the config file's `docker-tls-dir`. Else none: `tcp://` is plain HTTP, and `serve` warns.
enum EngineTLSConfig {
    /// The directory in use and where it was named, or nil for none.
    static func directory(environment: [String: String] = ProcessInfo.processInfo.environment,
                          file: ConfigFile = CurrentConfig.file) -> (path: String, source: String)? {
        let set = { (name: String) in !(environment[name] ?? "").isEmpty }
        if set("DOCKER_TLS_VERIFY") || set("DOCKER_TLS") {
            if set("DOCKER_CERT_PATH") { return (environment["DOCKER_CERT_PATH"]!, "DOCKER_CERT_PATH") }
            let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            return ((home as NSString).appendingPathComponent(".docker"), "DOCKER_TLS_VERIFY (default DOCKER_CERT_PATH)")
        }
        return file.string(.dockerTLSDir).map { ($0, ConfigKey.dockerTLSDir.rawValue) }
    }

    /// The checked directory, or nil for none. A bad one names where it came from, the
    /// file and what is wrong, e.g. `docker-tls-dir: /etc/devenv-gw/docker-tls/key.pem: no such file`.
    static func load(environment: [String: String] = ProcessInfo.processInfo.environment,
                     file: ConfigFile = CurrentConfig.file) throws -> DockerTLS? {
        guard let (path, source) = directory(environment: environment, file: file) else { return nil }
        do {
            return try DockerTLS(directory: path)
        } catch let error as DockerTLSError {
            if source == ConfigKey.dockerTLSDir.rawValue, let configPath = file.path {
                throw ConfigError(path: configPath, key: source, reason: error.description)
            }
            throw CLIError("\(source): \(error)")
        }
    }
}
