import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS
import SwiftVSCore

/// The client side of a connection the NIO proxy serves, from its first bytes to `HTTPProxyHandler`: TLS (with
/// SNI and ALPN), HTTP/2 (over TLS by ALPN, or in clear text with prior knowledge), or HTTP/1. Whatever the front,
/// every request ends in one `HTTPProxyHandler` running the one `HTTPExchange`: an HTTP/2 stream is one more
/// client of it, its requests go to the real servers as HTTP/1.1 on the same pooled connections.
enum FrontPipeline {
    /// Sets up a connection the relay engine handed over, with the bytes it had read.
    /// `client` is who the relay engine found the client to be by its PROXY header (`accept_proxy`); nil: the
    /// socket's peer. `decrypted`: the relay terminated the client's TLS and passes its plaintext (`TLSBridge`).
    static func configure(
        _ channel: Channel, service: VirtualService, bytes: [UInt8], client: SocketAddress?, decrypted: Bool,
        loop: LoopContext
    ) throws {
        let config = service.config
        let sync = channel.pipeline.syncOperations
        if !bytes.isEmpty { try sync.addHandler(ReplayHandler(bytes)) }
        if decrypted {
            return try sync.addHandlers(
                Self.http1(service: service, config: config, loop: loop, secure: true, client: client))
        }
        let tls = service.tlsFront
        if tls == nil && !(config.http2 && bytes.starts(with: "PRI".utf8)) {
            // The usual case, no sniffing: HTTP/1 in clear text.
            return try sync.addHandlers(
                Self.http1(service: service, config: config, loop: loop, secure: false, client: client))
        }
        // The client has `timeouts.header_read` to get through the sniffing and the TLS handshake to HTTP, as an
        // HTTP/1 client has to send a whole head: a connection that sends nothing, or stalls in the handshake, is
        // closed then.
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(config.timeouts.headerRead * 1e9))) {
            let pipeline = channel.pipeline.syncOperations
            let speaksHTTP =
                (try? pipeline.handler(type: HTTPProxyHandler.self)) != nil
                || (try? pipeline.handler(type: NIOHTTP2Handler.self)) != nil
            if !speaksHTTP { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in deadline.cancel() }
        try sync.addHandler(
            FrontSniffer(tls: tls != nil, http2: config.http2) { kind, pipeline in
                switch kind {
                case .tls:
                    guard let tls else { return }
                    try Self.addTLS(pipeline, front: tls, service: service, loop: loop, client: client)
                case .h2c:
                    try Self.addHTTP2(
                        pipeline, service: service, config: config, loop: loop, secure: false, client: client)
                case .http1:
                    try pipeline.addHandlers(
                        Self.http1(service: service, config: config, loop: loop, secure: false, client: client))
                case .plainOnTLS, .unknown:
                    return
                }
            })
    }

    /// The NIOHTTP1 proxy's pipeline.
    static func http1(
        service: VirtualService, config: VirtualServiceConfig, loop: LoopContext, secure: Bool, client: SocketAddress?
    ) -> [ChannelHandler] {
        let limits = config.limits
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = limits.maxHeaders
        return [
            ByteToMessageHandler(
                HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits),
                maximumBufferSize: limits.maxHeaderBytes
            ),
            HTTPResponseEncoder(),
            HTTPProxyHandler(service: service, loop: loop, secure: secure, client: client),
        ]
    }

    private static func addTLS(
        _ pipeline: ChannelPipeline.SynchronousOperations, front: TLSFront, service: VirtualService,
        loop: LoopContext, client: SocketAddress?
    ) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: front.context))
        try pipeline.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    let config = service.config
                    let sync = channel.pipeline.syncOperations
                    if case .negotiated("h2") = result {
                        try Self.addHTTP2(
                            sync, service: service, config: config, loop: loop, secure: true, client: client)
                    } else {
                        try sync.addHandlers(
                            Self.http1(service: service, config: config, loop: loop, secure: true, client: client))
                    }
                }
            })
    }

    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS), as nginx's default.
    static let maxConcurrentStreams = 128

    private static func addHTTP2(
        _ pipeline: ChannelPipeline.SynchronousOperations, service: VirtualService, config: VirtualServiceConfig,
        loop: LoopContext, secure: Bool, client: SocketAddress?
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: config.limits.maxHeaderBytes),
            HTTP2Setting(parameter: .initialWindowSize, value: 1 << 20),
        ]
        connection.targetWindowSize = 4 << 20
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = 1 << 20
        // Rapid reset (CVE-2023-44487): a client that resets more than 200 streams in 30 s is sent GOAWAY
        // (ENHANCE_YOUR_CALM) and closed; nio-http2 counts it, here it is said.
        stream.streamResetFrameRateLimit.maximumCount = 200
        stream.streamResetFrameRateLimit.windowLength = .seconds(30)
        // The connection itself closes after `timeouts.idle` without a byte either way, as an HTTP/1 one does.
        try pipeline.addHandler(IdleStateHandler(allTimeout: .nanoseconds(Int64(config.timeouts.idle * 1e9))))
        try pipeline.addHandler(IdleCloser())
        // Responses of many streams end in one loop tick (their real servers answer together): one flush, so one
        // TLS record and one write, for all of them.
        try pipeline.addHandler(FlushCoalescer())
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                let sync = streamChannel.pipeline.syncOperations
                try sync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try sync.addHandler(HTTPProxyHandler(service: service, loop: loop, secure: secure, client: client))
            }
        }
        try pipeline.addHandler(HTTP2ConnectionErrors(service: service.name, logger: service.logger))
        try pipeline.addHandler(HTTP2Drain(loop: loop))
    }
}

/// The director drains (SIGTERM): each HTTP/2 connection is sent GOAWAY with NO_ERROR and the highest stream id
/// (RFC 9113 §6.8's graceful first step), so its client opens no new stream on it and goes elsewhere, while the
/// streams in flight finish; the drain then closes the connection with the rest.
final class HTTP2Drain: ChannelInboundHandler, SweptConnection {
    typealias InboundIn = NIOAny
    var sweepIndex = -1
    private let loop: LoopContext
    private var context: ChannelHandlerContext?

    init(loop: LoopContext) {
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if self.sweepIndex >= 0 { self.loop.unregister(self) }
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.sweepIndex >= 0 { self.loop.unregister(self) }
        context.fireChannelInactive()
    }

    func checkTimeout(now: UInt64) {}

    func drain() {
        guard let context = self.context, context.channel.isActive else { return }
        let goAway = HTTP2Frame(
            streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        context.channel.writeAndFlush(goAway, promise: nil)
    }
}

/// Holds a connection's first bytes until `FrontProtocol.classify` can tell what it speaks, sets the pipeline up
/// behind itself for that, and lets the bytes through.
final class FrontSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias Setup = (FrontProtocol, ChannelPipeline.SynchronousOperations) throws -> Void

    private let tls: Bool
    private let http2: Bool
    private let setup: Setup
    private var buffered: ByteBuffer?

    init(tls: Bool, http2: Bool, setup: @escaping Setup) {
        self.tls = tls
        self.http2 = http2
        self.setup = setup
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = incoming
        } else {
            self.buffered!.writeBuffer(&incoming)
        }
        guard let bytes = self.buffered,
            let kind = FrontProtocol.classify(bytes.readableBytesView, tls: self.tls, http2: self.http2)
        else { return }
        self.buffered = nil
        switch kind {
        case .plainOnTLS:
            let body = "This port speaks HTTPS: use https:// in the address.\n"
            let text =
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                + "\(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text))).assumeIsolated()
                .whenComplete { _ in context.close(promise: nil) }
            return
        case .unknown:
            context.close(promise: nil)
            return
        case .tls, .h2c, .http1:
            break
        }
        do {
            try self.setup(kind, context.pipeline.syncOperations)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(Self.wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// nio-http2 answers a connection error (a protocol violation, rapid reset) with GOAWAY and the code RFC 9113
/// names, then leaves the connection open; this closes it, a second later so the GOAWAY reaches the client first
/// (nginx lingers the same way). A stream's error (its RST_STREAM is sent) leaves the connection be.
final class HTTP2ConnectionErrors: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    private let service: String
    private let logger: Logger
    private var closing = false

    init(service: String, logger: Logger) {
        self.service = service
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !(error is NIOHTTP2Errors.StreamError), !self.closing else { return }
        self.closing = true
        self.logger.debug(
            "HTTP/2 connection error: GOAWAY and close",
            metadata: [
                "service": "\(self.service)", "client": "\(context.channel.remoteAddress?.description ?? "?")",
                "error": "\(error)",
            ])
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
    }
}

/// Holds a connection's flushes to the end of the event loop's tick and does one: HTTP/2 streams each flush their
/// response's end, and without this each is a TLS record and a `write` of its own (h2load: 64 streams over 4
/// connections went out in 64 writes where HAProxy sends one).
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !self.scheduled else { return }
        self.scheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.scheduled = false
            context.flush()
        }
    }
}

/// Closes a connection on `IdleStateHandler`'s event.
final class IdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
