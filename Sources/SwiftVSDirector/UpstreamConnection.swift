import NIOCore
import NIOHTTP1

/// One HTTP/1.1 connection to a real server. While a request uses it, it hands every response part straight to
/// its owner (same event loop, a method call, no future); between requests it waits in its loop's pool.
final class UpstreamConnection: ChannelDuplexHandler, TimedConnection {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let serverID: Int
    let service: ObjectIdentifier
    let loop: LoopContext
    let idleNanos: UInt64
    private(set) var context: ChannelHandlerContext?
    /// The client request this connection serves now; nil while pooled.
    var owner: HTTPProxyHandler?
    private var pendingRead = false
    private(set) var isActive = false
    var registryIndex = -1
    private var idleSince: UInt64 = 0

    init(serverID: Int, service: ObjectIdentifier, loop: LoopContext, idle: Double) {
        self.serverID = serverID
        self.service = service
        self.loop = loop
        self.idleNanos = UInt64(idle * 1e9)
    }

    var channel: Channel? { self.context?.channel }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

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

    /// Parks the connection in its loop's pool; false when the pool is full.
    func park(limit: Int) -> Bool {
        self.owner = nil
        guard self.isActive, self.loop.putIdle(self, service: self.service, server: self.serverID, limit: limit) else {
            return false
        }
        self.idleSince = self.loop.now
        self.loop.register(self)
        return true
    }

    /// Takes the connection out of the pool for `owner`.
    func unpark(for owner: HTTPProxyHandler) {
        self.loop.unregister(self)
        self.owner = owner
    }

    func checkTimeout(now: UInt64) {
        // Only pooled connections are registered: an idle one past the idle timeout is closed.
        if now &- self.idleSince > self.idleNanos {
            self.loop.unregister(self)
            self.loop.removeIdle(self, service: self.service, server: self.serverID)
            self.context?.close(promise: nil)
        }
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
            self.loop.unregister(self)
            self.loop.removeIdle(self, service: self.service, server: self.serverID)
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
            owner.upstreamClosed(self, error: nil)
        } else {
            self.loop.unregister(self)
            self.loop.removeIdle(self, service: self.service, server: self.serverID)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.isActive = false
        if let owner = self.owner {
            self.owner = nil
            owner.upstreamClosed(self, error: error)
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
