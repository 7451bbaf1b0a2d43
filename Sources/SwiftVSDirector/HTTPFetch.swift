import NIOCore
import NIOHTTP1
import NIOPosix

/// A whole HTTP response, as a health check or `swiftvs adm` needs it.
public struct FetchedResponse: Sendable {
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
}

/// Why a fetch failed, worded for a health check's reason or an `adm` error.
public struct FetchError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The system error under it, when there is one (EMFILE tells the director's trouble from the server's).
    public var errno: Int32? = nil
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to its end: the health checks' GET and
/// `swiftvs adm`'s calls. Not the data plane's client, which pools and streams.
public enum HTTPFetch {
    public static func fetch(
        on eventLoop: EventLoop, to address: SocketAddress, method: HTTPMethod = .GET, path: String, host: String,
        headers extra: [(String, String)] = [], body: [UInt8]? = nil, timeout: TimeAmount, maxBody: Int = 1 << 20,
        tls: UpstreamTLS? = nil
    ) -> EventLoopFuture<FetchedResponse> {
        let promise = eventLoop.makePromise(of: FetchedResponse.self)
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.fail(FetchError(description: "timed out after \(Self.seconds(timeout))"))
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.handler()) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(FetchHandler(promise: promise, maxBody: maxBody))
                }
            }
            .connect(to: address)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(FetchError(description: Self.describe(error), errno: Self.errno(of: error)))
                case .success(let channel):
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                    var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
                    head.headers.add(name: "Host", value: host)
                    head.headers.add(name: "User-Agent", value: "swiftvs")
                    head.headers.add(name: "Connection", value: "close")
                    for (name, value) in extra { head.headers.add(name: name, value: value) }
                    if let body { head.headers.add(name: "Content-Length", value: String(body.count)) }
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    if let body {
                        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
                    }
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                }
            }
        return promise.futureResult
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let value = Double(amount.nanoseconds) / 1e9
        return value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }

    /// The errno under a connect's failure, if any.
    static func errno(of error: Error) -> Int32? {
        if let io = error as? IOError { return io.errnoCode }
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return Self.errno(of: first.error)
        }
        if let fetch = error as? FetchError { return fetch.errno }
        return nil
    }

    /// `connection refused` rather than NIO's type dump.
    static func describe(_ error: Error) -> String {
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET: return "connection reset"
            case ETIMEDOUT: return "connect timed out"
            case EHOSTUNREACH: return "host unreachable"
            case ENETUNREACH: return "network unreachable"
            default: return "\(io)"
            }
        }
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return Self.describe(first.error)
        }
        if case ChannelError.connectTimeout = error { return "connect timed out" }
        if let fetch = error as? FetchError { return fetch.description }
        return "\(error)"
    }
}

private final class FetchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<FetchedResponse>
    let maxBody: Int
    var head: HTTPResponseHead?
    var body: [UInt8] = []

    init(promise: EventLoopPromise<FetchedResponse>, maxBody: Int) {
        self.promise = promise
        self.maxBody = maxBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code >= 200 { self.head = head }
        case .body(let buffer):
            guard self.body.count + buffer.readableBytes <= self.maxBody else {
                self.promise.fail(FetchError(description: "response body over \(self.maxBody) bytes"))
                context.close(promise: nil)
                return
            }
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head = self.head else { return }
            self.promise.succeed(
                FetchedResponse(
                    status: Int(head.status.code), reason: head.status.reasonPhrase,
                    headers: head.headers, body: self.body))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(
            FetchError(
                description: self.head == nil
                    ? "connection closed before a response"
                    : "connection closed in the response body"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.promise.fail(FetchError(description: "bad response: \(HTTPFetch.describe(error))"))
        context.close(promise: nil)
    }
}

extension HTTPFetch {
    /// One request whose response body is handed over as it comes (a Kubernetes watch): `onHead` with the status,
    /// then `onBody` with each chunk. Completes when the server ends the response or closes; fails on a connect
    /// or TLS error. Closing the returned channel ends it early.
    public static func stream(
        on eventLoop: EventLoop, to address: SocketAddress, path: String, host: String,
        headers extra: [(String, String)] = [], timeout: TimeAmount, tls: UpstreamTLS? = nil,
        onHead: @escaping @Sendable (Int) -> Void, onBody: @escaping @Sendable (ByteBuffer) -> Void
    ) -> EventLoopFuture<(Channel, EventLoopFuture<Void>)> {
        let done = eventLoop.makePromise(of: Void.self)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.handler()) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        StreamHandler(done: done, onHead: onHead, onBody: onBody))
                }
            }
            .connect(to: address)
            .flatMapErrorThrowing { error in
                done.fail(error)
                throw FetchError(description: Self.describe(error), errno: Self.errno(of: error))
            }
            .map { channel in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
                head.headers.add(name: "Host", value: host)
                head.headers.add(name: "User-Agent", value: "swiftvs")
                for (name, value) in extra { head.headers.add(name: name, value: value) }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                return (channel, done.futureResult)
            }
    }
}

private final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let done: EventLoopPromise<Void>
    let onHead: @Sendable (Int) -> Void
    let onBody: @Sendable (ByteBuffer) -> Void

    init(
        done: EventLoopPromise<Void>, onHead: @escaping @Sendable (Int) -> Void,
        onBody: @escaping @Sendable (ByteBuffer) -> Void
    ) {
        self.done = done
        self.onHead = onHead
        self.onBody = onBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code >= 200 { self.onHead(Int(head.status.code)) }
        case .body(let buffer):
            self.onBody(buffer)
        case .end:
            self.done.succeed(())
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.done.succeed(())
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.done.fail(FetchError(description: HTTPFetch.describe(error)))
        context.close(promise: nil)
    }
}
