import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// A small HTTP/1.1 real server for `swiftvs demo` and first experiments: it answers every request with a line
/// naming itself, so a client can see where the director sent it. `/bytes/N` streams N bytes.
public final class DemoRealServer: Sendable {
    public let name: String
    let group: EventLoopGroup
    let channel: Channel

    public static func start(name: String, host: String, port: Int, group: EventLoopGroup) async throws -> DemoRealServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoHandler(name: name))
                }
            }
            .bind(host: host, port: port).get()
        return DemoRealServer(name: name, group: group, channel: channel)
    }

    private init(name: String, group: EventLoopGroup, channel: Channel) {
        self.name = name
        self.group = group
        self.channel = channel
    }

    public var port: Int { self.channel.localAddress?.port ?? 0 }

    public func stop() async {
        try? await self.channel.close()
    }
}

private final class DemoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let name: String
    var head: HTTPRequestHead?

    init(name: String) {
        self.name = name
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var headers = HTTPHeaders()
        headers.add(name: "X-Real-Server", value: self.name)
        if head.uri.hasPrefix("/bytes/"), let size = Int(head.uri.dropFirst(7)), size >= 0, size <= 1 << 30 {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(size))
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
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
            let forwarded = head.headers.first(name: "x-forwarded-for") ?? "-"
            let text = "\(self.name): \(head.method.rawValue) \(head.uri) (client \(forwarded))\n"
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                          promise: nil)
            if head.method != .HEAD {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            }
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}
