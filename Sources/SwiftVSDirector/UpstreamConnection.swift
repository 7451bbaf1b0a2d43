import SwiftVSSystem
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftVSCore

/// One HTTP/1.1 connection to a real server. While a request uses it, it hands every response part straight to
/// its owner (same event loop, a method call, no future); between requests it waits in its loop's pool.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias Owner = HTTPProxyHandler
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let serverID: Int
    let service: ObjectIdentifier
    let loop: LoopContext
    let idleNanos: UInt64
    private(set) var context: ChannelHandlerContext?
    /// The client request this connection serves now; nil while pooled.
    var owner: Owner?
    private var pendingRead = false
    private(set) var isActive = false

    init(serverID: Int, service: ObjectIdentifier, loop: LoopContext, idle: Double) {
        self.serverID = serverID
        self.service = service
        self.loop = loop
        self.idleNanos = UInt64(idle * 1e9)
    }

    var channel: Channel? { self.context?.channel }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// Connects to `slot` for `owner`, on `owner`'s loop. When the connect ends, `wanted` says whether `owner`
    /// still waits for this server: if so the connection is `attach`ed (owned, not yet flushed) or the failure is
    /// reported to `failed` (with whether it timed out, and how it failed); if not, a made connection is pooled.
    static func open(
        for owner: Owner, slot: RealServerSlot, serviceID: ObjectIdentifier,
        loop: LoopContext, config: VirtualServiceConfig, wanted: @escaping () -> Bool,
        attach: @escaping (UpstreamConnection) -> Void, failed: @escaping (UpstreamFailure, _ detail: String) -> Void
    ) {
        let timeouts = config.timeouts
        let connection = UpstreamConnection(
            serverID: slot.server.id, service: serviceID, loop: loop,
            idle: timeouts.idle)
        let bound = NIOLoopBound(connection, eventLoop: loop.eventLoop)
        let tls = owner.pool.upstreamTLS[slot.server.endpoint]
        ClientBootstrap(group: loop.eventLoop)
            .connectTimeout(.nanoseconds(Int64(timeouts.connect * 1e9)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(try tls.handler()) }
                    try Owner.addCodecs(sync)
                    try sync.addHandler(bound.value)
                }
            }
            .connect(to: slot.address)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success:
                    guard wanted() else {
                        // The client left or moved on meanwhile: keep the connection for the next request.
                        if !connection.park(limit: config.maxIdlePerServer) { connection.close() }
                        return
                    }
                    connection.owner = owner
                    attach(connection)
                case .failure(let error):
                    guard wanted() else { return }
                    if let code = LocalExhaustion.code(of: error) {
                        LocalExhaustion.warn(
                            owner.service.logger, "cannot open a connection to a real server", code: code,
                            service: owner.service.name)
                        return failed(.localResources, "connect: \(HTTPFetch.describe(error))")
                    }
                    var timedOut = false
                    if case ChannelError.connectTimeout = error { timedOut = true }
                    failed(.connect(timedOut: timedOut), "connect: \(HTTPFetch.describe(error))")
                }
            }
    }

    @inline(__always) func write(_ part: HTTPClientRequestPart) {
        self.context?.write(self.wrapOutboundOut(part), promise: nil)
    }

    @inline(__always) func flush() {
        self.context?.flush()
    }

    func close() {
        self.owner = nil
        self.context?.close(promise: nil)
    }

    func resumeRead() {
        if self.pendingRead {
            self.pendingRead = false
            self.context?.read()
        }
    }

    /// Parks the connection in its loop's pool (the loop's sweep closes it after the idle timeout); false when the
    /// pool is full.
    func park(limit: Int) -> Bool {
        self.owner = nil
        guard self.isActive else { return false }
        return self.loop.httpPool.put(
            self, service: self.service, server: self.serverID, now: self.loop.now, idle: self.idleNanos,
            limit: limit)
    }

    /// Taken out of the pool for `owner`.
    func unpark(for owner: Owner) {
        self.owner = owner
    }

    /// Idled past its timeout in the pool (which already let it go).
    func closeIdle() {
        self.context?.close(promise: nil)
    }

    private func unpool() {
        self.loop.httpPool.remove(self, service: self.service, server: self.serverID)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.isActive = context.channel.isActive
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.isActive = true
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if let owner = self.owner {
            owner.upstreamRead(part)
        } else {
            // A pooled connection has nothing to say; anything it sends makes it unusable.
            self.unpool()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.owner?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isActive = false
        if let owner = self.owner {
            self.owner = nil
            owner.upstreamClosed(self)
        } else {
            self.unpool()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.isActive = false
        if let owner = self.owner {
            self.owner = nil
            owner.upstreamClosed(self)
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.owner?.upstreamWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let owner = self.owner, !owner.clientWritable {
            self.pendingRead = true
        } else {
            context.read()
        }
    }
}

extension UpstreamConnection: RemovableChannelHandler {}
