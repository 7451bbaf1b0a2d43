import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftVSCore

/// The client side of an `http` virtual service: reads requests, chooses a real server per request, and streams
/// request and response between the client and a pooled upstream connection on the same event loop.
///
/// Reads from the client are withheld (the `read` event is not passed on) while a request waits for its response
/// or the real server cannot take more bytes; pipelined requests wait in `pending`.
final class HTTPProxyHandler: ChannelDuplexHandler, SweptConnection, UpstreamOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    typealias ResponsePart = HTTPClientResponsePart
    typealias RequestPart = HTTPClientRequestPart
    typealias Upstream = UpstreamConnection<HTTPProxyHandler>

    static func withPool<T>(
        _ loop: LoopContext, _ body: (inout IdlePool<ObjectIdentifier, UpstreamConnection<HTTPProxyHandler>>) -> T
    ) -> T {
        body(&loop.httpPool)
    }

    static func addCodecs(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(HTTPRequestEncoder())
        try pipeline.addHandler(
            ByteToMessageHandler(
                HTTPResponseDecoder(
                    leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward
                )))
    }

    enum State {
        /// Between requests.
        case idle
        /// A real server is chosen; its connection is being made.
        case connecting
        /// The request is going to, or the response coming from, `upstream`.
        case forwarding
        /// A 101 arrived; the pipelines are being turned into a tunnel.
        case tunnel
        case closed
    }

    let service: VirtualService
    /// The service's config as it was when this connection came: a reload applies to new connections.
    let config: VirtualServiceConfig
    let serviceID: ObjectIdentifier
    let loop: LoopContext
    private var context: ChannelHandlerContext?
    private var state = State.idle

    // The request in flight.
    private var head: HTTPRequestHead?
    private var upstream: Upstream?
    private var backend: Backend?
    private var buffered: [HTTPServerRequestPart] = []
    private var bufferedBytes = 0
    private var requestComplete = false
    private var bodySent = false
    private var responseStarted = false
    private var keepAlive = true
    private var isUpgrade = false
    private var replayable = false
    private var tried: [Int] = []
    private var upstreamNeedsFlush = false
    /// False once the real server said it will close, or answered as HTTP/1.0 without keep-alive.
    private var upstreamReusable = true
    /// The client's version, which its response is written in.
    private var clientVersion: HTTPVersion = .http1_1
    /// What the last real server tried did wrong, for the answer when no other is left.
    private var lastFailure: HTTPResponseStatus?

    // Pipelined parts of later requests.
    private var pending = CircularBuffer<HTTPServerRequestPart>()
    private var readPending = false

    // Timeouts, on the loop's coarse clock.
    var sweepIndex = -1
    private var lastActivity: UInt64 = 0
    private var headStarted: UInt64 = 0
    private var sawBytes = false
    private var sentAt: UInt64 = 0
    private let timeouts: ExchangeTimeouts
    /// When the request in flight's head arrived (its body is timed from there).
    private var requestStarted: UInt64 = 0

    private var client = ClientPeer()
    private let defaultHost: String

    /// The relay engine counted the connection when it accepted it.
    init(service: VirtualService, loop: LoopContext) {
        self.service = service
        let config = service.config
        self.config = config
        self.serviceID = ObjectIdentifier(service)
        self.loop = loop
        let timeouts = config.timeouts
        self.timeouts = ExchangeTimeouts(timeouts)
        self.defaultHost = config.listen.description
    }

    var clientWritable: Bool { self.context?.channel.isWritable ?? false }

    // MARK: lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.activate(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.activate(context)
        context.fireChannelActive()
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard self.sweepIndex < 0, self.state == .idle else { return }
        self.client = ClientPeer(context.channel, self.config)
        self.lastActivity = self.loop.now
        self.loop.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.state != .tunnel {
            self.abortUpstream()
        }
        self.state = .closed
        self.loop.unregister(self)
        self.pending.removeAll()
        context.fireChannelInactive()
    }

    // MARK: client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.handle(self.unwrapInboundIn(data))
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch self.state {
        case .idle:
            guard case .head(let head) = part else { return }  // stray parts of a request we answered early
            self.start(head)
        case .connecting, .forwarding:
            if self.requestComplete {
                self.pending.append(part)
                return
            }
            self.forward(part)
        case .tunnel, .closed:
            return
        }
    }

    private func start(_ head: HTTPRequestHead) {
        self.sawBytes = false
        self.clientVersion = head.version.major == 1 && head.version.minor == 0 ? .http1_0 : .http1_1
        let (upstreamHead, facts) = HTTPHead.upstreamRequest(
            head, clientIP: self.client.ip, forwardedFor: self.config.forwardedFor, defaultHost: self.defaultHost
        )
        if let problem = facts.invalid {
            self.service.logger.debug(
                "bad request", metadata: ["service": "\(self.config.name)", "problem": "\(problem)"])
            self.respondError(.badRequest, close: true)
            return
        }
        self.head = upstreamHead
        self.requestStarted = self.loop.now
        self.isUpgrade = facts.isUpgrade
        self.keepAlive = ConnectionReuse.keepsAlive(
            clientKeepsAlive: head.isKeepAlive, upgrade: facts.isUpgrade, draining: self.loop.draining)
        self.replayable = HTTPHead.isIdempotent(head.method) && !facts.hasBody
        self.requestComplete = false
        self.bodySent = false
        self.responseStarted = false
        self.tried.removeAll(keepingCapacity: true)
        self.lastFailure = nil
        self.dispatch()
    }

    private func forward(_ part: HTTPServerRequestPart) {
        if case .end = part { self.requestComplete = true }
        if self.state == .forwarding, let upstream = self.upstream {
            self.send(part, to: upstream)
            self.upstreamNeedsFlush = true
        } else {
            if case .body(let buffer) = part { self.bufferedBytes += buffer.readableBytes }
            self.buffered.append(part)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A read that left the handler idle brought part of a request head (a whole one would have started a
        // request): that starts the header_read clock, for the 408 of a client that stalls.
        let now = self.loop.now
        self.lastActivity = now
        if self.state == .idle && !self.sawBytes {
            self.sawBytes = true
            self.headStarted = now
        }
        if self.upstreamNeedsFlush {
            self.upstreamNeedsFlush = false
            self.upstream?.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Chooses a real server (not one already tried for this request) and sends the request to it.
    private func dispatch() {
        guard let head = self.head else { return }
        let key = self.hashKey(head)
        guard
            let backend = self.service.schedule(
                key: key, remote: self.client.remote, now: self.loop.seconds,
                excluding: self.tried
            )
        else {
            // Nothing left to try: after failures, say what failed; with no server at all, 503.
            self.respondError(
                self.lastFailure ?? .serviceUnavailable, close: !self.requestComplete || self.lastFailure != nil)
            return
        }
        self.tried.append(backend.server.id)
        self.backend = backend
        if !self.isUpgrade,
            let connection = self.loop.httpPool.take(service: self.serviceID, server: backend.server.id)
        {
            connection.unpark(for: self)
            self.attach(connection)
            return
        }
        self.connect(backend)
    }

    private func connect(_ backend: Backend) {
        self.state = .connecting
        Upstream.open(
            for: self, backend: backend, service: self.service, serviceID: self.serviceID, loop: self.loop,
            config: self.config,
            wanted: { self.state == .connecting && self.backend?.server.id == backend.server.id },
            attach: { connection in
                self.attach(connection)
                connection.flush()
            },
            failed: { timedOut in self.upstreamFailed(.connect(timedOut: timedOut)) }
        )
    }

    /// Writes a body part or the end of the request to the real server (the head goes in `attach`).
    private func send(_ part: HTTPServerRequestPart, to upstream: Upstream) {
        switch part {
        case .head:
            return
        case .body(let buffer):
            self.bodySent = true
            self.backend?.server.counters.bytesIn.wrappingAdd(buffer.readableBytes, ordering: .relaxed)
            upstream.write(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            upstream.write(.end(trailers))
            self.sentAt = self.loop.now
        }
    }

    private func attach(_ connection: Upstream) {
        self.state = .forwarding
        self.upstream = connection
        guard let head = self.head else { return }
        connection.write(.head(head))
        for part in self.buffered {
            self.send(part, to: connection)
        }
        self.buffered.removeAll(keepingCapacity: true)
        self.bufferedBytes = 0
        self.sentAt = self.loop.now
        self.upstreamNeedsFlush = true
        if self.readPending { self.read(context: self.context!) }
    }

    // MARK: upstream → client

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context = self.context else { return }
        self.lastActivity = self.loop.now
        switch part {
        case .head(let head):
            if head.status.code < 200 && head.status != .switchingProtocols {
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)  // 100 Continue, 103 Early Hints
                return
            }
            self.responseStarted = true
            if let backend = self.backend {
                let status = Int(head.status.code)
                backend.server.counters.countResponse(status: status)
                if status >= 500 {
                    self.service.failed(backend, "status \(status)", is5xx: true)
                } else {
                    self.service.succeeded(backend)
                }
            }
            if self.isUpgrade && head.status == .switchingProtocols {
                var head = head
                head.version = .http1_1
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                self.state = .tunnel
                return
            }
            if !head.isKeepAlive { self.upstreamReusable = false }
            if self.clientVersion == .http1_0, !head.headers.contains(name: "content-length") {
                // An HTTP/1.0 client learns the end of a body without a length by the close.
                self.keepAlive = ConnectionReuse.keepsAlive(after: self.keepAlive, responseEndsByClose: true)
            }
            let clientHead = HTTPHead.clientResponse(head, version: self.clientVersion, keepAlive: self.keepAlive)
            context.write(self.wrapOutboundOut(.head(clientHead)), promise: nil)
        case .body(let buffer):
            self.backend?.server.counters.bytesOut.wrappingAdd(buffer.readableBytes, ordering: .relaxed)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if self.state == .tunnel {
                self.becomeTunnel(context)
                return
            }
            self.finish(context, trailers: trailers)
        }
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    private func finish(_ context: ChannelHandlerContext, trailers: HTTPHeaders?) {
        self.backend?.release()
        self.backend = nil
        if let upstream = self.upstream {
            self.upstream = nil
            if !(self.upstreamReusable && self.requestComplete
                && upstream.park(limit: self.config.maxIdlePerServer))
            {
                upstream.close()
            }
        }
        self.upstreamReusable = true
        self.head = nil
        if !self.keepAlive || !self.requestComplete {
            self.state = .closed
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        // Flush here: the upstream is parked already, so its read-complete no longer reaches this handler.
        context.writeAndFlush(self.wrapOutboundOut(.end(trailers)), promise: nil)
        self.state = .idle
        self.lastActivity = self.loop.now
        self.drainPending(context)
    }

    private func drainPending(_ context: ChannelHandlerContext) {
        while self.state == .idle
            || ((self.state == .forwarding || self.state == .connecting) && !self.requestComplete),
            let part = self.pending.popFirst()
        {
            self.handle(part)
        }
        if self.upstreamNeedsFlush {
            self.upstreamNeedsFlush = false
            self.upstream?.flush()
        }
        if self.readPending && self.pending.count < Self.maxPendingParts {
            self.read(context: context)
        }
    }

    /// The upstream connection closed or failed before the response ended.
    func upstreamClosed(_ connection: Upstream, error: Error?) {
        guard self.upstream === connection else { return }
        self.upstream = nil
        if !self.responseStarted, let backend = self.backend {
            self.service.failed(backend, "connection lost before the response")
        }
        self.upstreamFailed(.lostBeforeResponse)
    }

    /// Lets go of the real server and does what `RetryDecision` says: another server (a connect that failed sent
    /// nothing; a replayable request goes again whole), an error answer, or a close (part of the response is out).
    private func upstreamFailed(_ failure: UpstreamFailure) {
        self.backend?.release()
        self.backend = nil
        let decision = RetryDecision.decide(
            failure, replayable: self.replayable, bodySent: self.bodySent,
            tried: self.tried.count, retries: self.config.retries,
            responseStarted: self.responseStarted)
        switch decision {
        case .close:
            self.state = .closed
            self.context?.close(promise: nil)
        case .retry(let otherwise):
            self.lastFailure = HTTPResponseStatus(statusCode: otherwise)
            self.service.logger.debug("retrying on another real server", metadata: ["service": "\(self.config.name)"])
            self.state = .connecting
            self.dispatch()
            if self.upstream != nil { self.upstream?.flush() }
        case .respond(let status):
            self.respondError(HTTPResponseStatus(statusCode: status), close: true)
        }
    }

    private func abortUpstream() {
        self.backend?.release()
        self.backend = nil
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.close()
        }
    }

    func upstreamWritabilityChanged() {
        if let upstream = self.upstream, upstream.isWritable, self.readPending, let context = self.context {
            self.read(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.upstream?.resumeRead()
            if self.readPending { self.read(context: context) }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: reads

    /// Pipelined parts queued before reads stop: enough for any real client, a bound for an abusive one.
    static let maxPendingParts = 64

    func read(context: ChannelHandlerContext) {
        // Reads stay on while a request waits for its response: a client that does not pipeline sends nothing
        // meanwhile, and withholding the read would cost two epoll_ctl calls per request. They stop when the real
        // server cannot take more body, when pipelined requests pile up, or while answers wait for a client that
        // does not read (its socket is not writable): a client that pipelines and never reads holds one socket
        // buffer of answers, not all of them.
        let allowed: Bool
        switch self.state {
        case .idle, .connecting, .forwarding:
            guard context.channel.isWritable else {
                self.readPending = true
                return
            }
            fallthrough
        case .tunnel, .closed:
            allowed = self.readAllowed()
        }
        if allowed {
            self.readPending = false
            context.read()
        } else {
            self.readPending = true
        }
    }

    /// Whether the request's state lets the client's bytes in (the client being writable aside).
    private func readAllowed() -> Bool {
        let allowed: Bool
        switch self.state {
        case .idle:
            allowed = self.pending.count < Self.maxPendingParts
        // While the request's own remaining parts wait in `pending` (a pipelined request started from there), it
        // needs no more bytes: reading on would let a client that pipelines queue any number of requests.
        case .connecting:
            allowed =
                self.requestComplete
                ? self.pending.count < Self.maxPendingParts : self.pending.isEmpty && self.bufferedBytes < 65536
        case .forwarding:
            allowed =
                self.requestComplete
                ? self.pending.count < Self.maxPendingParts
                : self.pending.isEmpty && (self.upstream?.isWritable ?? false)
        case .tunnel, .closed:
            allowed = true
        }
        return allowed
    }

    // MARK: errors and timeouts

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let status: HTTPResponseStatus?
        switch error {
        case let parserError as HTTPParserError:
            status = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        case is ByteToMessageDecoderError.PayloadTooLargeError:
            status = .requestHeaderFieldsTooLarge
        default:
            status = nil
        }
        if let status, self.state == .idle || !self.responseStarted {
            self.abortUpstream()
            self.respondError(status, close: true)
        } else {
            self.abortUpstream()
            self.state = .closed
            context.close(promise: nil)
        }
    }

    func drain() {
        switch ConnectionReuse.onDrain(
            betweenRequests: self.state == .idle,
            bytesPending: self.sawBytes
                || !self.pending.isEmpty)
        {
        case .closeNow:
            self.state = .closed
            self.context?.close(promise: nil)
        case .closeAfterResponse:
            self.keepAlive = false  // the response in flight goes out with Connection: close
        }
    }

    func checkTimeout(now: UInt64) {
        let phase: ExchangeTimeouts.Phase
        switch self.state {
        case .idle:
            phase = .betweenRequests(headSince: self.sawBytes ? self.headStarted : nil, lastActivity: self.lastActivity)
        case .connecting, .forwarding:
            // NIO's bootstrap times the connect itself; the server owes bytes once the request is whole or its
            // response has begun.
            phase = .exchanging(
                requestSince: self.requestStarted, bodyComplete: self.requestComplete,
                awaitingServer: self.state == .forwarding && (self.responseStarted || self.requestComplete),
                sentAt: self.sentAt, lastActivity: self.lastActivity)
        case .tunnel, .closed:
            return
        }
        switch self.timeouts.check(phase, now: now) {
        case .none, .connect:
            return
        case .idle:
            self.state = .closed
            self.context?.close(promise: nil)
        case .headerRead:
            self.respondError(.requestTimeout, close: true)
        case .body:
            self.abortUpstream()
            if self.responseStarted {
                self.state = .closed
                self.context?.close(promise: nil)
            } else {
                self.respondError(.requestTimeout, close: true)
            }
        case .server:
            if let upstream = self.upstream {
                self.upstream = nil
                upstream.close()
            }
            self.upstreamFailed(.serverTimeout)
        }
    }

    /// A short error response; the connection closes after it when `close` is set.
    private func respondError(_ status: HTTPResponseStatus, close: Bool) {
        guard let context = self.context, self.state != .closed else { return }
        let shouldClose = close || !self.keepAlive
        let page = ErrorPage(status: status, close: shouldClose)
        let head = page.head
        let body = context.channel.allocator.buffer(string: page.body)
        self.head = nil
        self.buffered.removeAll()
        self.bufferedBytes = 0
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if shouldClose {
            self.state = .closed
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            self.state = .idle
            self.drainPending(context)
        }
    }

    // MARK: upgrade

    /// After a 101: both pipelines lose their HTTP handlers and become a byte tunnel.
    private func becomeTunnel(_ context: ChannelHandlerContext) {
        guard let upstream = self.upstream, let upstreamChannel = upstream.channel, let backend = self.backend else {
            context.close(promise: nil)
            return
        }
        self.upstream = nil
        self.backend = nil
        upstream.owner = nil
        self.loop.unregister(self)
        upstreamChannel.closeFuture.whenComplete { _ in backend.release() }
        let clientChannel = context.channel
        let timer = TunnelTimer(loop: self.loop, idle: self.config.timeouts.idle)
        timer.onExpiry = {
            clientChannel.close(promise: nil)
            upstreamChannel.close(promise: nil)
        }
        self.loop.register(timer)
        let heads = (PipelineHeadHandler(), PipelineHeadHandler())
        let (clientGlue, upstreamGlue) = GlueHandler.matchedPair(
            timer: timer, heads: heads,
            counters: backend.server.counters)
        context.flush()
        do {
            let up = upstreamChannel.pipeline.syncOperations
            try up.addHandler(heads.1, position: .first)
            try up.addHandler(upstreamGlue)
            let client = context.pipeline.syncOperations
            try client.addHandler(heads.0, position: .first)
            try client.addHandler(clientGlue)
            // Leftover bytes of the decoders (frames sent right after the handshake) flow into the glue.
            up.removeHandler(upstream, promise: nil)
            up.removeHandler(
                context: try up.context(handlerType: ByteToMessageHandler<HTTPResponseDecoder>.self), promise: nil)
            up.removeHandler(context: try up.context(handlerType: HTTPRequestEncoder.self), promise: nil)
            client.removeHandler(context: context, promise: nil)
            client.removeHandler(
                context: try client.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
            client.removeHandler(context: try client.context(handlerType: HTTPResponseEncoder.self), promise: nil)
            // Reads were held back while the handshake was in flight; the glue takes over from here.
            clientChannel.read()
            upstreamChannel.read()
        } catch {
            clientChannel.close(promise: nil)
            upstreamChannel.close(promise: nil)
        }
    }

    // MARK: hashing

    private func hashKey(_ head: HTTPRequestHead) -> UInt32 {
        let config = self.config
        guard config.scheduler.isHashing else { return self.client.sourceKey }
        let value: Substring?
        switch config.effectiveHash {
        case .source: return self.client.sourceKey
        case .destination: value = head.headers.first(name: "host").map { Substring($0) }
        case .path:
            value = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
        case .query(let name): value = HTTPHead.queryValue(head.uri, name)
        case .header(let name): value = head.headers.first(name: name).map { Substring($0) }
        case .cookie(let name): value = HTTPHead.cookieValue(head.headers, name)
        }
        guard let value else { return self.client.sourceKey }  // key missing: hash the client instead
        return KeyHash.string(value.utf8)
    }
}

extension HTTPProxyHandler: RemovableChannelHandler {}
