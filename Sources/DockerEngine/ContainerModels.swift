import Foundation

/// The body of `POST /containers/create`: what a workspace container is made of.
public struct ContainerSpec: Encodable, Sendable {
    public var image: String
    public var hostname: String?
    public var labels: [String: String]
    public var env: [String]
    /// Overrides the image's command when set.
    public var cmd: [String]?
    /// Overrides the image's entrypoint when set.
    public var entrypoint: [String]?
    public var hostConfig: HostConfig
    public var networkingConfig: NetworkingConfig?

    public init(image: String, hostname: String? = nil, labels: [String: String] = [:], env: [String] = [],
                cmd: [String]? = nil, entrypoint: [String]? = nil, hostConfig: HostConfig = HostConfig(),
                networkingConfig: NetworkingConfig? = nil) {
        self.image = image
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.hostname = hostname
        self.labels = labels
        self.env = env
        self.hostConfig = hostConfig
        self.networkingConfig = networkingConfig
    }

    enum CodingKeys: String, CodingKey {
        case image = "Image", hostname = "Hostname", labels = "Labels", env = "Env", cmd = "Cmd", entrypoint = "Entrypoint"
        case hostConfig = "HostConfig", networkingConfig = "NetworkingConfig"
    }
}

/// Resource limits, privileges, mounts and network of a container.
public struct HostConfig: Codable, Sendable, Equatable {
    public var memory: Int64?
    public var memorySwap: Int64?
    public var pidsLimit: Int64?
    public var cpuShares: Int?
    public var capDrop: [String]?
    public var capAdd: [String]?
    public var securityOpt: [String]?
    public var mounts: [Mount]?
    public var networkMode: String?
    public var readonlyRootfs: Bool?
    public var init_: Bool?
    public var restartPolicy: RestartPolicy?

    public init(memory: Int64? = nil, memorySwap: Int64? = nil, pidsLimit: Int64? = nil, cpuShares: Int? = nil,
                capDrop: [String]? = nil, capAdd: [String]? = nil, securityOpt: [String]? = nil,
                mounts: [Mount]? = nil, networkMode: String? = nil, init_: Bool? = nil,
                restartPolicy: RestartPolicy? = nil) {
        self.memory = memory
        self.memorySwap = memorySwap
        self.pidsLimit = pidsLimit
        self.cpuShares = cpuShares
        self.capDrop = capDrop
        self.capAdd = capAdd
        self.securityOpt = securityOpt
        self.mounts = mounts
        self.networkMode = networkMode
        self.init_ = init_
        self.restartPolicy = restartPolicy
    }

    /// When the engine restarts the container: `no`, `always`, `unless-stopped`, `on-failure`.
    public struct RestartPolicy: Codable, Sendable, Equatable {
        public var name: String
        public init(_ name: String) { self.name = name }
        enum CodingKeys: String, CodingKey { case name = "Name" }
    }

    enum CodingKeys: String, CodingKey {
        case memory = "Memory", memorySwap = "MemorySwap", pidsLimit = "PidsLimit", cpuShares = "CpuShares"
        case capDrop = "CapDrop", capAdd = "CapAdd", securityOpt = "SecurityOpt", mounts = "Mounts"
        case networkMode = "NetworkMode", readonlyRootfs = "ReadonlyRootfs", init_ = "Init", restartPolicy = "RestartPolicy"
    }
}

/// A volume mounted into a container.
public struct Mount: Codable, Sendable, Equatable {
    public var type: String
    public var source: String
    public var target: String

    public init(volume: String, at target: String) {
        type = "volume"
        source = volume
        self.target = target
    }

    enum CodingKeys: String, CodingKey { case type = "Type", source = "Source", target = "Target" }
}

/// Which networks a new container joins.
public struct NetworkingConfig: Encodable, Sendable {
    public var endpointsConfig: [String: [String: String]]

    public init(network: String) { endpointsConfig = [network: [:]] }

    enum CodingKeys: String, CodingKey { case endpointsConfig = "EndpointsConfig" }
}

/// What `GET /containers/{id}/json` says about a container (the parts this product uses).
public struct ContainerDetails: Decodable, Sendable {
    public let id: String
    public let name: String
    /// The image ID the container was created from.
    public let imageID: String
    public let state: State
    public let config: Config
    public let hostConfig: HostConfig
    public let networkSettings: NetworkSettings
    /// When the container was created, as the engine reports it (RFC 3339, nanoseconds).
    public let created: String?

    /// `created` as a date, to the whole second; nil when absent or unreadable.
    public var createdDate: Date? {
        guard let created, created.count >= 19 else { return nil }
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: String(created.prefix(19)) + "Z")
    }

    public struct State: Decodable, Sendable {
        /// `created`, `running`, `exited`, …
        public let status: String
        public let running: Bool
        public let exitCode: Int
        public let startedAt: String?
        public let finishedAt: String?

        enum CodingKeys: String, CodingKey {
            case status = "Status", running = "Running", exitCode = "ExitCode"
            case startedAt = "StartedAt", finishedAt = "FinishedAt"
        }
    }

    public struct Config: Decodable, Sendable {
        /// The image name the container was created with.
        public let image: String
        public let hostname: String
        public let labels: [String: String]?

        enum CodingKeys: String, CodingKey { case image = "Image", hostname = "Hostname", labels = "Labels" }
    }

    public struct NetworkSettings: Decodable, Sendable {
        public let networks: [String: Endpoint]?

        public struct Endpoint: Decodable, Sendable {
            public let ipAddress: String
            enum CodingKeys: String, CodingKey { case ipAddress = "IPAddress" }
        }

        enum CodingKeys: String, CodingKey { case networks = "Networks" }
    }

    /// The container's address on `network`, empty until it is started.
    public func ipAddress(on network: String) -> String? {
        guard let address = networkSettings.networks?[network]?.ipAddress, !address.isEmpty else { return nil }
        return address
    }

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", imageID = "Image", state = "State", config = "Config"
        case hostConfig = "HostConfig", networkSettings = "NetworkSettings", created = "Created"
    }
}

/// One row of `GET /containers/json`.
public struct ContainerSummary: Decodable, Sendable {
    public let id: String
    public let names: [String]
    public let image: String
    public let state: String
    public let status: String
    public let labels: [String: String]?

    /// The name without Docker's leading slash.
    public var name: String { names.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? id }

    enum CodingKeys: String, CodingKey {
        case id = "Id", names = "Names", image = "Image", state = "State", status = "Status", labels = "Labels"
    }
}

/// A process of a running container (`GET /containers/{id}/top`).
public struct ContainerProcess: Sendable, Equatable {
    public let pid: Int
    /// The uid as the engine's host sees it (the container's own without user namespaces).
    public let uid: Int
    public let command: String

    public init(pid: Int, uid: Int, command: String) {
        self.pid = pid
        self.uid = uid
        self.command = command
    }
}

/// A named volume.
public struct VolumeDetails: Decodable, Sendable {
    public let name: String
    public let driver: String
    public let mountpoint: String
    public let labels: [String: String]?
    public let createdAt: String?

    enum CodingKeys: String, CodingKey {
        case name = "Name", driver = "Driver", mountpoint = "Mountpoint", labels = "Labels", createdAt = "CreatedAt"
    }
}

/// A network and its driver options.
public struct NetworkDetails: Decodable, Sendable {
    public let id: String
    public let name: String
    public let driver: String
    public let options: [String: String]?
    public let labels: [String: String]?
    /// The config-only network a swarm-scoped network takes each node's options from.
    public let configFrom: ConfigFrom?

    public struct ConfigFrom: Decodable, Sendable {
        public let network: String
        enum CodingKeys: String, CodingKey { case network = "Network" }
    }

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", driver = "Driver", options = "Options", labels = "Labels", configFrom = "ConfigFrom"
    }

    /// The host interface of a bridge network: the name its options give, else the one
    /// the engine makes up, `br-` and the first 12 digits of the network's id.
    public var bridgeInterface: String {
        if let name = options?["com.docker.network.bridge.name"], !name.isEmpty { return name }
        return "br-" + id.prefix(12)
    }
}

/// An image as the engine knows it.
public struct ImageDetails: Decodable, Sendable {
    public let id: String
    public let repoTags: [String]?
    public let created: String?

    enum CodingKeys: String, CodingKey { case id = "Id", repoTags = "RepoTags", created = "Created" }
}
