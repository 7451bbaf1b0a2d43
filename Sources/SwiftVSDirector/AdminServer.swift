import SwiftVSConfigKit
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwiftVSCore

/// A request to the admin API, read whole (bodies are small JSON).
struct AdminRequest: Sendable {
    var method: HTTPMethod
    var path: [String]
    var headers: HTTPHeaders
    var body: [UInt8]
}

/// An answer of the admin API.
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType = "application/json"
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) -> AdminResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return AdminResponse(status: status, body: Array(data) + [0x0A])
    }

    static func error(_ status: HTTPResponseStatus, _ message: String) -> AdminResponse {
        .json(["error": message], status: status)
    }
}

/// The admin API's routes: list and change services and real servers, reload, metrics. Transport-free, so the
/// routing can be tested without sockets.
///
///     GET    /api/services                          every service and its real servers
///     GET    /api/services/NAME                     one service
///     POST   /api/services/NAME/servers             add a real server: {"address": "ip:port", "weight": 1}
///     PATCH  /api/services/NAME/servers/ADDRESS     change one: {"weight": 0} or {"enabled": false}
///     DELETE /api/services/NAME/servers/ADDRESS     remove one
///     POST   /api/reload                            read the config file again
///     GET    /api/ha                                VRRP instances: state, priority, master, adverts
///     GET    /metrics                               Prometheus text
///     GET    /healthz                               200 while the director runs
struct AdminAPI: Sendable {
    let director: Director
    let token: String?

    struct ServerChange: Decodable {
        var address: String?
        var weight: Int?
        var upper: Int?
        var lower: Int?
        var enabled: Bool?
    }

    func handle(_ request: AdminRequest) async -> AdminResponse {
        if let token = self.token, !Self.authorized(request.headers, token: token) {
            var response = AdminResponse.error(
                .unauthorized,
                "this admin API needs Authorization: Bearer TOKEN "
                    + "(swiftvs adm --token, or SWIFTVS_ADMIN_TOKEN)")
            response.headers.append(("WWW-Authenticate", "Bearer realm=\"swiftvs\""))
            return response
        }
        let path = request.path
        switch (request.method, path.first) {
        case (.GET, "healthz"):
            return AdminResponse(status: .ok, contentType: "text/plain", body: Array("ok\n".utf8))
        case (.GET, "metrics"):
            return AdminResponse(
                status: .ok, contentType: "text/plain; version=0.0.4",
                body: Array(Metrics.text(self.director).utf8))
        case (.POST, "api") where path.count == 2 && path[1] == "reload":
            do {
                return .json(try await self.director.reloadFromFile())
            } catch {
                return .error(.unprocessableEntity, "\(error)")
            }
        case (.GET, "api") where path.count == 2 && path[1] == "ha":
            guard let ha = self.director.ha else { return .error(.notFound, "this director has no 'ha' section") }
            return .json(ha.status)
        case (_, "api") where path.count >= 2 && path[1] == "services":
            return self.services(request)
        default:
            return .error(.notFound, "no such endpoint: \(request.method) /\(path.joined(separator: "/"))")
        }
    }

    private func services(_ request: AdminRequest) -> AdminResponse {
        let path = request.path
        if path.count == 2 {
            guard request.method == .GET else { return .error(.methodNotAllowed, "use GET") }
            return .json(self.director.services.map { $0.status() })
        }
        guard let service = self.director.service(named: path[2]) else {
            return .error(.notFound, "no virtual service named '\(path[2])'")
        }
        if path.count == 3 {
            guard request.method == .GET else { return .error(.methodNotAllowed, "use GET") }
            return .json(service.status())
        }
        guard path[3] == "servers", path.count <= 5 else {
            return .error(.notFound, "no such endpoint: /\(path.joined(separator: "/"))")
        }
        let change: ServerChange
        if request.body.isEmpty {
            change = ServerChange()
        } else {
            do {
                change = try JSONDecoder().decode(ServerChange.self, from: Data(request.body))
            } catch {
                return .error(.badRequest, "the body is not the JSON expected: \(error)")
            }
        }
        do {
            if path.count == 4 {
                guard request.method == .POST else { return .error(.methodNotAllowed, "use POST to add a server") }
                guard let text = change.address else { return .error(.badRequest, "address: missing (ip:port)") }
                var server = RealServerConfig(address: try Endpoint(parsing: text))
                if let weight = change.weight { server.weight = weight }
                if let upper = change.upper { server.upper = upper }
                if let lower = change.lower { server.lower = lower }
                try service.addServer(server)
                return .json(service.status(), status: .created)
            }
            let address = try Endpoint(parsing: path[4])
            switch request.method {
            case .PATCH, .POST, .PUT:
                if let weight = change.weight { try service.setWeight(address, weight) }
                if let enabled = change.enabled { try service.setEnabled(address, enabled) }
                if change.weight == nil && change.enabled == nil {
                    return .error(.badRequest, "give weight and/or enabled, like {\"weight\": 0}")
                }
                return .json(service.status())
            case .DELETE:
                try service.removeServer(address)
                return .json(service.status())
            default:
                return .error(.methodNotAllowed, "use PATCH or DELETE")
            }
        } catch let error as EndpointError {
            return .error(.badRequest, "address: \(error)")
        } catch let error as VirtualService.ControlError {
            switch error {
            case .noSuchServer: return .error(.notFound, error.description)
            case .duplicate: return .error(.conflict, error.description)
            case .badWeight, .badAddress: return .error(.badRequest, error.description)
            }
        } catch {
            return .error(.badRequest, "\(error)")
        }
    }

    /// Compares the bearer token in constant time.
    static func authorized(_ headers: HTTPHeaders, token: String) -> Bool {
        guard let value = headers.first(name: "authorization"), value.lowercased().hasPrefix("bearer ") else {
            return false
        }
        let given = Array(value.dropFirst(7).utf8)
        let wanted = Array(token.utf8)
        var difference = UInt8(given.count == wanted.count ? 0 : 1)
        for index in wanted.indices {
            difference |= wanted[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    /// `/api/services/web/servers/127.0.0.1%3A8081` → `["api", "services", "web", "servers", "127.0.0.1:8081"]`.
    static func split(_ uri: String) -> [String] {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
    }
}

/// Reads one admin request at a time and answers it.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let api: AdminAPI
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    static let maxBody = 1 << 20

    init(api: AdminAPI) {
        self.api = api
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(let buffer):
            guard self.body.count + buffer.readableBytes <= Self.maxBody else {
                self.head = nil
                self.write(context, .error(.payloadTooLarge, "body over \(Self.maxBody) bytes"), keepAlive: false)
                return
            }
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let request = AdminRequest(
                method: head.method, path: AdminAPI.split(head.uri), headers: head.headers,
                body: self.body)
            let keepAlive = head.isKeepAlive
            let promise = context.eventLoop.makePromise(of: AdminResponse.self)
            let api = self.api
            promise.completeWithTask { await api.handle(request) }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                self.write(context, response, keepAlive: keepAlive)
            }
        }
    }

    private func write(_ context: ChannelHandlerContext, _ response: AdminResponse, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            self.wrapOutboundOut(
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: response.status,
                        headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The admin API as a `Service`: binds on start, closes on graceful shutdown.
public struct AdminService: Service {
    public let director: Director
    public let config: AdminConfig
    /// Called with the bound address (port 0 in tests).
    let onBound: @Sendable (SocketAddress) -> Void

    public init(
        director: Director, config: AdminConfig, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.director = director
        self.config = config
        self.onBound = onBound
    }

    public func run() async throws {
        let channel = try await AdminService.bind(director: self.director, config: self.config)
        if let address = channel.localAddress { self.onBound(address) }
        self.director.logger.info(
            "admin API listening",
            metadata: [
                "listen": "\(self.config.listen)", "token": "\(self.config.token == nil ? "none" : "required")",
            ])
        try? await gracefulShutdown()
        try? await channel.close()
    }

    public static func bind(director: Director, config: AdminConfig) async throws -> Channel {
        let api = AdminAPI(director: director, token: config.token)
        let address = try SocketAddress(ipAddress: config.listen.host, port: config.listen.port)
        do {
            return try await ServerBootstrap(group: director.group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(AdminHandler(api: api))
                    }
                }
                .bind(to: address).get()
        } catch {
            throw DirectorError(code: .bind, message: "admin.listen \(config.listen): \(error)")
        }
    }
}
