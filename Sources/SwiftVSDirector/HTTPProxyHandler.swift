import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftVSCore

/// The client side of an `http` virtual service for what the relay hands over (bodies, upgrades, HTTP/1.0, field
/// hashing): reads requests as NIOHTTP1 parts, and streams request and response between the client and a pooled
/// upstream connection on the same event loop.
///
/// Every decision of the exchange (the next step, retries, keep-alive, timeouts, drain, error pages, the real
/// server's in-flight slot) is `HTTPExchange`'s, the same machine the relay runs: this driver feeds it what the
/// channels did and performs what it answers (`perform`).
///
/// Reads from the client are withheld (the `read` event is not passed on) while a request waits for its response
/// or the real server cannot take more bytes; pipelined requests wait in `pending`.
final class HTTPProxyHandler: ChannelDuplexHandler, SweptConnection, ExchangeDriver {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Upstream = UpstreamConnection

    static func addCodecs(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(HTTPRequestEncoder())
        try pipeline.addHandler(
            ByteToMessageHandler(
                HTTPResponseDecoder(
                    leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward
                )))
    }

    let service: VirtualService
    /// The service's config as it was when this connection came: a reload applies to new connections.
    let config: VirtualServiceConfig
    /// The pool the request in flight goes to: the service itself, or the one its route chose.
    var pool: VirtualService
    private var poolConfig: VirtualServiceConfig
    private var poolID: ObjectIdentifier
    /// The route's response header edits, for the request in flight.
    private var responseEdits: RouteConfig?
    let loop: LoopContext
    private var context: ChannelHandlerContext?
    var exchange: HTTPExchange
    /// Set once the pipelines became a tunnel, or the channel closed: nothing more goes through this handler.
    private var done = false

    // The request in flight.
    private var head: HTTPRequestHead?
    private var upstream: Upstream?
    var slot: RealServerSlot?
    private var buffered: [HTTPServerRequestPart] = []
    private var bufferedBytes = 0
    /// The client has sent the request's end (its remaining parts are not read as the next request's).
    private var requestComplete = false
    private var isUpgrade = false
    private var upstreamNeedsFlush = false
    /// The client's version, which its response is written in.
    private var clientVersion: HTTPVersion = .http1_1
    var failureDetail = ""
    var access = AccessFacts()
    lazy var clientText = AccessRecord.address(self.client.remote)
    var nowNanos: UInt64 { self.loop.now }
    var queueTicket: UInt64?

    func queueDelivery() -> @Sendable (RealServerSlot) -> Void {
        let handler = NIOLoopBound(self, eventLoop: self.loop.eventLoop)
        let loop = self.loop
        return { slot in
            loop.eventLoop.execute {
                let handler = handler.value
                handler.delivered(slot, nanos: loop.now)
                // Outside a read cycle, no channelReadComplete flushes what a pooled connection was given.
                if handler.upstreamNeedsFlush {
                    handler.upstreamNeedsFlush = false
                    handler.upstream?.flush()
                }
            }
        }
    }

    // Pipelined parts of later requests.
    private var pending = CircularBuffer<HTTPServerRequestPart>()
    private var readPending = false

    var sweepIndex = -1

    private var client = ClientPeer()
    private let defaultHost: String
    /// The client came over TLS: `X-Forwarded-Proto: https`.
    private let secure: Bool

    /// The relay engine counted the connection when it accepted it.
    /// The client, as a trusted front's PROXY header named it; nil: the channel's peer.
    private let proxiedClient: SocketAddress?

    init(service: VirtualService, loop: LoopContext, secure: Bool = false, client: SocketAddress? = nil) {
        self.service = service
        self.proxiedClient = client
        self.secure = secure
        let config = service.config
        self.config = config
        self.pool = service
        self.poolConfig = config
        self.poolID = ObjectIdentifier(service)
        self.loop = loop
        // NIO's connector times connects itself (`UpstreamConnection.open`).
        self.exchange = HTTPExchange(
            HTTPExchange.Settings(config.timeouts, retries: config.retries, timesConnects: false), now: loop.now)
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
        guard self.sweepIndex < 0, !self.done else { return }
        self.client = ClientPeer(self.proxiedClient ?? context.channel.remoteAddress, self.config)
        self.exchange.touch(self.loop.now)
        self.loop.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            var action = self.exchange.handle(.clientClosed)
            action.next = .wait
            self.perform(action)
        }
        self.loop.unregister(self)
        self.pending.removeAll()
        context.fireChannelInactive()
    }

    // MARK: client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.handle(self.unwrapInboundIn(data))
    }

    private func handle(_ part: HTTPServerRequestPart) {
        guard !self.done else { return }
        switch self.exchange.state {
        case .idle:
            guard case .head(let head) = part else { return }  // stray parts of a request we answered early
            self.start(head)
        case .choosing, .queued, .connecting, .exchanging:
            if self.requestComplete {
                self.pending.append(part)
                return
            }
            self.forward(part)
        case .tunnel, .closing, .closed:
            return
        }
    }

    private func start(_ head: HTTPRequestHead) {
        self.clientVersion = head.version.major == 1 && head.version.minor == 0 ? .http1_0 : .http1_1
        let (upstreamHead, facts) = HTTPHead.upstreamRequest(
            head, clientIP: self.client.ip, forwardedFor: self.config.forwardedFor, defaultHost: self.defaultHost,
            forwardedProto: self.secure ? "https" : nil
        )
        if let problem = facts.invalid {
            self.service.logger.debug(
                "bad request", metadata: ["service": "\(self.config.name)", "problem": "\(problem)"])
            return self.perform(self.exchange.handle(.malformed(status: 400)))
        }
        self.head = upstreamHead
        if self.service.accessLog != nil {
            self.access.method = head.method.rawValue
            self.access.target = head.uri
            self.access.version = "HTTP/\(head.version.major).\(head.version.minor)"
        }
        self.isUpgrade = facts.isUpgrade
        self.requestComplete = false
        if self.loop.draining { _ = self.exchange.handle(.drain(bytesPending: true)) }
        // An HTTP/2 stream carries one request; the connection's life is HTTP/2's, so the stream "keeps alive" and
        // ends when both sides have ended it.
        let keepAlive = head.version.major == 2 || head.isKeepAlive
        let request = HTTPExchange.Request(
            idempotent: HTTPHead.isIdempotent(head.method), keepAlive: keepAlive, upgrade: facts.isUpgrade,
            complete: !facts.hasBody)
        let answer = self.route(head)
        let action = self.exchange.handle(.request(request, now: self.loop.now))
        if let answer { return self.perform(self.exchange.handle(.answer(status: answer))) }
        self.perform(action)
    }

    /// Where the request goes: the pool its route chose (`self.pool`, with the route's edits on `self.head`), or a
    /// status the director answers itself (a redirect, a fixed status, 404 when no route matches).
    private func route(_ head: HTTPRequestHead) -> Int? {
        self.responseEdits = nil
        if let redirect = self.config.httpsRedirect {
            self.redirectTo = redirect.location(host: head.headers.first(name: "host"), target: head.uri)
            return self.redirectTo == nil ? 400 : redirect.status
        }
        guard let routing = self.service.routing else { return nil }
        let request = RouteTable.Request(
            host: head.headers.first(name: "host"), target: head.uri, method: head.method.rawValue,
            header: { head.headers.first(name: $0) })
        guard let index = routing.table.route(request) else { return 404 }
        let route = routing.table.routes[index]
        self.access.route = index
        switch route.action {
        case .respond(let status):
            return status
        case .redirect(let location, let status, let keepPath):
            self.redirectTo =
                keepPath ? (location.hasSuffix("/") ? String(location.dropLast()) : location) + head.uri : location
            return status
        case .pool(let name):
            guard let pool = routing.pools[name] else { return 503 }
            self.access.pool = name
            if pool !== self.pool {
                self.pool = pool
                self.poolConfig = pool.config
                self.poolID = ObjectIdentifier(pool)
            }
        }
        if var upstream = self.head {
            upstream.uri = route.rewrite(upstream.uri)
            for name in route.removeRequestHeaders { upstream.headers.remove(name: name) }
            for header in route.setRequestHeaders {
                upstream.headers.replaceOrAdd(name: header.name, value: header.value ?? "")
            }
            self.head = upstream
        }
        if !route.setResponseHeaders.isEmpty || !route.removeResponseHeaders.isEmpty { self.responseEdits = route }
        return nil
    }

    /// The Location of the redirect being answered.
    private var redirectTo: String?

    private func forward(_ part: HTTPServerRequestPart) {
        if case .end = part {
            self.requestComplete = true
            _ = self.exchange.handle(.bodyEnded(now: self.loop.now))
        }
        if case .exchanging = self.exchange.state, let upstream = self.upstream {
            self.send(part, to: upstream)
            self.upstreamNeedsFlush = true
        } else {
            if case .body(let buffer) = part { self.bufferedBytes += buffer.readableBytes }
            self.buffered.append(part)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A read that left the exchange idle brought part of a request head (a whole one would have started a
        // request): that starts the header_read clock, for the 408 of a client that stalls.
        let now = self.loop.now
        self.exchange.touch(now)
        if self.exchange.state == .idle { _ = self.exchange.handle(.headBegun(now: now)) }
        if self.upstreamNeedsFlush {
            self.upstreamNeedsFlush = false
            self.upstream?.flush()
        }
        context.fireChannelReadComplete()
    }

    // MARK: the machine's actions

    /// Does what the exchange decided: the failure's count, the slot, the upstream connection, then the next step.
    func perform(_ action: HTTPExchange.Action) {
        self.settle(action)
        switch action.next {
        case .wait:
            return
        case .pick:
            guard let head = self.head else { return }
            self.pick(key: self.hashKey(head), remote: self.client.remote, now: self.loop.seconds, nanos: self.loop.now)
        case .connect:
            self.connect()
        case .send:
            self.sendHead()
        case .respond(let status, let close):
            self.respondError(HTTPResponseStatus(statusCode: status), close: close)
        case .closeAfterFlush, .closeNow:
            // Part of a response is out (or nothing can reach the client): the close tells the client it is cut.
            self.done = true
            self.context?.close(promise: nil)
        case .passInformational, .passHead, .tunnel, .nextRequest:
            // `upstreamRead` and `finish` feed the events that answer these, and perform them there.
            return
        }
    }

    func parkUpstream() {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        if !upstream.park(limit: self.poolConfig.maxIdlePerServer) { upstream.close() }
    }

    func closeUpstream() {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        upstream.close()
    }

    /// Takes a pooled connection to the chosen server (not for an upgrade: it becomes a tunnel), or opens one.
    private func connect() {
        guard let slot = self.slot else { return }
        if !self.isUpgrade, let connection = self.loop.httpPool.take(service: self.poolID, server: slot.server.id) {
            connection.unpark(for: self)
            return self.attach(connection)
        }
        let server = slot.server.id
        Upstream.open(
            for: self, slot: slot, serviceID: self.poolID, loop: self.loop, config: self.config,
            wanted: { self.exchange.state == .connecting(server: server) },
            attach: { connection in
                self.attach(connection)
                connection.flush()
            },
            failed: { failure, detail in
                self.failureDetail = detail
                self.perform(self.exchange.handle(.upstreamFailed(failure, headWithheld: false)))
            }
        )
    }

    private func attach(_ connection: Upstream) {
        self.upstream = connection
        self.perform(self.exchange.handle(.connected(now: self.loop.now)))
    }

    /// Writes the head and what has come of the body to the real server.
    private func sendHead() {
        guard let head = self.head, let connection = self.upstream else { return }
        connection.write(.head(head))
        for part in self.buffered {
            self.send(part, to: connection)
        }
        self.buffered.removeAll(keepingCapacity: true)
        self.bufferedBytes = 0
        _ = self.exchange.handle(.requestSent(now: self.loop.now))
        self.upstreamNeedsFlush = true
        if self.readPending, let context = self.context { self.read(context: context) }
    }

    /// Writes a body part or the end of the request to the real server (the head goes in `sendHead`).
    private func send(_ part: HTTPServerRequestPart, to upstream: Upstream) {
        switch part {
        case .head:
            return
        case .body(let buffer):
            _ = self.exchange.handle(.bodyForwarded)
            self.slot?.server.counters.bytesIn.wrappingAdd(buffer.readableBytes, ordering: .relaxed)
            self.access.bytesIn &+= buffer.readableBytes
            upstream.write(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            upstream.write(.end(trailers))
            _ = self.exchange.handle(.requestSent(now: self.loop.now))
        }
    }

    // MARK: upstream → client

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context = self.context else { return }
        self.exchange.touch(self.loop.now)
        switch part {
        case .head(let head):
            let status = Int(head.status.code)
            // An HTTP/1.0 client learns the end of a body without a length by the close.
            let endsByClose = self.clientVersion == .http1_0 && !head.headers.contains(name: "content-length")
            let response = HTTPExchange.Response(
                status: status, endsByClose: endsByClose && status >= 200, serverKeepsAlive: head.isKeepAlive)
            let action = self.exchange.handle(.response(response, now: self.loop.now))
            switch action.next {
            case .passInformational:
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)  // 100 Continue, 103 Early Hints
            case .tunnel:
                self.responded(status)
                var head = head
                head.version = .http1_1
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            case .passHead(let close):
                self.responded(status)
                var clientHead = HTTPHead.clientResponse(head, version: self.clientVersion, keepAlive: !close)
                if let edits = self.responseEdits {
                    for name in edits.removeResponseHeaders { clientHead.headers.remove(name: name) }
                    for header in edits.setResponseHeaders {
                        clientHead.headers.replaceOrAdd(name: header.name, value: header.value ?? "")
                    }
                }
                context.write(self.wrapOutboundOut(.head(clientHead)), promise: nil)
            default:
                // Not a response to pass on (a 101 nobody asked for, a status under 100).
                self.failureDetail = "bad response: status \(status)"
                self.perform(action)
            }
        case .body(let buffer):
            self.slot?.server.counters.bytesOut.wrappingAdd(buffer.readableBytes, ordering: .relaxed)
            self.access.bytesOut &+= buffer.readableBytes
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if case .tunnel = self.exchange.state {
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
        let action = self.exchange.handle(.responseEnded(serverReusable: true, now: self.loop.now))
        var upstreamOnly = action
        upstreamOnly.next = .wait
        self.perform(upstreamOnly)
        self.head = nil
        switch action.next {
        case .nextRequest:
            // Flush here: the upstream is parked already, so its read-complete no longer reaches this handler.
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers)), promise: nil)
            self.drainPending(context)
        case .closeAfterFlush:
            self.done = true
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            return
        }
    }

    private func drainPending(_ context: ChannelHandlerContext) {
        while !self.done, self.exchange.state == .idle || !self.requestComplete, let part = self.pending.popFirst() {
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
    func upstreamClosed(_ connection: Upstream) {
        guard self.upstream === connection else { return }
        self.upstream = nil
        self.failureDetail = "connection lost before the response"
        self.perform(self.exchange.handle(.upstreamFailed(.lostBeforeResponse, headWithheld: false)))
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
        if !self.done && !context.channel.isWritable {
            self.readPending = true
            return
        }
        if self.readAllowed() {
            self.readPending = false
            context.read()
        } else {
            self.readPending = true
        }
    }

    /// Whether the request's state lets the client's bytes in (the client being writable aside).
    private func readAllowed() -> Bool {
        if self.done { return true }
        switch self.exchange.state {
        case .idle:
            return self.pending.count < Self.maxPendingParts
        // While the request's own remaining parts wait in `pending` (a pipelined request started from there), it
        // needs no more bytes: reading on would let a client that pipelines queue any number of requests.
        case .choosing, .queued, .connecting:
            return self.requestComplete
                ? self.pending.count < Self.maxPendingParts : self.pending.isEmpty && self.bufferedBytes < 65536
        case .exchanging:
            return self.requestComplete
                ? self.pending.count < Self.maxPendingParts
                : self.pending.isEmpty && (self.upstream?.isWritable ?? false)
        case .tunnel, .closing, .closed:
            return true
        }
    }

    // MARK: errors and timeouts

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let status: Int?
        switch error {
        case let parserError as HTTPParserError:
            status = parserError == .headerOverflow ? 431 : 400
        case is ByteToMessageDecoderError.PayloadTooLargeError:
            status = 431
        default:
            status = nil
        }
        guard let status else {
            return self.perform(self.exchange.handle(.clientClosed))
        }
        self.perform(self.exchange.handle(.malformed(status: status)))
    }

    func drain() {
        self.perform(self.exchange.handle(.drain(bytesPending: !self.pending.isEmpty)))
    }

    func checkTimeout(now: UInt64) {
        guard !self.done else { return }
        let action = self.exchange.handle(.tick(now: now))
        if case .respond(504, _) = action.next, action.failure == nil { self.failureDetail = Self.serverTimedOut }
        self.perform(action)
    }

    /// The director's error page; the connection closes after it when `close` is set.
    private func respondError(_ status: HTTPResponseStatus, close: Bool) {
        guard let context = self.context else { return }
        let page = ErrorPage(status: status, close: close, location: self.redirectTo)
        self.redirectTo = nil
        let body = context.channel.allocator.buffer(string: page.body)
        self.head = nil
        self.buffered.removeAll()
        self.bufferedBytes = 0
        context.write(self.wrapOutboundOut(.head(page.head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if close {
            self.done = true
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            self.drainPending(context)
        }
    }

    // MARK: upgrade

    /// After a 101: both pipelines lose their HTTP handlers and become a byte tunnel.
    private func becomeTunnel(_ context: ChannelHandlerContext) {
        guard let upstream = self.upstream, let upstreamChannel = upstream.channel, let slot = self.slot else {
            self.perform(self.exchange.handle(.tunnelEnded))
            context.close(promise: nil)
            return
        }
        self.done = true
        self.upstream = nil
        upstream.owner = nil
        self.loop.unregister(self)
        // The tunnel keeps the server's slot until its upstream end closes; the exchange gives it back then.
        upstreamChannel.closeFuture.assumeIsolated().whenComplete { _ in
            self.perform(self.exchange.handle(.tunnelEnded))
        }
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
            counters: slot.server.counters)
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
        let config = self.poolConfig
        guard config.scheduler.isHashing || config.persistence?.key == .hash else { return self.client.sourceKey }
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
