import CoreMetrics
import Foundation
import GatewayMetrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The `/metrics` endpoint of `serve`: Prometheus' text format over HTTP, served by SwiftNIO
/// on one event-loop thread of its own, so a slow or stuck scraper never touches a
/// connection thread, and a login never waits for a scrape.
public final class MetricsServer: @unchecked Sendable {
    private let registry: PrometheusCollectorRegistry
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    /// Where the endpoint listens (the real port when asked for port 0).
    public let address: MetricsListenAddress

    /// Bootstraps swift-metrics with a Prometheus registry (once per process), creates every
    /// series of `GatewayMetric.all` at zero, and listens on `address`.
    ///
    /// - Throws: `MetricsEndpointError.cannotListen` when the address cannot be bound.
    public init(address: MetricsListenAddress, version: String, startTime: Date = Date()) throws {
        registry = Self.bootstrapOnce()
        Self.createSeries(version: version, startTime: startTime)
        ScrapeHooks.add { ProcessFigures.record() }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let registry = self.registry
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 1)
        do {
            channel = try bootstrap.bind(host: address.host, port: address.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsEndpointError.cannotListen("cannot listen for metrics on \(address): \(error)")
        }
        let port = channel.localAddress?.port ?? address.port
        self.address = try MetricsListenAddress(parsing: MetricsListenAddress.join(address.host, port))
    }

    /// Stops listening and ends the event-loop thread.
    public func shutdown() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    nonisolated(unsafe) private static var bootstrapped: PrometheusCollectorRegistry?
    private static let bootstrapLock = NSLock()

    private static func bootstrapOnce() -> PrometheusCollectorRegistry {
        bootstrapLock.lock()
        defer { bootstrapLock.unlock() }
        if let bootstrapped { return bootstrapped }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(HelpfulMetricsFactory(registry: registry))
        bootstrapped = registry
        return registry
    }

    /// Every series a dashboard or alert may query exists from the start, at zero.
    private static func createSeries(version: String, startTime: Date) {
        for definition in GatewayMetric.all {
            // A label with an open set of values (the version) gets its series where it is known.
            if definition.labelName != nil && definition.labelValues.isEmpty { continue }
            let values: [String?] = definition.labelValues.isEmpty ? [nil] : definition.labelValues
            for value in values {
                switch definition.kind {
                case .counter: definition.counter(value).increment(by: 0)
                case .histogram: _ = definition.timer(value)
                case .gauge: _ = definition.meter(value)
                }
            }
        }
        GatewayMetric.buildInfo.gauge(version).record(1)
        GatewayMetric.startTime.gauge().record(startTime.timeIntervalSince1970)
    }
}

extension MetricsListenAddress {
    static func join(_ host: String, _ port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Answers `GET /metrics` (and `HEAD`); everything else gets 404 or 405.
private final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus
        var body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        if path != "/metrics" {
            status = .notFound
            body = Array("not found: the metrics are at /metrics\n".utf8)
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("use GET\n".utf8)
        } else {
            status = .ok
            ScrapeHooks.run()
            body = registry.emitToBuffer()
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                      promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            body = []
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }
}
