import Logging
import NIOCore
import NIOPosix
import SwiftVSCore

/// The first handler of an accepted `tcp` connection: chooses a real server, connects to it on the client's own
/// event loop (trying another if the connect fails, before a single client byte has been read), then replaces
/// itself with a glue pair and starts reading.
final class TCPFrontendHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let service: VirtualService
    let config: VirtualServiceConfig
    let loop: LoopContext
    private var tried: [Int] = []
    private var closed = false
    /// Bytes and an EOF that arrived before the glue: NIO reads to EOF on RDHUP even with autoRead off, so a
    /// client that sends its request and half-closes at once is read here and replayed into the glue.
    private var early: [NIOAny] = []
    private var earlyEOF = false

    init(service: VirtualService, loop: LoopContext) {
        self.service = service
        self.config = service.config
        self.loop = loop
        service.stats.connections.wrappingAdd(1, ordering: .relaxed)
    }

    func channelActive(context: ChannelHandlerContext) {
        self.connect(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.early.append(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.earlyEOF = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func connect(context: ChannelHandlerContext) {
        let config = self.config
        let remote = context.channel.remoteAddress
        let key: UInt32
        switch config.effectiveHash {
        case .destination: key = self.service.destinationKey
        default: key = remote?.sourceKey(withPort: config.flags.port) ?? 0
        }
        guard let backend = self.service.schedule(
            key: key, remote: remote, now: self.loop.seconds, excluding: self.tried
        ) else {
            self.service.logger.debug("no real server available", metadata: ["service": "\(config.name)"])
            context.close(promise: nil)
            return
        }
        self.tried.append(backend.server.id)
        let clientChannel = context.channel
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(.nanoseconds(Int64(config.timeouts.connect * 1e9)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.autoRead, value: false)
        bootstrap.connect(to: backend.address).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                self.service.succeeded(backend)
                upstream.closeFuture.whenComplete { _ in backend.release() }
                guard !self.closed else {
                    upstream.close(promise: nil)
                    return
                }
                self.glue(context: context, client: clientChannel, upstream: upstream, counters: backend.server.counters)
            case .failure(let error):
                backend.release()
                self.service.failed(backend, "connect: \(HTTPFetch.describe(error))")
                self.service.logger.debug("connect failed", metadata: [
                    "service": "\(config.name)", "server": "\(backend.server.endpoint)", "error": "\(error)",
                ])
                if self.closed { return }
                if self.tried.count <= config.retries {
                    self.connect(context: context)
                } else {
                    context.close(promise: nil)
                }
            }
        }
    }

    private func glue(context: ChannelHandlerContext, client: Channel, upstream: Channel, counters: ServerCounters) {
        let timer = TunnelTimer(loop: self.loop, idle: self.config.timeouts.idle)
        let (clientGlue, upstreamGlue) = GlueHandler.matchedPair(timer: timer, counters: counters)
        timer.onExpiry = {
            client.close(promise: nil)
            upstream.close(promise: nil)
        }
        self.loop.register(timer)
        do {
            try upstream.pipeline.syncOperations.addHandler(upstreamGlue)
            try context.pipeline.syncOperations.addHandler(clientGlue)
            for data in self.early { context.fireChannelRead(data) }
            if !self.early.isEmpty { context.fireChannelReadComplete() }
            self.early.removeAll()
            if self.earlyEOF { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            client.close(promise: nil)
            upstream.close(promise: nil)
            return
        }
        client.setOption(.autoRead, value: true).whenFailure { _ in client.close(promise: nil) }
        upstream.setOption(.autoRead, value: true).whenFailure { _ in upstream.close(promise: nil) }
    }
}

extension TCPFrontendHandler: RemovableChannelHandler {}
