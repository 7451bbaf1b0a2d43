import NIOCore
import NIOHTTP1
import SwiftVSCore

/// The fast path of an `http` virtual service: plain requests (HTTP/1.1, no body, no upgrade; see
/// `HTTP1RequestHead`) go to a real server as the client's own bytes, less the Connection line and plus
/// X-Forwarded-For, and the response comes back as the real server's bytes, less its hop-by-hop lines; no
/// NIOHTTP1 on either side, no header Strings, one handler per pipeline.
///
/// A head that arrives in pieces is waited for, under `timeouts.header_read` (408). The first request that is
/// not plain (a body, an upgrade, HTTP/1.0, anything malformed or over the limits) hands the connection over, between requests, to the NIOHTTP1 proxy
/// (`HTTPProxyHandler`), which serves it from then on and answers the errors. Services that hash on a request
/// field (path, query, header, cookie, Host) use that proxy from the start.
final class FastHTTPProxyHandler: ChannelDuplexHandler, TimedConnection, UpstreamOwner {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias ResponsePart = ByteBuffer
    typealias RequestPart = ByteBuffer
    typealias Upstream = UpstreamConnection<FastHTTPProxyHandler>

    static func pool(_ loop: LoopContext) -> UpstreamPool<FastHTTPProxyHandler> { loop.fastPool }
    static func addCodecs(_ pipeline: ChannelPipeline.SynchronousOperations) throws {}

    /// True when a service's connections may start on the fast path.
    static func serves(_ config: VirtualServiceConfig) -> Bool {
        !config.scheduler.isHashing || config.effectiveHash == .source
    }

    enum State {
        case idle, connecting, forwarding, closed
    }

    let service: VirtualService
    let config: VirtualServiceConfig
    let serviceID: ObjectIdentifier
    let loop: LoopContext
    private var context: ChannelHandlerContext?
    private var state = State.idle

    /// Client bytes not yet used: a pipelined request behind the one in flight.
    private var inbound: ByteBuffer?
    private var readPending = false

    // The request in flight.
    /// What goes to the real server, kept until the response starts so that a retry can send it again.
    private var request: ByteBuffer?
    private var isHEAD = false
    private var replayable = false
    private var keepAlive = true
    private var upstream: Upstream?
    private var backend: Backend?
    private var tried: [Int] = []
    private var lastFailure: HTTPResponseStatus?

    // The response in flight.
    private var scanner = HTTPResponseScanner.forProxy()
    private var responseHead: ByteBuffer?
    private var headDone = false
    private var responseStarted = false
    private var upstreamReusable = true

    // Timeouts, on the loop's coarse clock.
    var registryIndex = -1
    private var lastActivity: UInt64 = 0
    private var sentAt: UInt64 = 0
    /// When the first bytes of a head that has not all arrived came (nil when there are none).
    private var headStarted: UInt64?
    private let idleNanos: UInt64
    private let headerNanos: UInt64
    private let serverNanos: UInt64

    private var client = ClientPeer()
    private var forwardedLine: [UInt8] = []
    private let maxHeadBytes: Int
    private let maxHeaders: Int

    /// `counted`: the relay engine accepted the connection and counted it.
    init(service: VirtualService, loop: LoopContext, counted: Bool = false) {
        self.service = service
        let config = service.config
        self.config = config
        self.serviceID = ObjectIdentifier(service)
        self.loop = loop
        if !counted { service.stats.connections.wrappingAdd(1, ordering: .relaxed) }
        self.idleNanos = UInt64(config.timeouts.idle * 1e9)
        self.headerNanos = UInt64(config.timeouts.headerRead * 1e9)
        self.serverNanos = UInt64(config.timeouts.server * 1e9)
        self.maxHeadBytes = config.limits.maxHeaderBytes
        self.maxHeaders = config.limits.maxHeaders
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
        guard self.registryIndex < 0, self.state == .idle else { return }
        self.client = ClientPeer(context.channel, self.config)
        if self.config.forwardedFor, let ip = self.client.ip {
            self.forwardedLine = Array("X-Forwarded-For: \(ip)\r\n".utf8)
        }
        self.lastActivity = self.loop.now
        self.loop.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.abortUpstream()
        self.state = .closed
        self.loop.unregister(self)
        self.inbound = nil
        context.fireChannelInactive()
    }

    // MARK: client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        if self.inbound == nil {
            self.inbound = bytes
        } else {
            var bytes = bytes
            self.inbound!.writeBuffer(&bytes)
        }
        if self.state == .idle { self.nextRequest(context) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.lastActivity = self.loop.now
        context.fireChannelReadComplete()
    }

    /// Starts the request at the front of `inbound`, or hands the connection over if it is not plain.
    private func nextRequest(_ context: ChannelHandlerContext) {
        guard var bytes = self.inbound else { return }
        if bytes.readableBytes == 0 {
            self.inbound = nil
            return
        }
        enum Scan { case plain(HTTP1RequestHead), partial, other }
        let scan: Scan = bytes.withUnsafeReadableBytes { raw in
            guard let end = HTTPResponseScanner.findHeadEnd(raw, from: 0) else {
                // Not all here yet: wait for the rest if it can still be a plain request.
                return raw.count < self.maxHeadBytes && HTTP1RequestHead.mayBecomePlain(raw) ? .partial : .other
            }
            guard end <= self.maxHeadBytes,
                  let head = HTTP1RequestHead.scan(UnsafeRawBufferPointer(rebasing: raw[0..<end]),
                                                   maxHeaders: self.maxHeaders) else { return .other }
            return .plain(head)
        }
        let head: HTTP1RequestHead
        switch scan {
        case .plain(let plain):
            head = plain
            self.headStarted = nil
        case .partial:
            if self.headStarted == nil { self.headStarted = self.loop.now }
            return
        case .other:
            self.handOver(context)
            return
        }
        // The request as it goes upstream: the head less its Connection line, plus X-Forwarded-For.
        var out = context.channel.allocator.buffer(capacity: head.length + self.forwardedLine.count)
        bytes.withUnsafeReadableBytes { raw in
            if let line = head.connectionLine {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[0..<line.lowerBound]))
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[line.upperBound..<(head.length - 2)]))
            } else {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[0..<(head.length - 2)]))
            }
        }
        out.writeBytes(self.forwardedLine)
        out.writeStaticString("\r\n")
        bytes.moveReaderIndex(forwardBy: head.length)
        self.inbound = bytes.readableBytes == 0 ? nil : bytes

        self.request = out
        self.isHEAD = head.isHEAD
        self.replayable = head.idempotent
        self.keepAlive = !head.close && !self.loop.draining
        self.responseStarted = false
        self.tried.removeAll(keepingCapacity: true)
        self.lastFailure = nil
        self.dispatch()
    }

    /// Chooses a real server (not one already tried for this request) and sends the request to it.
    private func dispatch() {
        guard let backend = self.service.schedule(
            key: self.client.sourceKey, remote: self.client.remote, now: self.loop.seconds, excluding: self.tried
        ) else {
            self.respondError(self.lastFailure ?? .serviceUnavailable, close: self.lastFailure != nil)
            return
        }
        self.tried.append(backend.server.id)
        self.backend = backend
        if let connection = self.loop.fastPool.take(service: self.serviceID, server: backend.server.id) {
            connection.unpark(for: self)
            self.attach(connection)
            connection.flush()
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
            failed: { timedOut in self.upstreamFailed(connectFailed: true, timedOut: timedOut) }
        )
    }

    private func attach(_ connection: Upstream) {
        self.state = .forwarding
        self.upstream = connection
        self.scanner.reset(headRequest: self.isHEAD)
        self.responseHead = nil
        self.headDone = false
        self.upstreamReusable = true
        if let request = self.request { connection.write(request) }
        self.sentAt = self.loop.now
    }

    // MARK: upstream → client

    func upstreamRead(_ bytes: ByteBuffer) {
        guard let context = self.context, self.state == .forwarding else { return }
        self.lastActivity = self.loop.now
        var bytes = bytes
        while bytes.readableBytes > 0 {
            if !self.headDone {
                // Gather the head; most responses bring it whole in one read.
                if self.responseHead != nil {
                    self.responseHead!.writeBuffer(&bytes)
                    bytes = self.responseHead!
                    self.responseHead = nil
                }
                let end = bytes.withUnsafeReadableBytes { HTTPResponseScanner.findHeadEnd($0, from: 0) }
                guard let end else {
                    if bytes.readableBytes > HTTPResponseScanner.maxHeadBytes {
                        self.badResponse("response head over 64 KiB")
                    } else {
                        self.responseHead = bytes
                    }
                    return
                }
                guard self.startResponse(context, &bytes, headLength: end) else { return }
                continue
            }
            // Body bytes: pass them on while the scanner finds where the response ends.
            let outcome = bytes.withUnsafeReadableBytes { self.scanner.feed($0) }
            switch outcome {
            case .needMore:
                self.backend?.server.counters.bytesOut.wrappingAdd(bytes.readableBytes, ordering: .relaxed)
                context.write(self.wrapOutboundOut(bytes), promise: nil)
                return
            case .complete(_, let keepAlive, let consumed):
                if consumed > 0 {
                    self.backend?.server.counters.bytesOut.wrappingAdd(consumed, ordering: .relaxed)
                    context.write(self.wrapOutboundOut(bytes.readSlice(length: consumed)!), promise: nil)
                }
                if !keepAlive { self.upstreamReusable = false }
                if bytes.readableBytes > 0 { self.upstreamReusable = false }  // bytes past the response: not HTTP
                self.finish(context)
                return
            case .invalid(let problem):
                self.badResponse(problem)
                return
            }
        }
    }

    /// Reads a whole response head at the front of `bytes` and writes it to the client; false when the exchange
    /// ended (a bad head).
    private func startResponse(_ context: ChannelHandlerContext, _ bytes: inout ByteBuffer, headLength: Int) -> Bool {
        // One pass over the head: the framing, for the body that follows, and the hop-by-hop lines.
        let outcome = bytes.withUnsafeReadableBytes {
            self.scanner.feed(UnsafeRawBufferPointer(rebasing: $0[0..<headLength]))
        }
        if case .invalid(let problem) = outcome {
            self.badResponse(problem)
            return false
        }
        let status = self.scanner.status
        guard status >= 100, status != 101 else {
            self.badResponse("status \(status)")
            return false
        }
        let informational = status < 200
        if !informational {
            self.headDone = true
            self.responseStarted = true
            if let backend = self.backend { self.service.responded(backend, status: status) }
            if self.scanner.readsUntilClose {
                self.keepAlive = false  // the client learns the end of the body by the close
                self.upstreamReusable = false
            }
        }
        var out = context.channel.allocator.buffer(capacity: headLength + 24)
        bytes.withUnsafeReadableBytes { raw in
            var start = 0
            if self.scanner.http10 {
                out.writeStaticString("HTTP/1.1")
                start = 8
            }
            for line in self.scanner.hopLines {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<line.lowerBound]))
                start = line.upperBound
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<(headLength - 2)]))
        }
        if !self.keepAlive && !informational { out.writeStaticString("Connection: close\r\n") }
        out.writeStaticString("\r\n")
        bytes.moveReaderIndex(forwardBy: headLength)
        // A small body that came with the head goes out in the same write.
        if case .complete(_, let keepAlive, _) = outcome, !informational {
            if !keepAlive { self.upstreamReusable = false }
            context.write(self.wrapOutboundOut(out), promise: nil)
            if bytes.readableBytes > 0 { self.upstreamReusable = false }
            self.finish(context)
            return false
        }
        if !informational, bytes.readableBytes > 0, bytes.readableBytes <= 4096 {
            let body = bytes.withUnsafeReadableBytes { self.scanner.feed($0) }
            switch body {
            case .needMore:
                self.backend?.server.counters.bytesOut.wrappingAdd(bytes.readableBytes, ordering: .relaxed)
                out.writeBuffer(&bytes)
                context.write(self.wrapOutboundOut(out), promise: nil)
                return true
            case .complete(_, let keepAlive, let consumed):
                self.backend?.server.counters.bytesOut.wrappingAdd(consumed, ordering: .relaxed)
                var slice = bytes.readSlice(length: consumed)!
                out.writeBuffer(&slice)
                context.write(self.wrapOutboundOut(out), promise: nil)
                if !keepAlive || bytes.readableBytes > 0 { self.upstreamReusable = false }
                self.finish(context)
                return false
            case .invalid(let problem):
                self.badResponse(problem)
                return false
            }
        }
        context.write(self.wrapOutboundOut(out), promise: nil)
        if informational {
            self.scanner.reset(headRequest: self.isHEAD)  // the final response follows
        }
        return true
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    private func finish(_ context: ChannelHandlerContext) {
        self.backend?.release()
        self.backend = nil
        self.request = nil
        if let upstream = self.upstream {
            self.upstream = nil
            if !(self.upstreamReusable && upstream.park(limit: self.config.maxIdlePerServer)) {
                upstream.close()
            }
        }
        if !self.keepAlive {
            self.state = .closed
            context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        // Flush here: the upstream is parked already, so its read-complete no longer reaches this handler.
        context.flush()
        self.state = .idle
        self.lastActivity = self.loop.now
        self.nextRequest(context)
        if self.readPending, self.state == .idle || self.state == .forwarding {
            self.read(context: context)
        }
    }

    /// The real server sent something that is not an HTTP/1.x response.
    private func badResponse(_ problem: String) {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        upstream.close()
        if self.responseStarted {
            self.backend?.release()
            self.backend = nil
            self.state = .closed
            self.context?.close(promise: nil)
            return
        }
        if let backend = self.backend { self.service.failed(backend, "bad response: \(problem)") }
        self.upstreamFailed(connectFailed: false, timedOut: false)
    }

    /// The upstream connection closed or failed before the response ended.
    func upstreamClosed(_ connection: Upstream, error: Error?) {
        guard self.upstream === connection, let context = self.context else { return }
        if self.headDone, case .complete(_, _, _)? = self.scanner.endOfStream() {
            // A body that runs until the server closes has ended.
            self.upstreamReusable = false
            self.finish(context)
            return
        }
        self.upstream = nil
        if self.responseStarted {
            self.backend?.release()
            self.backend = nil
            self.state = .closed
            context.close(promise: nil)
            return
        }
        if let backend = self.backend { self.service.failed(backend, "connection lost before the response") }
        self.upstreamFailed(connectFailed: false, timedOut: false)
    }

    private func upstreamFailed(connectFailed: Bool, timedOut: Bool) {
        self.backend?.release()
        self.backend = nil
        self.lastFailure = timedOut ? .gatewayTimeout : .badGateway
        if (connectFailed || self.replayable) && self.tried.count <= self.config.retries {
            self.service.logger.debug("retrying on another real server", metadata: ["service": "\(self.config.name)"])
            self.state = .connecting
            self.dispatch()
            return
        }
        self.respondError(self.lastFailure!, close: true)
    }

    private func abortUpstream() {
        self.backend?.release()
        self.backend = nil
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.close()
        }
    }

    func upstreamWritabilityChanged() {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.upstream?.resumeRead() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: reads

    /// Pipelined bytes held while a request is in flight before reads stop.
    static let maxPendingBytes = 65_536

    func read(context: ChannelHandlerContext) {
        let allowed: Bool
        switch self.state {
        case .idle, .closed: allowed = true
        case .connecting, .forwarding: allowed = (self.inbound?.readableBytes ?? 0) < Self.maxPendingBytes
        }
        if allowed {
            self.readPending = false
            context.read()
        } else {
            self.readPending = true
        }
    }

    // MARK: hand-over

    /// Puts the NIOHTTP1 proxy behind this handler, gives it the bytes not yet used, and leaves the pipeline.
    private func handOver(_ context: ChannelHandlerContext) {
        let sync = context.pipeline.syncOperations
        do {
            try sync.addHandlers(Director.httpHandlers(service: self.service, config: self.config, loop: self.loop,
                                                       counted: true),
                                 position: .last)
        } catch {
            context.close(promise: nil)
            return
        }
        self.state = .closed
        self.loop.unregister(self)
        let bytes = self.inbound
        self.inbound = nil
        let readPending = self.readPending
        // The bytes go on before this handler leaves: a removed context no longer reaches the next handler.
        if let bytes { context.fireChannelRead(NIOAny(bytes)) }
        context.fireChannelReadComplete()
        sync.removeHandler(context: context, promise: nil)
        if readPending { context.channel.read() }
    }

    // MARK: errors and timeouts

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.abortUpstream()
        self.state = .closed
        context.close(promise: nil)
    }

    func drain() {
        if self.state == .idle && (self.inbound?.readableBytes ?? 0) == 0 {
            self.state = .closed
            self.context?.close(promise: nil)
        } else {
            self.keepAlive = false
        }
    }

    func checkTimeout(now: UInt64) {
        switch self.state {
        case .idle:
            if let started = self.headStarted {
                if now &- started > self.headerNanos {
                    self.inbound = nil
                    self.respondError(.requestTimeout, close: true)
                }
            } else if now &- self.lastActivity > self.idleNanos {
                self.state = .closed
                self.context?.close(promise: nil)
            }
        case .forwarding:
            if now &- max(self.sentAt, self.lastActivity) > self.serverNanos {
                self.abortUpstream()
                if self.responseStarted {
                    self.state = .closed
                    self.context?.close(promise: nil)
                } else {
                    self.respondError(.gatewayTimeout, close: true)
                }
            }
        case .connecting, .closed:
            break
        }
    }

    /// A short error response, as the NIOHTTP1 proxy writes it; the connection closes after it when `close` is set.
    private func respondError(_ status: HTTPResponseStatus, close: Bool) {
        guard let context = self.context, self.state != .closed else { return }
        let shouldClose = close || !self.keepAlive
        var out = context.channel.allocator.buffer(capacity: 160)
        out.writeString(HTTPHead.errorResponse(status, close: shouldClose))
        self.request = nil
        if shouldClose {
            self.state = .closed
            context.writeAndFlush(self.wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            self.state = .idle
            self.nextRequest(context)
        }
    }
}

extension FastHTTPProxyHandler: RemovableChannelHandler {}
