import GatewayMetrics

/// Counts failed Engine API calls in `devenv_gw_engine_errors_total{operation}`.
enum EngineErrorCount {
    /// Counts one failure of `operation`. The label keeps the operation's leading lowercase
    /// words ("create container devenv-alice" counts as `create_container`), so it never
    /// carries a container, user or volume name.
    static func note(_ operation: String) {
        GatewayMetric.engineErrors.counter(label(for: operation)).increment()
    }

    static func label(for operation: String) -> String {
        let words = operation.split(separator: " ").prefix { word in word.allSatisfy { ("a"..."z").contains($0) } }
        return words.isEmpty ? "other" : words.joined(separator: "_")
    }
}
