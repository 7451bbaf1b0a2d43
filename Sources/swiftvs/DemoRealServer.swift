import Glibc
import SwiftVSSystem
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A small HTTP/1.1 real server for `swiftvs demo` and first experiments: it answers every request with a line
/// naming itself, so a client can see where the director sent it. `/bytes/N` streams N bytes;
/// `/demo/down?seconds=N` makes it refuse connections for N seconds (1-300), as a crashed and restarted server would.
public final class DemoRealServer: Sendable {
    public let name: String
    public let port: Int
    let host: String
    let group: EventLoopGroup
    /// When set, every request holds one of a fixed number of emulated workers for a fixed time.
    let workers: EmulatedWorkers?
    /// When above 0, every request first burns this many seconds of CPU on its event loop (a CPU-bound application,
    /// for the autoscaler's CPU metric).
    let cpuTime: Double
    private let listener = Mutex<Channel?>(nil)
    private let children = Mutex<[ObjectIdentifier: Channel]>([:])

    /// - Parameter capacity: emulate a server that can work on `workers` requests at once, each taking
    ///   `serviceTime` seconds (an application bound by its worker pool or database rather than by this
    ///   machine's CPU). Needs a one-thread `group`, so the workers' queue lives on one event loop.
    public static func start(
        name: String, host: String, port: Int, group: EventLoopGroup,
        capacity: (workers: Int, serviceTime: Double)? = nil, cpuTime: Double = 0
    ) async throws -> DemoRealServer {
        let server = DemoRealServer(
            name: name, host: host, port: port, group: group, cpuTime: cpuTime,
            workers: capacity.map {
                EmulatedWorkers(
                    loop: group.next(), count: $0.workers,
                    serviceTime: $0.serviceTime)
            })
        try await server.listenOrExplain()
        return server
    }

    private init(
        name: String, host: String, port: Int, group: EventLoopGroup, cpuTime: Double, workers: EmulatedWorkers?
    ) {
        self.workers = workers
        self.cpuTime = cpuTime
        self.name = name
        self.host = host
        self.port = port
        self.group = group
    }

    private func listen() async throws {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                self.children.withLock { $0[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in
                    _ = self.children.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoHandler(server: self))
                }
            }
            .bind(host: self.host, port: self.port).get()
        self.listener.withLock { $0 = channel }
    }

    /// Binds, saying which address failed and why when it cannot.
    private func listenOrExplain() async throws {
        do {
            try await self.listen()
        } catch {
            throw ListenError(
                ListenFailure.describe(
                    "\(self.host):\(self.port)", errno: (error as? IOError)?.errnoCode, fallback: "\(error)"))
        }
    }

    /// Closes the listener and every connection, and listens again after `seconds`.
    func goDown(seconds: Int) {
        let listener = self.listener.withLock { listener in
            defer { listener = nil }
            return listener
        }
        listener?.close(promise: nil)
        for channel in self.children.withLock({ Array($0.values) }) { channel.close(promise: nil) }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            try? await self.listen()
        }
    }

    public func stop() async {
        let listener = self.listener.withLock { $0 }
        try? await listener?.close()
    }
}

private final class DemoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: DemoRealServer
    var name: String { self.server.name }
    var head: HTTPRequestHead?

    init(server: DemoRealServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            if self.server.cpuTime > 0 && !head.uri.hasPrefix("/demo/") { CPUBurn.spin(seconds: self.server.cpuTime) }
            guard let workers = self.server.workers, !head.uri.hasPrefix("/demo/") else {
                self.respond(context: context, head: head)
                return
            }
            precondition(context.eventLoop === workers.loop, "emulated workers need a one-thread event loop group")
            workers.run {
                guard context.channel.isActive else { return }
                self.respond(context: context, head: head)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var headers = HTTPHeaders()
        headers.add(name: "X-Real-Server", value: self.name)
        if head.uri.hasPrefix("/demo/down") {
            let seconds = head.uri.split(separator: "=").last.flatMap { Int($0) } ?? 10
            let text = "\(self.name): down for \(min(max(seconds, 1), 300)) s\n"
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            let server = self.server
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                server.goDown(seconds: min(max(seconds, 1), 300))
            }
            return
        }
        if head.uri.hasPrefix("/bytes/"), let size = Int(head.uri.dropFirst(7)), size >= 0, size <= 1 << 30 {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(size))
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                promise: nil)
            var chunk = context.channel.allocator.buffer(capacity: 65536)
            chunk.writeRepeatingByte(0x61, count: 65536)
            var remaining = size
            while remaining > 0 {
                let n = min(remaining, chunk.readableBytes)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: 0, length: n)!))), promise: nil)
                remaining -= n
            }
        } else {
            // The client: as a proxy reports it (X-Forwarded-For), or the peer itself (direct, or kernel NAT).
            let forwarded =
                head.headers.first(name: "x-forwarded-for") ?? context.channel.remoteAddress?.ipAddress ?? "-"
            let text = "\(self.name): \(head.method.rawValue) \(head.uri) (client \(forwarded))\n"
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                promise: nil)
            if head.method != .HEAD {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            }
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}

/// A fixed pool of emulated workers, each busy for `serviceTime` per request; requests beyond the pool wait in
/// arrival order. Lives on one event loop.
final class EmulatedWorkers: @unchecked Sendable {
    let loop: EventLoop
    let count: Int
    let serviceTime: TimeAmount
    private var busy = 0
    private var waiting: [() -> Void] = []
    private var head = 0

    init(loop: EventLoop, count: Int, serviceTime: Double) {
        self.loop = loop
        self.count = max(1, count)
        self.serviceTime = .nanoseconds(Int64(serviceTime * 1e9))
    }

    /// Runs `job` when a worker has spent `serviceTime` on it. Call on `loop`.
    func run(_ job: @escaping () -> Void) {
        if self.busy < self.count {
            self.busy += 1
            self.serve(job)
        } else {
            self.waiting.append(job)
        }
    }

    private func serve(_ job: @escaping () -> Void) {
        self.loop.assumeIsolated().scheduleTask(in: self.serviceTime) {
            job()
            if self.head < self.waiting.count {
                let next = self.waiting[self.head]
                self.head += 1
                if self.head > 1024 && self.head * 2 > self.waiting.count {
                    self.waiting.removeFirst(self.head)
                    self.head = 0
                }
                self.serve(next)
            } else {
                self.busy -= 1
            }
        }
    }
}

/// A listener that could not bind, as the command line prints it.
struct ListenError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Work for the CPU: spins until this thread has used `seconds` of CPU time (not wall time, so a busy machine
/// stretches the request, as it would a real CPU-bound one).
enum CPUBurn {
    static func spin(seconds: Double) {
        let start = Self.threadCPU()
        var sink: UInt64 = 0
        while Self.threadCPU() - start < seconds {
            for i in 0..<2000 { sink = sink &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        }
        if sink == 42 { print("") }  // keeps the loop from being optimized away
    }

    static func threadCPU() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
