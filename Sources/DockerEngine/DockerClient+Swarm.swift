import Foundation

/// Swarm objects, asked of a manager: services, tasks, nodes, secrets.
extension DockerClient {
    // MARK: Services

    /// Creates a service; throws `.conflict` when the name is taken.
    @discardableResult
    public func createService(_ spec: ServiceSpec) throws -> String {
        struct Created: Decodable { let ID: String }
        return try decode(Created.self, from: call("POST", "/services/create", json: Self.encode(spec),
                                                    operation: "create service")).ID
    }

    public func inspectService(_ name: String) throws -> ServiceDetails {
        try decode(ServiceDetails.self, from: call("GET", "/services/\(Self.query(name))", operation: "inspect service"))
    }

    /// Lists services carrying every one of `labels` (`key=value` or `key`).
    public func listServices(labels: [String]) throws -> [ServiceDetails] {
        try decode([ServiceDetails].self, from: call("GET", "/services?filters=\(Self.labelFilter(labels))",
                                                      operation: "list services"))
    }

    /// Changes a service's stored spec with `change` and sends it back at the version it
    /// was read at: a concurrent update makes the engine refuse this one. Editing the spec
    /// as the engine returns it keeps every field this client does not model.
    public func updateService(_ name: String, _ change: (inout [String: Any]) throws -> Void) throws {
        let response = try call("GET", "/services/\(Self.query(name))", operation: "inspect service")
        guard let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
              var spec = object["Spec"] as? [String: Any],
              let version = (object["Version"] as? [String: Any])?["Index"] as? Int,
              let id = object["ID"] as? String else {
            throw DockerError.badResponse("service \(name) without ID, Version or Spec")
        }
        try change(&spec)
        let body = try JSONSerialization.data(withJSONObject: spec)
        _ = try call("POST", "/services/\(Self.query(id))/update?version=\(version)", json: body,
                     operation: "update service")
    }

    /// Sets a replicated service's replica count.
    public func scaleService(_ name: String, to replicas: Int) throws {
        try updateService(name) { spec in
            spec["Mode"] = ["Replicated": ["Replicas": replicas]]
        }
    }

    public func removeService(_ name: String) throws {
        _ = try call("DELETE", "/services/\(Self.query(name))", operation: "remove service")
    }

    // MARK: Tasks and nodes

    /// The tasks of a service (every state the manager still keeps).
    public func listTasks(service: String) throws -> [TaskDetails] {
        let filter = Self.query(String(decoding: Self.encode(["service": [service]]), as: UTF8.self))
        return try decode([TaskDetails].self, from: call("GET", "/tasks?filters=\(filter)", operation: "list tasks"))
    }

    /// Tasks whose desired state is running, of services carrying every one of `labels`.
    public func listRunningTasks(labels: [String]) throws -> [TaskDetails] {
        let filter = Self.query(String(decoding: Self.encode(["label": labels, "desired-state": ["running"]]), as: UTF8.self))
        return try decode([TaskDetails].self, from: call("GET", "/tasks?filters=\(filter)", operation: "list tasks"))
    }

    public func listNodes() throws -> [NodeDetails] {
        try decode([NodeDetails].self, from: call("GET", "/nodes", operation: "list nodes"))
    }

    // MARK: Secrets

    /// Creates a secret holding `data`; throws `.conflict` when the name is taken.
    @discardableResult
    public func createSecret(name: String, data: [UInt8], labels: [String: String]) throws -> String {
        struct Body: Encodable { let Name: String; let Labels: [String: String]; let Data: String }
        struct Created: Decodable { let ID: String }
        let body = Body(Name: name, Labels: labels, Data: Foundation.Data(data).base64EncodedString())
        return try decode(Created.self, from: call("POST", "/secrets/create", json: Self.encode(body),
                                                    operation: "create secret")).ID
    }

    /// The ID of the secret named exactly `name`, or nil.
    public func secretID(named name: String) throws -> String? {
        struct Secret: Decodable { let ID: String; struct Spec: Decodable { let Name: String }; let Spec: Spec }
        let filter = Self.query(String(decoding: Self.encode(["name": [name]]), as: UTF8.self))
        let secrets = try decode([Secret].self, from: call("GET", "/secrets?filters=\(filter)", operation: "list secrets"))
        return secrets.first { $0.Spec.Name == name }?.ID
    }

    /// Removes a secret; the engine refuses (409) while a service uses it.
    public func removeSecret(_ id: String) throws {
        _ = try call("DELETE", "/secrets/\(Self.query(id))", operation: "remove secret")
    }

    // MARK: A node's own containers

    /// Sets a container's memory limit and memory plus swap (equal values: no swap).
    public func updateContainerMemory(_ id: String, memory: Int64, memorySwap: Int64) throws {
        struct Body: Encodable { let Memory: Int64; let MemorySwap: Int64 }
        _ = try call("POST", "/containers/\(Self.query(id))/update",
                     json: Self.encode(Body(Memory: memory, MemorySwap: memorySwap)), operation: "update container")
    }
}
