import Audit
import Logging

/// The gateway's log handler: lines to standard error as swift-log's stream handler writes
/// them, with control characters in the message and in every metadata value escaped the way
/// the audit trail escapes them. Commands, terminal types, forwarding hosts and user names
/// come from clients; unescaped, a newline in one would start a forged log line.
public struct EscapingLogHandler: LogHandler {
    private var output: Logger

    public init(label: String) {
        output = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
    }

    public var metadata: Logger.Metadata {
        get { output.handler.metadata }
        set { output.handler.metadata = Self.escaped(newValue) }
    }

    public var logLevel: Logger.Level {
        get { output.logLevel }
        set { output.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { output[metadataKey: AuditEvent.escaped(key)] }
        set { output[metadataKey: AuditEvent.escaped(key)] = newValue.map { Self.escaped($0) } }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(AuditEvent.escaped(event.message.description))"
        event.metadata = event.metadata.map(Self.escaped)
        output.handler.log(event: event)
    }

    static func escaped(_ metadata: Logger.Metadata) -> Logger.Metadata {
        Dictionary(uniqueKeysWithValues: metadata.map { (AuditEvent.escaped($0.key), escaped($0.value)) })
    }

    static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): return .string(AuditEvent.escaped(text))
        case .stringConvertible(let convertible): return .string(AuditEvent.escaped(convertible.description))
        case .array(let values): return .array(values.map(escaped))
        case .dictionary(let dictionary): return .dictionary(escaped(dictionary))
        }
    }
}
