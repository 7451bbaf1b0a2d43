import NIOCore
import NIOPosix
import Synchronization

/// An HTTP/1.1 server with known behaviour, for checking that the bench measures what happened: a fixed delay per
/// response, every Nth response a 500, a stall, or no response at all. Written against raw bytes so that it shares
/// no code with the bench's client.
final class TrustServer: Sendable {
    struct Behaviour: Sendable {
        var delay: TimeAmount = .zero
        /// Every Nth request (1-based count over the whole server) gets a 500.
        var failEvery: Int? = nil
        /// Accept, read, never answer.
        var hang = false
        /// Responses due in [from, from + length) after start are held until the stall ends.
        var stall: (from: Double, length: Double)? = nil
    }

    let behaviour: Behaviour
    let group: EventLoopGroup
    let port: Int
    let started = NIODeadline.now()
    let requests = Atomic<Int>(0)
    /// Requests for paths starting with /a.
    let pathA = Atomic<Int>(0)
    private let listener: Mutex<Channel?>

    init(_ behaviour: Behaviour, group: EventLoopGroup) async throws {
        self.behaviour = behaviour
        self.group = group
        let box = Mutex<TrustServer?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let server = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.addHandler(TrustHandler(server: server))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.port = channel.localAddress?.port ?? 0
        self.listener = Mutex(channel)
        box.withLock { $0 = self }
    }

    /// Closes the listening socket: new connections are refused, open ones carry on.
    func stopAccepting() async {
        let channel = self.listener.withLock { l in
            defer { l = nil }; return l
        }
        try? await channel?.close()
    }

    func shutdown() async { await self.stopAccepting() }
}

final class TrustHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let server: TrustServer
    var pending: [UInt8] = []

    init(server: TrustServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.pending += buffer.readableBytesView
        // One response per complete request head (bodies are not sent by these tests).
        while let end = self.headEnd() {
            let head = String(decoding: self.pending[0..<end], as: UTF8.self)
            self.pending.removeFirst(end)
            if head.hasPrefix("GET /a") { self.server.pathA.add(1, ordering: .relaxed) }
            self.respond(context: context, close: head.lowercased().contains("connection: close"))
        }
    }

    func headEnd() -> Int? {
        guard self.pending.count >= 4 else { return nil }
        for i in 0...(self.pending.count - 4)
        where self.pending[i] == 13 && self.pending[i + 1] == 10 && self.pending[i + 2] == 13
            && self.pending[i + 3] == 10
        {
            return i + 4
        }
        return nil
    }

    func respond(context: ChannelHandlerContext, close: Bool) {
        let behaviour = self.server.behaviour
        let n = self.server.requests.add(1, ordering: .relaxed).newValue
        if behaviour.hang { return }
        let failed = behaviour.failEvery.map { n % $0 == 0 } ?? false
        let body = failed ? "failed\n" : "ok\n"
        let text =
            "HTTP/1.1 \(failed ? "500 Internal Server Error" : "200 OK")\r\nContent-Length: \(body.utf8.count)\r\n"
            + (close ? "Connection: close\r\n" : "") + "\r\n" + body
        var delay = behaviour.delay
        if let stall = behaviour.stall {
            let since = Double((NIODeadline.now() - self.server.started).nanoseconds) / 1e9
            if since >= stall.from && since < stall.from + stall.length {
                delay = delay + .nanoseconds(Int64((stall.from + stall.length - since) * 1e9))
            }
        }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let send = {
            let context = bound.value
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in
                if close { context.close(promise: nil) }
            }
        }
        if delay == .zero {
            send()
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) { send() }
        }
    }
}
