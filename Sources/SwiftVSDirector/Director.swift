import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwiftVSCore
import Synchronization

/// The virtual server: binds every virtual service of a `DirectorConfig` and runs their data planes on one event
/// loop group.
public final class Director: Sendable {
    public let config: DirectorConfig
    public let services: [VirtualService]
    let group: MultiThreadedEventLoopGroup
    let loops: LoopContexts
    let logger: Logger
    private let listeners = Mutex<[String: Channel]>([:])

    public init(config: DirectorConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let threads = config.threads ?? System.coreCount
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.loops = LoopContexts(group: self.group)
        self.services = try config.services.map { try VirtualService(config: $0, logger: logger) }
    }

    public func service(named name: String) -> VirtualService? {
        self.services.first { $0.config.name == name }
    }

    /// The address a service listens on (with the real port when the config said 0).
    public func boundAddress(of name: String) -> SocketAddress? {
        self.listeners.withLock { $0[name]?.localAddress }
    }

    /// Binds every service; throws (having bound none) if any address cannot be bound.
    public func start() async throws {
        for context in self.loops.all { context.start() }
        var bound: [String: Channel] = [:]
        do {
            for service in self.services {
                bound[service.config.name] = try await self.bind(service)
                self.logger.info("virtual service listening", metadata: [
                    "service": "\(service.config.name)", "listen": "\(service.config.listen)",
                    "protocol": "\(service.config.proto.rawValue)", "scheduler": "\(service.config.scheduler.rawValue)",
                    "servers": "\(service.config.servers.count)",
                ])
            }
        } catch {
            for channel in bound.values { try? await channel.close() }
            throw DirectorError(code: .bind, message: "\(error)")
        }
        let final = bound
        self.listeners.withLock { $0 = final }
        self.scheduleTemplateExpiry()
    }

    private func scheduleTemplateExpiry() {
        let services = self.services.filter { $0.config.persistence != nil }
        guard !services.isEmpty, let loop = self.loops.all.first else { return }
        loop.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
            let now = loop.seconds
            for service in services { service.expireTemplates(now: now) }
        }
    }

    private func bind(_ service: VirtualService) async throws -> Channel {
        let loops = self.loops
        let config = service.config
        let limits = config.limits
        var bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
        switch config.proto {
        case .tcp:
            bootstrap = bootstrap
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.autoRead, value: false)
                .childChannelInitializer { channel in
                    let loop = loops.context(for: channel.eventLoop)
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(TCPFrontendHandler(service: service, loop: loop))
                    }
                }
        case .http:
            bootstrap = bootstrap.childChannelInitializer { channel in
                let loop = loops.context(for: channel.eventLoop)
                return channel.eventLoop.makeCompletedFuture {
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                    decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                    decoderLimits.maxHeaderFieldCount = limits.maxHeaders
                    let proxy = HTTPProxyHandler(service: service, loop: loop)
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(
                        HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits),
                        maximumBufferSize: limits.maxHeaderBytes
                    ))
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(proxy)
                }
            }
        }
        let address = try SocketAddress(ipAddress: config.listen.host, port: config.listen.port)
        return try await bootstrap.bind(to: address).get()
    }

    /// Stops accepting; open connections are closed with the event loops.
    public func stop() async {
        let channels = self.listeners.withLock { listeners in
            defer { listeners = [:] }
            return Array(listeners.values)
        }
        for channel in channels { try? await channel.close() }
        for context in self.loops.all { context.stop() }
    }

    public func shutdown() async {
        await self.stop()
        try? await self.group.shutdownGracefully()
    }
}

/// A director error with a code, as users see it.
public struct DirectorError: Error, CustomStringConvertible {
    public enum Code: String, Sendable {
        case bind
    }

    public var code: Code
    public var message: String

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}

/// Runs a director in a `ServiceGroup`: binds on start, stops accepting on graceful shutdown.
public struct DirectorService: Service {
    public let director: Director

    public init(director: Director) {
        self.director = director
    }

    public func run() async throws {
        try await self.director.start()
        try? await gracefulShutdown()
        await self.director.shutdown()
    }
}
