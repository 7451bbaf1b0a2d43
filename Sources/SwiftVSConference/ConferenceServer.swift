import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftVSConfigKit
import ServiceLifecycle
import SwiftVSDirector
import SwiftVSSystem
import Synchronization

/// The roles one `swiftvs conference` process serves.
public struct ConferenceRoles: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let web = ConferenceRoles(rawValue: 1)
    public static let api = ConferenceRoles(rawValue: 2)
    public static let signal = ConferenceRoles(rawValue: 4)
    public static let all: ConferenceRoles = [.web, .api, .signal]

    public var names: String {
        [(Self.web, "web"), (Self.api, "api"), (Self.signal, "signal")].filter { self.contains($0.0) }.map(\.1)
            .joined(separator: "+")
    }
}

/// Everything `swiftvs conference` is told on its command line.
public struct ConferenceOptions: Sendable {
    public var roles: ConferenceRoles = .all
    public var host = "127.0.0.1"
    public var port = 8600
    /// The signal role's room registry when the api runs elsewhere: `http://host:port` (the director's api route
    /// or one api replica). Without it, and without the api role in this process, rooms are made by their first
    /// joiner.
    public var apiURL: String?
    /// Shared by the api and signal replicas: the registry answers room policies only to callers that know it.
    public var secret: String?
    public var hub = HubSettings()
    /// STUN servers handed to browsers, e.g. `stun:stun.example.org:3478`. Default none (loopback and LAN calls
    /// need none).
    public var stun: [String] = []
    /// TURN servers (`turn:host:3478?transport=udp`), with `turnSecret` coturn's `static-auth-secret`.
    public var turn: [String] = []
    public var turnSecret: String?
    /// How long TURN credentials are valid, seconds. Default 86400 (coturn's REST API default).
    public var turnTTL = 86_400
    /// This replica's name in the presence reports (default host:port).
    public var replicaName: String?
    /// Event loops; nil = one per core.
    public var threads: Int?
    /// The api role without a registry of its own: rooms are created, read and listed at this api (`http://IP:PORT`),
    /// which holds them for every replica; `/api/ice` is answered here. So api replicas scale (autoscaled or not)
    /// while rooms stay in one place, as stateless pods in front of a database.
    public var registryURL: String?

    public init() {}
}

/// `swiftvs conference`: the web, api and signal roles on Hummingbird, one port, as a `Service`.
public final class ConferenceServer: Service, Sendable {
    public let options: ConferenceOptions
    let logger: Logger
    let registry = Mutex(RoomRegistry())
    let signal: SignalService?
    let bound = Mutex<Int?>(nil)
    let ready: @Sendable (Int) -> Void

    public init(options: ConferenceOptions, logger: Logger, ready: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.options = options
        self.logger = logger
        self.ready = ready
        self.signal = options.roles.contains(.signal) ? SignalService(options: options, logger: logger) : nil
    }

    /// The port the server listens on, once it does.
    public var port: Int? { self.bound.withLock { $0 } }

    public func run() async throws {
        let router = Router()
        router.get("/healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: "ok \(self.options.roles.names)\n")))
        }
        if self.options.roles.contains(.web) { ClientAssets.addRoutes(to: router) }
        if self.options.roles.contains(.api) { self.addAPIRoutes(to: router) }
        if let signal, !self.options.roles.contains(.api) {
            signal.lookup = self.options.apiURL.map { RemoteRegistry(url: $0, secret: self.options.secret) }
        } else if let signal {
            signal.lookup = LocalRegistry(server: self)
        }
        let signal = self.signal
        let maxFrame = (self.options.hub.maxMessageBytes * 4) | 0xFFFF
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                configuration: .init(ws: .init(maxFrameSize: maxFrame, autoPing: .enabled(timePeriod: .seconds(15))))
            ) { request, _, _ in
                guard let signal, request.path?.split(separator: "?").first == "/ws" else { return .dontUpgrade }
                return .upgrade([:]) { inbound, outbound, _ in
                    await signal.serve(inbound: inbound, outbound: outbound)
                }
            },
            configuration: .init(
                address: .hostname(self.options.host, port: self.options.port), serverName: "swiftvs-conference",
                reuseAddress: true),
            services: signal.map { [$0] } ?? [],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                self.bound.withLock { $0 = port }
                let name = self.options.replicaName ?? "\(self.options.host):\(port)"
                self.signal?.replica.withLock { $0 = name }
                self.signal?.hub.withLock { $0.replica = name }
                self.logger.notice(
                    "conference listening",
                    metadata: ["roles": "\(self.options.roles.names)", "address": "\(self.options.host):\(port)"])
                self.ready(port)
            },
            eventLoopGroupProvider: self.options.threads.map {
                .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0))
            } ?? .singleton,
            logger: self.logger
        )
        // WebSockets are closed first, so that the server's own drain does not wait on them.
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            signal?.closeAll()
        }
    }

    // MARK: api

    func addAPIRoutes(to router: Router<BasicRequestContext>) {
        let api = router.group("/api")
        if let url = self.options.registryURL {
            // Everything about rooms goes to the registry; its answer (status and body) comes back as it is.
            let registry = RemoteRegistry(url: url, secret: self.options.secret)
            let forward: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
                let body = try await request.body.collect(upTo: 64 * 1024)
                let method: NIOHTTP1.HTTPMethod = request.method == .post ? .POST : request.method == .put ? .PUT : .GET
                var headers: [(String, String)] = []
                if let secret = request.headers[HTTPField.Name("X-SwiftVS-Secret")!] {
                    headers.append(("X-SwiftVS-Secret", secret))
                }
                guard
                    let answer = await registry.call(
                        method, request.uri.description,
                        body: body.readableBytes > 0 ? Array(body.readableBytesView) : nil,
                        headers: headers)
                else {
                    return Self.problem(APIProblem(502, "the room registry at \(url) did not answer"))
                }
                return Response(
                    status: .init(code: answer.status),
                    headers: [
                        .contentType: answer.headers.first(name: "Content-Type") ?? "application/json",
                        .cacheControl: "no-store",
                    ],
                    body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
            }
            api.post("/rooms", use: forward)
            api.get("/rooms", use: forward)
            api.get("/rooms/:room", use: forward)
            api.get("/internal/policy/:room", use: forward)
            api.put("/internal/presence", use: forward)
            self.addICERoute(to: api)
            return
        }
        api.post(
            "/rooms",
            use: Self.answering { request, context -> Response in
                let body = try await Self.jsonBody(request, context)
                let result = Result { () throws(APIProblem) in
                    try self.registry.withLock { registry throws(APIProblem) in
                        try registry.create(
                            body, randomName: Self.randomToken(8), randomKey: Self.randomToken(24),
                            now: Date().timeIntervalSince1970)
                    }
                }
                switch result {
                case .failure(let problem): return Self.problem(problem)
                case .success(let (record, hostKey)):
                    return Self.json(
                        .created,
                        [
                            "room": record.policy.room, "hostKey": hostKey,
                            "passwordRequired": record.policy.passwordDigest != nil, "lobby": record.policy.lobby,
                            "url": "/?room=\(record.policy.room)",
                        ])
                }
            })
        api.get("/rooms") { request, _ -> Response in
            guard let key = request.uri.queryParameters.get("hostKey") else {
                return Self.problem(
                    APIProblem(400, field: "hostKey", "listing rooms needs ?hostKey= (the key a room was created with)")
                )
            }
            let rooms = self.registry.withLock { $0.rooms(hostKey: key, now: Date().timeIntervalSince1970) }
            return Self.json(.ok, ["rooms": rooms])
        }
        api.get("/rooms/:room") { _, context -> Response in
            let room = context.parameters.get("room") ?? ""
            guard RoomHub.validRoom(room) else {
                return Self.problem(APIProblem(400, field: "room", "room: 1 to 64 letters, digits, '-' or '_'"))
            }
            guard let described = self.registry.withLock({ $0.describe(room, now: Date().timeIntervalSince1970) })
            else {
                return Self.problem(APIProblem(404, field: "room", "no room '\(room)'"))
            }
            return Self.json(.ok, described)
        }
        self.addICERoute(to: api)
        // What signal replicas in other processes ask and tell, guarded by the shared secret.
        self.addInternalRoutes(to: api)
    }

    func addICERoute(to api: RouterGroup<BasicRequestContext>) {
        api.get("/ice") { request, _ -> Response in
            var servers: [[String: Any]] = []
            if !self.options.stun.isEmpty { servers.append(["urls": self.options.stun]) }
            var ttl: Int?
            if !self.options.turn.isEmpty, let secret = self.options.turnSecret {
                let user = request.uri.queryParameters.get("user").map { String($0) } ?? "swiftvs"
                guard !user.isEmpty, user.count <= 64, !user.contains(":") else {
                    return Self.problem(APIProblem(400, field: "user", "user: 1 to 64 characters, no ':'"))
                }
                let expiry = Int(Date().timeIntervalSince1970) + self.options.turnTTL
                let credentials = TURNCredentials.make(secret: secret, user: user, expiry: expiry)
                servers.append([
                    "urls": self.options.turn, "username": credentials.username, "credential": credentials.credential,
                ])
                ttl = self.options.turnTTL
            } else if !self.options.turn.isEmpty {
                servers.append(["urls": self.options.turn])
            }
            var answer: [String: Any] = ["iceServers": servers]
            if let ttl { answer["ttl"] = ttl }
            return Self.json(.ok, answer)
        }
    }

    func addInternalRoutes(to api: RouterGroup<BasicRequestContext>) {
        api.get("/internal/policy/:room") { request, context -> Response in
            guard self.authorized(request) else {
                return Self.problem(APIProblem(403, "wrong or missing X-SwiftVS-Secret"))
            }
            let room = context.parameters.get("room") ?? ""
            guard let policy = self.registry.withLock({ $0.policy(room) }) else {
                return Self.problem(APIProblem(404, field: "room", "no room '\(room)'"))
            }
            let data = try JSONEncoder().encode(policy)
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: Array(data))))
        }
        api.put(
            "/internal/presence",
            use: Self.answering { request, context -> Response in
                guard self.authorized(request) else {
                    return Self.problem(APIProblem(403, "wrong or missing X-SwiftVS-Secret"))
                }
                let body = try await Self.jsonBody(request, context)
                guard let replica = body["replica"] as? String, let rooms = body["rooms"] as? [String: Int] else {
                    return Self.problem(
                        APIProblem(400, field: "rooms", "presence is {\"replica\": name, \"rooms\": {room: count}}"))
                }
                self.registry.withLock { $0.report(replica: replica, rooms: rooms, now: Date().timeIntervalSince1970) }
                return Response(status: .noContent)
            })
    }

    func authorized(_ request: Request) -> Bool {
        guard let secret = self.options.secret else { return true }
        return request.headers[HTTPField.Name("X-SwiftVS-Secret")!] == secret
    }

    static func jsonBody(_ request: Request, _ context: BasicRequestContext) async throws -> [String: Any] {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard buffer.readableBytes > 0 else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)),
            let body = object as? [String: Any]
        else {
            throw APIProblem(400, field: "body", "the body is one JSON object")
        }
        return body
    }

    /// A handler whose `APIProblem`s become their JSON answers.
    static func answering(
        _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response
    )
        -> @Sendable (Request, BasicRequestContext) async throws -> Response
    {
        { request, context in
            do { return try await handler(request, context) } catch let problem as APIProblem {
                return Self.problem(problem)
            }
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: RoomHub.encode(object))))
    }

    static func problem(_ problem: APIProblem) -> Response {
        Response(
            status: .init(code: problem.status),
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: problem.json)))
    }

    static func randomToken(_ count: Int) -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        return String((0..<count).map { _ in alphabet.randomElement()! })
    }
}

/// Where the signal role learns a room's policy and reports its counts.
protocol RegistryLookup: Sendable {
    func policy(_ room: String) async -> RoomPolicy?
    func report(replica: String, rooms: [String: Int]) async
}

/// The api role in this same process.
struct LocalRegistry: RegistryLookup {
    let server: ConferenceServer
    func policy(_ room: String) async -> RoomPolicy? { self.server.registry.withLock { $0.policy(room) } }
    func report(replica: String, rooms: [String: Int]) async {
        self.server.registry.withLock { $0.report(replica: replica, rooms: rooms, now: Date().timeIntervalSince1970) }
    }
}

/// The api role elsewhere, over HTTP (the director's one-shot client).
struct RemoteRegistry: RegistryLookup {
    let host: String
    let address: SocketAddress?
    let secret: String?

    init(url: String, secret: String?) {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        let hostPort = String(rest.prefix { $0 != "/" })
        self.host = hostPort
        self.address = (try? Endpoint(parsing: hostPort)).flatMap {
            try? SocketAddress(ipAddress: $0.host, port: $0.port)
        }
        self.secret = secret
    }

    func call(
        _ method: NIOHTTP1.HTTPMethod, _ path: String, body: [UInt8]? = nil, headers extra: [(String, String)] = []
    ) async -> FetchedResponse? {
        guard let address else { return nil }
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        if let secret { headers.append(("X-SwiftVS-Secret", secret)) }
        headers += extra.filter { name, _ in name != "X-SwiftVS-Secret" || self.secret == nil }
        return try? await HTTPFetch.fetch(
            on: MultiThreadedEventLoopGroup.singleton.any(), to: address, method: method, path: path, host: self.host,
            headers: headers, body: body, timeout: .seconds(2)
        ).get()
    }

    func policy(_ room: String) async -> RoomPolicy? {
        guard let response = await self.call(.GET, "/api/internal/policy/\(room)"), response.status == 200 else {
            return nil
        }
        return try? JSONDecoder().decode(RoomPolicy.self, from: Data(response.body))
    }

    func report(replica: String, rooms: [String: Int]) async {
        let body = RoomHub.encode(["replica": replica, "rooms": rooms])
        _ = await self.call(.PUT, "/api/internal/presence", body: Array(body.utf8))
    }
}
