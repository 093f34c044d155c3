import Foundation

/// The body of `POST /services/create`: what a Swarm service is made of (the parts this
/// product sets). Updates go through `DockerClient.updateService`, which edits the stored
/// spec as the engine returns it, so fields the engine fills in are kept.
public struct ServiceSpec: Encodable, Sendable {
    public var name: String
    public var labels: [String: String]
    public var taskTemplate: TaskTemplate
    public var replicas: Int

    public init(name: String, labels: [String: String], taskTemplate: TaskTemplate, replicas: Int) {
        self.name = name
        self.labels = labels
        self.taskTemplate = taskTemplate
        self.replicas = replicas
    }

    public struct TaskTemplate: Encodable, Sendable {
        public var containerSpec: ServiceContainerSpec
        public var memoryBytes: Int64?
        public var pids: Int64?
        /// Placement constraints, e.g. `node.id==…`.
        public var constraints: [String]
        public var networks: [String]

        public init(containerSpec: ServiceContainerSpec, memoryBytes: Int64?, pids: Int64?,
                    constraints: [String], networks: [String]) {
            self.containerSpec = containerSpec
            self.memoryBytes = memoryBytes
            self.pids = pids
            self.constraints = constraints
            self.networks = networks
        }

        public func encode(to encoder: Encoder) throws {
            struct Limits: Encodable { let MemoryBytes: Int64?; let Pids: Int64? }
            struct Resources: Encodable { let Limits: Limits }
            struct Placement: Encodable { let Constraints: [String] }
            struct Attachment: Encodable { let Target: String }
            struct Restart: Encodable { let Condition = "any"; let Delay: Int64 = 1_000_000_000 }
            enum Keys: String, CodingKey { case ContainerSpec, Resources, Placement, Networks, RestartPolicy }
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(containerSpec, forKey: .ContainerSpec)
            try container.encode(Resources(Limits: Limits(MemoryBytes: memoryBytes, Pids: pids)), forKey: .Resources)
            try container.encode(Placement(Constraints: constraints), forKey: .Placement)
            try container.encode(networks.map(Attachment.init), forKey: .Networks)
            try container.encode(Restart(), forKey: .RestartPolicy)
        }
    }

    public func encode(to encoder: Encoder) throws {
        struct Replicated: Encodable { let Replicas: Int }
        struct Mode: Encodable { let Replicated: Replicated }
        enum Keys: String, CodingKey { case Name, Labels, TaskTemplate, Mode }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(name, forKey: .Name)
        try container.encode(labels, forKey: .Labels)
        try container.encode(taskTemplate, forKey: .TaskTemplate)
        try container.encode(Mode(Replicated: Replicated(Replicas: replicas)), forKey: .Mode)
    }
}

/// The container part of a service's task template.
public struct ServiceContainerSpec: Encodable, Sendable {
    public var image: String
    public var hostname: String?
    public var labels: [String: String]
    /// Replaces the image's entrypoint (Swarm's `Command` is the entrypoint).
    public var command: [String]?
    public var capabilityAdd: [String]?
    public var capabilityDrop: [String]?
    public var mounts: [ServiceMount]
    public var secrets: [SecretReference]

    public init(image: String, hostname: String?, labels: [String: String], command: [String]?,
                capabilityAdd: [String]?, capabilityDrop: [String]?, mounts: [ServiceMount], secrets: [SecretReference]) {
        self.image = image
        self.hostname = hostname
        self.labels = labels
        self.command = command
        self.capabilityAdd = capabilityAdd
        self.capabilityDrop = capabilityDrop
        self.mounts = mounts
        self.secrets = secrets
    }

    enum CodingKeys: String, CodingKey {
        case image = "Image", hostname = "Hostname", labels = "Labels", command = "Command"
        case capabilityAdd = "CapabilityAdd", capabilityDrop = "CapabilityDrop", mounts = "Mounts", secrets = "Secrets"
    }
}

/// A named volume mounted into a service's containers; the node creates it, with
/// `labels`, when it does not exist there yet.
public struct ServiceMount: Encodable, Sendable {
    public var source: String
    public var target: String
    public var labels: [String: String]

    public init(volume: String, at target: String, labels: [String: String]) {
        source = volume
        self.target = target
        self.labels = labels
    }

    public func encode(to encoder: Encoder) throws {
        struct VolumeOptions: Encodable { let Labels: [String: String] }
        enum Keys: String, CodingKey { case `Type`, Source, Target, VolumeOptions }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode("volume", forKey: .Type)
        try container.encode(source, forKey: .Source)
        try container.encode(target, forKey: .Target)
        try container.encode(VolumeOptions(Labels: labels), forKey: .VolumeOptions)
    }
}

/// A Swarm secret given to a service's containers as the file `/run/secrets/<file>`.
public struct SecretReference: Encodable, Sendable {
    public var secretID: String
    public var secretName: String
    public var file: String
    public var mode: Int

    public init(secretID: String, secretName: String, file: String, mode: Int) {
        self.secretID = secretID
        self.secretName = secretName
        self.file = file
        self.mode = mode
    }

    public func encode(to encoder: Encoder) throws {
        struct File: Encodable { let Name: String; let UID = "0"; let GID = "0"; let Mode: Int }
        enum Keys: String, CodingKey { case SecretID, SecretName, File }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(secretID, forKey: .SecretID)
        try container.encode(secretName, forKey: .SecretName)
        try container.encode(File(Name: file, Mode: mode), forKey: .File)
    }
}

/// What `GET /services/{id}` says about a service (the parts this product reads).
public struct ServiceDetails: Decodable, Sendable {
    public let id: String
    public let version: Int
    public let name: String
    public let labels: [String: String]
    public let image: String
    /// The replica count; nil for a global service.
    public let replicas: Int?
    public let constraints: [String]

    public init(from decoder: Decoder) throws {
        struct Raw: Decodable {
            struct Version: Decodable { let Index: Int }
            struct Spec: Decodable {
                struct Template: Decodable {
                    struct Container: Decodable { let Image: String }
                    struct Placement: Decodable { let Constraints: [String]? }
                    let ContainerSpec: Container
                    let Placement: Placement?
                }
                struct Mode: Decodable { struct Replicated: Decodable { let Replicas: Int? }; let Replicated: Replicated? }
                let Name: String
                let Labels: [String: String]?
                let TaskTemplate: Template
                let Mode: Mode
            }
            let ID: String
            let Version: Version
            let Spec: Spec
        }
        let raw = try Raw(from: decoder)
        id = raw.ID
        version = raw.Version.Index
        name = raw.Spec.Name
        labels = raw.Spec.Labels ?? [:]
        image = raw.Spec.TaskTemplate.ContainerSpec.Image
        replicas = raw.Spec.Mode.Replicated.map { $0.Replicas ?? 0 }
        constraints = raw.Spec.TaskTemplate.Placement?.Constraints ?? []
    }
}

/// One task of a service (`GET /tasks`): a container the swarm runs, or tried to.
public struct TaskDetails: Decodable, Sendable {
    public let id: String
    public let serviceID: String
    public let nodeID: String?
    /// `running`, `shutdown`, …: what the swarm wants.
    public let desiredState: String
    /// `new` … `running`, `complete`, `failed`, `rejected`, …: what it is.
    public let state: String
    /// Why it failed, when it did.
    public let error: String?
    public let containerID: String?
    /// The task's addresses by network name, without the prefix length.
    public let addresses: [String: String]
    public let updatedAt: String?
    /// The image the task runs, as the service spec named it.
    public let image: String?

    public init(from decoder: Decoder) throws {
        struct Raw: Decodable {
            struct Spec: Decodable { struct Container: Decodable { let Image: String? }; let ContainerSpec: Container? }
            struct Status: Decodable {
                struct Container: Decodable { let ContainerID: String? }
                let State: String
                let Err: String?
                let ContainerStatus: Container?
            }
            struct Attachment: Decodable {
                struct Network: Decodable { struct Spec: Decodable { let Name: String }; let Spec: Spec }
                let Network: Network
                let Addresses: [String]?
            }
            let ID: String
            let ServiceID: String
            let NodeID: String?
            let DesiredState: String
            let Status: Status
            let NetworksAttachments: [Attachment]?
            let UpdatedAt: String?
            let Spec: Spec?
        }
        let raw = try Raw(from: decoder)
        id = raw.ID
        image = raw.Spec?.ContainerSpec?.Image
        serviceID = raw.ServiceID
        nodeID = raw.NodeID
        desiredState = raw.DesiredState
        state = raw.Status.State
        error = raw.Status.Err
        containerID = raw.Status.ContainerStatus?.ContainerID
        var addresses: [String: String] = [:]
        for attachment in raw.NetworksAttachments ?? [] {
            if let address = attachment.Addresses?.first {
                addresses[attachment.Network.Spec.Name] = String(address.prefix { $0 != "/" })
            }
        }
        self.addresses = addresses
        updatedAt = raw.UpdatedAt
    }
}

/// A node of the swarm (`GET /nodes`).
public struct NodeDetails: Decodable, Sendable {
    public let id: String
    public let hostname: String
    /// `ready`, `down`, `unknown`, `disconnected`.
    public let state: String
    /// `active`, `pause`, `drain`.
    public let availability: String
    public let role: String
    public let address: String?
    public let memoryBytes: Int64
    public let engineVersion: String?

    public var takesWorkspaces: Bool { state == "ready" && availability == "active" }

    public init(from decoder: Decoder) throws {
        struct Raw: Decodable {
            struct Description: Decodable {
                struct Resources: Decodable { let MemoryBytes: Int64? }
                struct Engine: Decodable { let EngineVersion: String? }
                let Hostname: String
                let Resources: Resources?
                let Engine: Engine?
            }
            struct Status: Decodable { let State: String; let Addr: String? }
            struct Spec: Decodable { let Availability: String; let Role: String }
            let ID: String
            let Description: Description
            let Status: Status
            let Spec: Spec
        }
        let raw = try Raw(from: decoder)
        id = raw.ID
        hostname = raw.Description.Hostname
        state = raw.Status.State
        availability = raw.Spec.Availability
        role = raw.Spec.Role
        address = raw.Status.Addr
        memoryBytes = raw.Description.Resources?.MemoryBytes ?? 0
        engineVersion = raw.Description.Engine?.EngineVersion
    }
}
