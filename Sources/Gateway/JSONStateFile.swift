import Foundation

/// A small JSON file in the state directory that one process writes and another reads
/// (`devenv-gw status` reads what `serve` wrote): replaced whole, mode 0600, ISO 8601 dates.
public struct JSONStateFile<Value: Codable> {
    public let path: String

    /// A file at `path`; nothing is read or written until asked.
    public init(path: String) { self.path = path }

    /// Replaces the file by `value` through a rename, so a reader never sees half of it.
    /// Returns false when it could not be written.
    @discardableResult
    public func write(_ value: Value) -> Bool {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(value) else { return false }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]),
              rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }

    /// What the file holds, or nil when it is missing or unreadable.
    public func read() -> Value? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(Value.self, from: data)
    }

    /// Deletes the file, if it is there.
    public func remove() { unlink(path) }
}
