import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// An in-test real server on 127.0.0.1 (port chosen by the kernel) that can be killed abruptly: its listener and
/// every connection it accepted close at once, as when the process dies.
final class TestBackend: Sendable {
    enum Kind: Sendable {
        /// HTTP: `/` answers its name; `/delay/MS`, `/status/CODE`, `/bytes/N`, `/echo` (POST body back), `/headers`
        /// (the request line and headers it got), `/hang`
        /// (never answers), `/ws?room=R` (WebSocket room broadcast).
        case http
        /// TCP echo.
        case echo
        /// Canned HTTP/1 bytes per path, written as they are (see `RawResponder`): what the fast path must pass on.
        case raw
        /// A real server behind `proxy_protocol`: reads the PROXY header (parsed here by hand, not by the
        /// director's code), answers `v1|v2 SOURCE SPORT DESTINATION DPORT` and a newline, then echoes.
        case proxyReader
    }

    let name: String
    let group: MultiThreadedEventLoopGroup
    let listener: Mutex<Channel?> = Mutex(nil)
    let children: Mutex<[ObjectIdentifier: Channel]> = Mutex([:])
    let requests = Atomic<Int>(0)
    /// Requests being answered now, and the most at once (what `maxconn` bounds).
    let inFlight = Atomic<Int>(0)
    let peakInFlight = Atomic<Int>(0)
    /// What `/health` answers (health checks are not counted in `requests`).
    let healthStatus = Atomic<Int>(200)
    let healthBody = Mutex<String>("ok\n")
    /// When set, every request but `/health` gets a 500.
    let failing = Atomic<Bool>(false)
    let rooms = RoomHub()
    let port: Int
    let kind: Kind

    let bindHost: String

    init(name: String, kind: Kind = .http, port: Int = 0, bindHost: String = "127.0.0.1") async throws {
        self.name = name
        self.kind = kind
        self.bindHost = bindHost
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let holder = Holder()
        let channel = try await Self.bind(holder: holder, kind: kind, host: bindHost, port: port, group: self.group)
        self.port = channel.localAddress!.port!
        self.listener.withLock { $0 = channel }
        holder.backend.withLock { $0 = self }
    }

    /// Breaks the init cycle: child channels need the backend, which needs the bound port.
    final class Holder: Sendable {
        let backend = Mutex<TestBackend?>(nil)
    }

    private static func bind(
        holder: Holder, kind: Kind, host: String, port: Int, group: EventLoopGroup
    ) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 512)
            .childChannelOption(.allowRemoteHalfClosure, value: kind == .echo)
            .childChannelInitializer { channel in
                guard let backend = holder.backend.withLock({ $0 }) else {
                    return channel.close()
                }
                backend.children.withLock { $0[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in
                    _ = backend.children.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    switch kind {
                    case .echo:
                        try channel.pipeline.syncOperations.addHandler(EchoHandler())
                    case .raw:
                        try channel.pipeline.syncOperations.addHandler(RawResponder(name: backend.name))
                    case .proxyReader:
                        try channel.pipeline.syncOperations.addHandler(ProxyReader())
                    case .http:
                        let upgrader = NIOWebSocketServerUpgrader(
                            shouldUpgrade: { channel, head in
                                channel.eventLoop.makeSucceededFuture(head.uri.hasPrefix("/ws") ? HTTPHeaders() : nil)
                            },
                            upgradePipelineHandler: { channel, head in
                                let room = head.uri.split(separator: "=").last.map(String.init) ?? ""
                                return channel.eventLoop.makeCompletedFuture {
                                    // NIO's upgrader leaves the application's HTTP handler; frames must not reach it.
                                    let sync = channel.pipeline.syncOperations
                                    sync.removeHandler(
                                        context: try sync.context(handlerType: BackendHTTPHandler.self), promise: nil)
                                    try channel.pipeline.syncOperations.addHandler(
                                        RoomHandler(room: room, hub: backend.rooms, name: backend.name))
                                }
                            }
                        )
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                        )
                        try channel.pipeline.syncOperations.addHandler(BackendHTTPHandler(backend: backend))
                    }
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Closes the listener and every open connection, as a crash would.
    func kill() async {
        let listener = self.listener.withLock { l -> Channel? in
            defer { l = nil }
            return l
        }
        try? await listener?.close()
        let open = self.children.withLock { Array($0.values) }
        for channel in open {
            // SO_LINGER 0: the peer sees a reset, as when the process is killed.
            if let provider = channel as? SocketOptionProvider {
                _ = try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            }
            try? await channel.close()
        }
    }

    /// Listens again on the same port (a restarted real server).
    func restart() async throws {
        let holder = Holder()
        holder.backend.withLock { $0 = self }
        let channel = try await Self.bind(
            holder: holder, kind: self.kind, host: self.bindHost, port: self.port, group: self.group)
        self.listener.withLock { $0 = channel }
    }

    func shutdown() async {
        await self.kill()
        try? await self.group.shutdownGracefully()
    }

    var address: String { "127.0.0.1:\(self.port)" }
    var count: Int { self.requests.load(ordering: .relaxed) }
    var openConnections: Int { self.children.withLock { $0.count } }
}

final class BackendHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let backend: TestBackend
    var head: HTTPRequestHead?
    var body = ByteBuffer()

    init(backend: TestBackend) {
        self.backend = backend
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
        case .body(var chunk):
            self.body.writeBuffer(&chunk)
        case .end:
            guard let head = self.head else { return }
            if head.uri == "/health" {
                let status = HTTPResponseStatus(statusCode: self.backend.healthStatus.load(ordering: .relaxed))
                self.send(context: context, head: head, status: status, text: self.backend.healthBody.withLock { $0 })
                return
            }
            self.backend.requests.wrappingAdd(1, ordering: .relaxed)
            let now = self.backend.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
            if now > self.backend.peakInFlight.load(ordering: .relaxed) {
                self.backend.peakInFlight.store(now, ordering: .relaxed)
            }
            if self.backend.failing.load(ordering: .relaxed) {
                self.send(context: context, head: head, status: .internalServerError, text: self.backend.name)
                return
            }
            self.respond(context: context, head: head)
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri
        if path == "/hang" { return }
        if path.hasPrefix("/delay/"), let ms = Int64(path.dropFirst(7)) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                let (handler, context) = bound.value
                handler.send(context: context, head: head, status: .ok, text: handler.backend.name)
            }
            return
        }
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst(8)) {
            self.send(
                context: context, head: head, status: HTTPResponseStatus(statusCode: code), text: self.backend.name)
            return
        }
        if path.hasPrefix("/bytes/"), let size = Int(path.dropFirst(7)) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(size))
            headers.add(name: "X-Real-Server", value: self.backend.name)
            context.write(
                self.wrapOutboundOut(.head(.init(version: head.version, status: .ok, headers: headers))), promise: nil)
            self.stream(context: context, remaining: size)
            return
        }
        if path.hasPrefix("/headers") {
            // The request as the real server got it: the target, then each header as `name: value`.
            let lines =
                ["\(head.method.rawValue) \(head.uri)"] + head.headers.map { "\($0.name.lowercased()): \($0.value)" }
            self.send(context: context, head: head, status: .ok, text: lines.joined(separator: "\n"))
            return
        }
        if path == "/echo" {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(self.body.readableBytes))
            headers.add(name: "X-Real-Server", value: self.backend.name)
            context.write(
                self.wrapOutboundOut(.head(.init(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(self.body))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let xff = head.headers.first(name: "x-forwarded-for") ?? ""
        self.send(context: context, head: head, status: .ok, text: self.backend.name, extra: [("X-Seen-XFF", xff)])
    }

    /// Writes `remaining` bytes, at most 1 MiB ahead of the socket: a real server that streams.
    func stream(context: ChannelHandlerContext, remaining: Int) {
        var left = remaining
        var chunk = context.channel.allocator.buffer(capacity: 65536)
        chunk.writeRepeatingByte(0x5A, count: 65536)
        while left > 0 && context.channel.isWritable {
            let n = min(left, 65536)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: 0, length: n)!))), promise: nil)
            left -= n
        }
        if left == 0 {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(capacity: 0)))))
            .whenSuccess {
                // The write may complete inside writeAndFlush; continuing from here directly would recurse once per
                // 64 KiB and overflow the stack on a large body.
                loop.execute {
                    let (handler, context) = bound.value
                    handler.stream(context: context, remaining: left)
                }
            }
    }

    func send(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, text: String,
        extra: [(String, String)] = []
    ) {
        if head.uri != "/health" { self.backend.inFlight.wrappingSubtract(1, ordering: .relaxed) }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "X-Real-Server", value: self.backend.name)
        for (name, value) in extra { headers.add(name: name, value: value) }
        context.write(
            self.wrapOutboundOut(.head(.init(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        }
        if head.isKeepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            // As a real server does (RFC 9112 §9.6): the connection ends with this response.
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}

/// Answers each request head with canned bytes by path: `/chunked`, `/http10` (HTTP/1.0, body until close),
/// `/hop` (hop-by-hop headers, one named by Connection), `/early` (103 then 200), `/split` (the head in two writes
/// 50 ms apart), `/garbage` (not HTTP), `/head` (the request head it received, as the body); hostile ones: `/crlf`
/// (a bare CR in a header value that would split the response at the client), `/nul`, `/barelf` (a head with bare
/// LFs), `/clte` (Content-Length and chunked), `/bigchunk` (a chunk size of 21 hex digits).
final class RawResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let name: String
    var pending = ""

    init(name: String) { self.name = name }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.pending += String(buffer: self.unwrapInboundIn(data))
        while let end = self.pending.range(of: "\r\n\r\n") {
            let head = String(self.pending[..<end.upperBound])
            self.pending = String(self.pending[end.upperBound...])
            let path = head.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? "/"
            self.answer(context, path: path, head: head)
        }
    }

    private func write(_ context: ChannelHandlerContext, _ text: String) {
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: text)), promise: nil)
    }

    private func answer(_ context: ChannelHandlerContext, path: String, head: String) {
        switch path {
        case "/chunked":
            self.write(
                context,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Real-Server: \(self.name)\r\n\r\n"
                    + "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        case "/http10":
            self.write(context, "HTTP/1.0 200 OK\r\nX-Real-Server: \(self.name)\r\n\r\nuntil close")
            context.close(promise: nil)
        case "/hop":
            self.write(
                context,
                "HTTP/1.1 200 OK\r\nConnection: x-hop, keep-alive\r\nX-Hop: secret\r\n"
                    + "Keep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok")
        case "/early":
            self.write(
                context,
                "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        case "/split":
            self.write(context, "HTTP/1.1 200 OK\r\nX-Real-")
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(50)) {
                let (handler, context) = bound.value
                handler.write(context, "Server: \(handler.name)\r\nContent-Length: 5\r\n\r\nsplit")
            }
        case "/garbage":
            self.write(context, "NOT HTTP AT ALL\r\n\r\n")
        case "/crlf":
            self.write(context, "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok")
        case "/nul":
            self.write(context, "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 2\r\n\r\nok")
        case "/barelf":
            self.write(context, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
        case "/clte":
            self.write(
                context,
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "2\r\nok\r\n0\r\n\r\n")
        case "/bigchunk":
            self.write(context, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nok\r\n")
        default:
            self.write(context, "HTTP/1.1 200 OK\r\nContent-Length: \(head.utf8.count)\r\n\r\n\(head)")
        }
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // After a remote EOF NIO turns close(mode: .output) into a full close that drops pending writes:
            // wait until the echo is out.
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                bound.value.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The WebSocket connections of each room on one real server.
final class RoomHub: Sendable {
    let members = Mutex<[String: [ObjectIdentifier: Channel]]>([:])

    func join(_ room: String, _ channel: Channel) {
        self.members.withLock { $0[room, default: [:]][ObjectIdentifier(channel)] = channel }
    }

    func leave(_ room: String, _ channel: Channel) {
        _ = self.members.withLock { $0[room]?.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func everyone(in room: String) -> [Channel] {
        self.members.withLock { Array(($0[room] ?? [:]).values) }
    }
}

/// A room member: every text frame it sends goes to everyone in its room on this server, as "NAME: text".
final class RoomHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let room: String
    let hub: RoomHub
    let name: String

    init(room: String, hub: RoomHub, name: String) {
        self.room = room
        self.hub = hub
        self.name = name
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.hub.join(self.room, context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.hub.leave(self.room, context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let text = "\(self.name): \(String(buffer: frame.unmaskedData))"
            for member in self.hub.everyone(in: self.room) {
                let reply = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))
                member.writeAndFlush(reply, promise: nil)
            }
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }
}

/// Reads a PROXY header by the spec's own description, tells what it said, then echoes.
final class ProxyReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var bytes: [UInt8] = []
    private var done = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.done {
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
            return
        }
        self.bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard let (said, length) = self.parse() else { return }
        self.done = true
        var out = context.channel.allocator.buffer(string: said + "\n")
        out.writeBytes(self.bytes[length...])
        context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
    }

    /// nil until the whole header is in.
    private func parse() -> (String, Int)? {
        let signature: [UInt8] = [13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10]
        if self.bytes.starts(with: signature) {
            guard self.bytes.count >= 16 else { return nil }
            let length = Int(self.bytes[14]) << 8 | Int(self.bytes[15])
            guard self.bytes.count >= 16 + length else { return nil }
            let width = self.bytes[13] >> 4 == 1 ? 4 : 16
            func ip(_ at: Int) -> String {
                width == 4
                    ? self.bytes[at..<(at + 4)].map(String.init).joined(separator: ".")
                    : stride(from: at, to: at + 16, by: 2).map {
                        String(Int(self.bytes[$0]) << 8 | Int(self.bytes[$0 + 1]), radix: 16)
                    }.joined(separator: ":")
            }
            let ports = 16 + 2 * width
            let sport = Int(self.bytes[ports]) << 8 | Int(self.bytes[ports + 1])
            let dport = Int(self.bytes[ports + 2]) << 8 | Int(self.bytes[ports + 3])
            return ("v2 \(ip(16)) \(sport) \(ip(16 + width)) \(dport)", 16 + length)
        }
        guard let lf = self.bytes.firstIndex(of: 10) else { return nil }
        let fields = String(decoding: self.bytes[0..<(lf - 1)], as: UTF8.self).split(separator: " ")
        guard fields.count == 6, fields[0] == "PROXY" else { return ("not a PROXY header", lf + 1) }
        return ("v1 \(fields[2]) \(fields[4]) \(fields[3]) \(fields[5])", lf + 1)
    }
}
