import SwiftVSSystem
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

/// What the stats page reads each second: the services and HA at one moment.
struct Overview: Encodable {
    var services: [ServiceStatus]
    var ha: HAStatus?
    /// The autoscaled services.
    var scale: [ScaleStatus] = []

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.services, forKey: .services)
        try container.encode(self.ha, forKey: .ha)  // null, not absent, without HA
        try container.encode(self.scale, forKey: .scale)
    }

    enum CodingKeys: String, CodingKey { case services, ha, scale }
}

/// An answer of the admin API.
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType = "application/json"
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) -> AdminResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
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
///     GET    /                                      the live stats page (HTML; also /stats)
///     GET    /api/overview                          {"services": [...], "ha": {...} or null}, for the page
///     GET    /api/services                          every service and its real servers
///     GET    /api/services/NAME                     one service
///     POST   /api/services/NAME/servers             add a real server: {"address": "ip:port", "weight": 1}
///     PATCH  /api/services/NAME/servers/ADDRESS     change one: {"weight": 0} or {"enabled": false}
///     DELETE /api/services/NAME/servers/ADDRESS     remove one
///     POST   /api/reload                            read the config file again
///     GET    /api/ha                                VRRP instances: state, priority, master, adverts
///     GET    /api/scale                             autoscaled services: replicas, metrics, decisions
///     GET    /api/scale/NAME                        one of them
///     PATCH  /api/scale/NAME                        new bounds: {"min": 1, "max": 8}
///     GET    /metrics                               Prometheus text
///     GET    /healthz                               200 while the director runs
struct AdminAPI: Sendable {
    let director: Director
    /// Who may drive it over this transport (`AdminGuard`: Host, origin, content type, token).
    let guard_: AdminGuard

    struct ServerChange: Decodable {
        var address: String?
        var weight: Int?
        var upper: Int?
        var lower: Int?
        var enabled: Bool?
    }

    func handle(_ request: AdminRequest) async -> AdminResponse {
        let headers = request.headers
        let verdict = self.guard_.check(
            AdminGuard.Request(
                method: request.method.rawValue, host: headers.first(name: "host"),
                origin: headers.first(name: "origin"), fetchSite: headers.first(name: "sec-fetch-site"),
                contentType: headers.first(name: "content-type"), authorization: headers.first(name: "authorization")))
        if case .refuse(let status, let message, let authenticate) = verdict {
            var response = AdminResponse.error(HTTPResponseStatus(statusCode: status), message)
            if authenticate {
                // Basic first: a browser asks for it (any user name, the token as password); adm sends Bearer.
                response.headers.append(("WWW-Authenticate", "Basic realm=\"swiftvs\", charset=\"UTF-8\""))
                response.headers.append(("WWW-Authenticate", "Bearer realm=\"swiftvs\""))
            }
            return response
        }
        let path = request.path
        switch (request.method, path.first) {
        case (.GET, nil), (.GET, "stats"):
            return AdminResponse(
                status: .ok, contentType: "text/html; charset=utf-8", body: Array(StatsPage.html.utf8),
                headers: [
                    ("Cache-Control", "no-store"), ("Content-Security-Policy", "frame-ancestors 'none'"),
                    ("X-Content-Type-Options", "nosniff"),
                ])
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
        case (.GET, "api") where path.count == 2 && path[1] == "overview":
            return .json(
                Overview(
                    services: self.director.services.map { $0.status() }, ha: self.director.ha?.status,
                    scale: self.director.autoscaling.statuses))
        case (.GET, "api") where path.count == 2 && path[1] == "ha":
            guard let ha = self.director.ha else { return .error(.notFound, "this director has no 'ha' section") }
            return .json(ha.status)
        case (_, "api") where path.count >= 2 && path[1] == "services":
            return self.services(request)
        case (_, "api") where path.count >= 2 && path[1] == "scale":
            return self.scale(request)
        default:
            return .error(.notFound, "no such endpoint: \(request.method) /\(path.joined(separator: "/"))")
        }
    }

    struct ScaleChange: Decodable {
        var min: Int?
        var max: Int?
    }

    private func scale(_ request: AdminRequest) -> AdminResponse {
        let path = request.path
        let autoscaling = self.director.autoscaling
        if path.count == 2 {
            guard request.method == .GET else { return .error(.methodNotAllowed, "use GET") }
            return .json(autoscaling.statuses)
        }
        guard path.count == 3, let controller = autoscaling.controller(for: path[2]) else {
            let names = autoscaling.all.map(\.service.name)
            return .error(
                .notFound,
                "no autoscaled service named '\(path.count > 2 ? path[2] : "")'"
                    + (names.isEmpty ? " (no service has autoscale)" : "; autoscaled: \(names.joined(separator: ", "))")
            )
        }
        switch request.method {
        case .GET:
            return .json(controller.status())
        case .PATCH, .POST, .PUT:
            let change: ScaleChange
            do {
                change = try JSONDecoder().decode(
                    ScaleChange.self, from: Data(request.body.isEmpty ? Array("{}".utf8) : request.body))
            } catch {
                return .error(.badRequest, "the body is not the JSON expected ({\"min\": 1, \"max\": 8}): \(error)")
            }
            guard change.min != nil || change.max != nil else {
                return .error(.badRequest, "give min and/or max, like {\"max\": 8}")
            }
            do {
                try controller.setBounds(min: change.min, max: change.max)
            } catch {
                return .error(.badRequest, error.description)
            }
            return .json(controller.status())
        default:
            return .error(.methodNotAllowed, "use GET or PATCH")
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

/// The admin API as a `Service`: binds its TCP listener and its Unix socket on start, closes both (and removes the
/// socket file) on graceful shutdown.
public struct AdminService: Service {
    public let director: Director
    public let config: AdminConfig
    /// Called with the bound TCP address (port 0 in tests).
    let onBound: @Sendable (SocketAddress) -> Void

    public init(
        director: Director, config: AdminConfig, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.director = director
        self.config = config
        self.onBound = onBound
    }

    public func run() async throws {
        var channels: [Channel] = []
        if self.config.listen != nil {
            let channel = try await AdminService.bind(director: self.director, config: self.config)
            if let address = channel.localAddress { self.onBound(address) }
            channels.append(channel)
        }
        var socket = self.config.socket
        if let path = socket {
            do {
                channels.append(
                    try await AdminService.bindSocket(director: self.director, config: self.config, path: path))
            } catch AdminService.SocketHeld.held where path == AdminConfig.standardSocket {
                // Several directors on one machine (an HA pair in a lab, the tutorial beside the demo): the first
                // has the standard socket; the others say so and go on, reachable over TCP.
                self.director.logger.warning(
                    "the standard admin socket is held by another director: this one has none (set admin.socket)",
                    metadata: ["socket": "\(path)"])
                socket = nil
            } catch {
                for channel in channels { try? await channel.close() }
                throw error
            }
        }
        self.director.logger.info(
            "admin API listening",
            metadata: [
                "listen": "\(self.config.listen.map { "\($0)" } ?? "off")",
                "socket": "\(socket ?? "off")",
                "token": "\(self.config.token == nil ? "none: TCP is read-only" : "required on TCP")",
            ])
        try? await gracefulShutdown()
        for channel in channels { try? await channel.close() }
        if let path = socket { unlink(path) }
    }

    enum SocketHeld: Error { case held }

    static func handlers(_ api: AdminAPI) -> @Sendable (Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(AdminHandler(api: api))
            }
        }
    }

    /// The TCP listener (`admin.listen`).
    public static func bind(director: Director, config: AdminConfig) async throws -> Channel {
        guard let listen = config.listen else {
            throw DirectorError(code: .bind, message: "admin.listen is off")
        }
        let api = AdminAPI(
            director: director, guard_: AdminGuard(transport: .tcp, token: config.token, names: config.names))
        do {
            let address = try SocketAddress(ipAddress: listen.host, port: listen.port)
            return try await ServerBootstrap(group: director.group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer(Self.handlers(api))
                .bind(to: address).get()
        } catch {
            let reason = ListenFailure.describe(
                "\(listen)", errno: (error as? IOError)?.errnoCode, fallback: "\(error)")
            throw DirectorError(code: .bind, message: "admin.listen: \(reason)")
        }
    }

    /// The Unix socket (`admin.socket`): its directory made (0700) if missing, a stale file from a director that
    /// died replaced, one that a running director holds refused, and the file's mode set to `admin.socket_mode`.
    public static func bindSocket(director: Director, config: AdminConfig, path: String) async throws -> Channel {
        let api = AdminAPI(director: director, guard_: AdminGuard(transport: .unixSocket, token: config.token))
        let directory = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: directory) {
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // A file there is a director's that runs (refused) or one that died (replaced). Two directors starting at
        // once may both find none: the loser's bind fails with EADDRINUSE and takes the same test.
        for attempt in 0..<2 {
            if FileManager.default.fileExists(atPath: path) {
                if AdminService.socketAnswers(path) {
                    if path == AdminConfig.standardSocket { throw SocketHeld.held }
                    throw DirectorError(
                        code: .bind,
                        message: "admin.socket \(path): another director is listening there (give this one another "
                            + "admin.socket, or admin: off)")
                }
                unlink(path)  // left by a director that died
            }
            do {
                let channel = try await ServerBootstrap(group: director.group)
                    .childChannelInitializer(Self.handlers(api))
                    .bind(unixDomainSocketPath: path).get()
                chmod(path, mode_t(config.socketMode))
                return channel
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt == 0 {
                continue
            } catch {
                throw DirectorError(code: .bind, message: "admin.socket \(path): \(error)")
            }
        }
        throw DirectorError(code: .bind, message: "admin.socket \(path): in use")
    }

    /// Whether something accepts connections on the Unix socket at `path`.
    static func socketAnswers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0
    }
}
