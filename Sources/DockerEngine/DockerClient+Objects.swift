import Foundation

extension DockerClient {
    // MARK: Containers

    /// Creates a container named `name`; throws `.conflict` when the name is taken.
    @discardableResult
    public func createContainer(name: String, spec: ContainerSpec) throws -> String {
        let response = try call("POST", "/containers/create?name=\(Self.query(name))", json: Self.encode(spec),
                                operation: "create container \(name)")
        struct Created: Decodable { let Id: String }
        return try decode(Created.self, from: response).Id
    }

    /// Starts a container; returns false when it was already running (304).
    @discardableResult
    public func startContainer(_ id: String) throws -> Bool {
        do {
            _ = try call("POST", "/containers/\(Self.query(id))/start", operation: "start container")
            return true
        } catch DockerError.notModified {
            return false
        }
    }

    /// Stops a container, killing it after `timeout` seconds; returns false when it was not running.
    @discardableResult
    public func stopContainer(_ id: String, timeout: Int = 10) throws -> Bool {
        do {
            _ = try call("POST", "/containers/\(Self.query(id))/stop?t=\(timeout)",
                         timeout: TimeInterval(timeout) + 30, operation: "stop container")
            return true
        } catch DockerError.notModified {
            return false
        }
    }

    public func inspectContainer(_ id: String) throws -> ContainerDetails {
        try decode(ContainerDetails.self,
                   from: call("GET", "/containers/\(Self.query(id))/json", operation: "inspect container"))
    }

    /// Lists containers (running or not) carrying every one of `labels` (`key=value` or `key`).
    public func listContainers(labels: [String]) throws -> [ContainerSummary] {
        try decode([ContainerSummary].self,
                   from: call("GET", "/containers/json?all=true&filters=\(Self.labelFilter(labels))",
                              operation: "list containers"))
    }

    /// Removes a container. Named volumes it mounts are never removed here.
    public func removeContainer(_ id: String, force: Bool = false) throws {
        _ = try call("DELETE", "/containers/\(Self.query(id))?force=\(force)&v=false", operation: "remove container")
    }

    /// Renames a container.
    public func renameContainer(_ id: String, to name: String) throws {
        _ = try call("POST", "/containers/\(Self.query(id))/rename?name=\(Self.query(name))",
                     operation: "rename container")
    }

    /// The processes of a running container with their uids, as the engine's host sees them
    /// (`GET /containers/{id}/top`); the engine answers 409 (`.conflict`) for a stopped one.
    public func containerProcesses(_ id: String) throws -> [ContainerProcess] {
        struct Top: Decodable { let Titles: [String]; let Processes: [[String]]? }
        let top = try decode(Top.self, from: call("GET", "/containers/\(Self.query(id))/top?ps_args=\(Self.query("-o pid,uid,args"))",
                                                  operation: "list container processes"))
        guard let pid = top.Titles.firstIndex(of: "PID"), let uid = top.Titles.firstIndex(of: "UID"),
              let command = top.Titles.firstIndex(of: "COMMAND") else {
            throw DockerError.badResponse("container top without PID, UID and COMMAND columns: \(top.Titles)")
        }
        return (top.Processes ?? []).compactMap { row in
            guard row.count > max(pid, uid, command), let pidValue = Int(row[pid]), let uidValue = Int(row[uid]) else { return nil }
            return ContainerProcess(pid: pidValue, uid: uidValue, command: row[command])
        }
    }

    /// The last `tail` lines a container wrote to stdout and stderr (its log), as text.
    public func containerLogs(_ id: String, tail: Int) throws -> String {
        let response = try call("GET", "/containers/\(Self.query(id))/logs?stdout=true&stderr=true&tail=\(tail)",
                                operation: "read container logs")
        return String(decoding: Self.demultiplexed(response.body), as: UTF8.self)
    }

    /// The payload of the engine's multiplexed log stream (8-byte frame headers: stream,
    /// three zero bytes, big-endian size), or the bytes as they are when they are not framed
    /// (a container with a tty).
    static func demultiplexed(_ data: Data) -> Data {
        let bytes = [UInt8](data)
        var output = Data()
        var index = 0
        while index + 8 <= bytes.count {
            guard bytes[index] <= 2, bytes[(index + 1)..<(index + 4)].allSatisfy({ $0 == 0 }) else { return data }
            let size = bytes[(index + 4)..<(index + 8)].reduce(0) { $0 << 8 | Int($1) }
            guard index + 8 + size <= bytes.count else { return data }
            output.append(contentsOf: bytes[(index + 8)..<(index + 8 + size)])
            index += 8 + size
        }
        return index == bytes.count ? output : data
    }

    // MARK: Volumes

    @discardableResult
    public func createVolume(name: String, labels: [String: String] = [:]) throws -> VolumeDetails {
        struct Body: Encodable { let Name: String; let Labels: [String: String] }
        return try decode(VolumeDetails.self,
                          from: call("POST", "/volumes/create", json: Self.encode(Body(Name: name, Labels: labels)),
                                     operation: "create volume"))
    }

    public func inspectVolume(_ name: String) throws -> VolumeDetails {
        try decode(VolumeDetails.self, from: call("GET", "/volumes/\(Self.query(name))", operation: "inspect volume"))
    }

    public func listVolumes(labels: [String]) throws -> [VolumeDetails] {
        struct List: Decodable { let Volumes: [VolumeDetails]? }
        return try decode(List.self, from: call("GET", "/volumes?filters=\(Self.labelFilter(labels))",
                                                 operation: "list volumes")).Volumes ?? []
    }

    /// Removes a volume; the engine refuses (409) while a container uses it.
    public func removeVolume(_ name: String) throws {
        _ = try call("DELETE", "/volumes/\(Self.query(name))", operation: "remove volume")
    }

    // MARK: Networks

    @discardableResult
    public func createNetwork(name: String, options: [String: String] = [:], labels: [String: String] = [:]) throws -> String {
        struct Body: Encodable {
            let Name: String
            let Driver = "bridge"
            let CheckDuplicate = true
            let Options: [String: String]
            let Labels: [String: String]
        }
        struct Created: Decodable { let Id: String }
        let body = Body(Name: name, Options: options, Labels: labels)
        return try decode(Created.self, from: call("POST", "/networks/create", json: Self.encode(body),
                                                    operation: "create network")).Id
    }

    public func inspectNetwork(_ name: String) throws -> NetworkDetails {
        try decode(NetworkDetails.self, from: call("GET", "/networks/\(Self.query(name))", operation: "inspect network"))
    }

    public func removeNetwork(_ name: String) throws {
        _ = try call("DELETE", "/networks/\(Self.query(name))", operation: "remove network")
    }

    // MARK: Images

    public func inspectImage(_ name: String) throws -> ImageDetails {
        try decode(ImageDetails.self, from: call("GET", "/images/\(Self.query(name))/json", operation: "inspect image"))
    }

    // MARK: Archives

    /// Streams a tar of `path` in the container into `sink`, chunk by chunk; works on stopped containers.
    public func downloadArchive(container: String, path: String,
                                into sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        try stream("GET", "/containers/\(Self.query(container))/archive?path=\(Self.query(path))",
                   sink: sink, operation: "read archive")
    }

    /// Streams a tar from `source` into the directory `path` of the container; works on stopped containers.
    /// `source` fills the buffer it is given and returns the byte count, 0 at the end.
    public func uploadArchive(container: String, path: String,
                              from source: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        try stream("PUT", "/containers/\(Self.query(container))/archive?path=\(Self.query(path))&noOverwriteDirNonDir=true",
                   contentType: "application/x-tar", source: source, operation: "write archive")
    }

    /// Uploads a small in-memory tar.
    public func uploadArchive(container: String, path: String, tar: [UInt8]) throws {
        var offset = 0
        try uploadArchive(container: container, path: path) { buffer in
            let count = min(buffer.count, tar.count - offset)
            tar.withUnsafeBytes { bytes in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
            }
            offset += count
            return count
        }
    }
}
