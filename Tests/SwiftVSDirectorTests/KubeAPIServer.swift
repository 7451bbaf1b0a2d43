import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A Kubernetes API server for one Deployment and its Service, implementing only what the director and kubectl ask:
/// discovery (`/api`, `/apis`, the group versions), the Deployment, its scale subresource (GET, PUT, PATCH with
/// resourceVersion conflicts), and the Service's EndpointSlices (list, and watch with chunked event lines).
/// HTTPS with a test CA; a bearer token that can be changed (the old one then gets 401).
///
/// It plays the Deployment controller too: scaling to N makes endpoints 0..<N ready, and those past N terminating
/// (serving, not ready) until `finishTermination` removes them; every change bumps the resourceVersion and goes to
/// the watchers as MODIFIED.
final class KubeAPIServer: Sendable {
    struct State {
        var token: String
        var replicas: Int
        var version = 100
        /// Endpoint index → ready or terminating; absent = gone.
        var endpoints: [Int: Bool] = [:]
        var conflictsToInject = 0
        var unauthorized = 0
        var lists = 0
        var watches = 0
        var patches: [String] = []
        var watchers: [ObjectIdentifier: NIOLoopBound<ChannelHandlerContext>] = [:]
    }

    let state: Mutex<State>
    let addresses: [String]
    let endpointPort: Int
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Mutex<Channel?> = Mutex(nil)
    private let children = Mutex<[ObjectIdentifier: Channel]>([:])
    private let boundPort = Atomic<Int>(0)
    var port: Int { self.boundPort.load(ordering: .relaxed) }

    init(token: String, replicas: Int, addresses: [String], endpointPort: Int, cert: String, key: String) async throws {
        self.addresses = addresses
        self.endpointPort = endpointPort
        var initial = State(token: token, replicas: replicas)
        for index in 0..<replicas { initial.endpoints[index] = true }
        self.state = Mutex(initial)
        let tls = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))))
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.children.withLock { $0[ObjectIdentifier(channel)] = channel }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(KubeAPIHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.boundPort.store(channel.localAddress!.port!, ordering: .relaxed)
        self.channel.withLock { $0 = channel }
    }

    func shutdown() async {
        await self.goAway()
        try? await self.group.shutdownGracefully()
    }

    /// The API server becomes unreachable: no listener, every connection closed (the event loops stay).
    func goAway() async {
        let channel = self.channel.withLock { $0 }
        try? await channel?.close()
        let children = self.children.withLock { children in
            defer { children = [:] }
            return Array(children.values)
        }
        for child in children { try? await child.close() }
    }

    // MARK: what the test does

    var replicas: Int { self.state.withLock { $0.replicas } }

    func setToken(_ token: String) { self.state.withLock { $0.token = token } }

    func injectConflicts(_ count: Int) { self.state.withLock { $0.conflictsToInject = count } }

    /// Terminating endpoints go away.
    func finishTermination() {
        self.change { state in state.endpoints = state.endpoints.filter { $0.value } }
    }

    /// Every watcher gets ERROR 410 Gone and its stream ends, as when etcd compacted the version it watches from.
    func expireWatches() {
        let watchers = self.state.withLock { state in
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        let line =
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#
        for watcher in watchers {
            watcher.eventLoop.execute {
                let context = watcher.value
                context.write(
                    NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: line + "\n")))), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            }
        }
    }

    // MARK: the model

    func change(_ body: (inout State) -> Void) {
        let (line, watchers) = self.state.withLock { state -> (String, [NIOLoopBound<ChannelHandlerContext>]) in
            body(&state)
            state.version += 1
            return (#"{"type":"MODIFIED","object":\#(self.sliceJSON(state))}"#, Array(state.watchers.values))
        }
        for watcher in watchers {
            watcher.eventLoop.execute {
                watcher.value.writeAndFlush(
                    NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: line + "\n")))), promise: nil)
            }
        }
    }

    func scale(to replicas: Int, _ state: inout State) {
        for index in 0..<max(replicas, state.replicas) {
            if index < replicas {
                state.endpoints[index] = true
            } else if state.endpoints[index] != nil {
                state.endpoints[index] = false
            }
        }
        state.replicas = replicas
    }

    func sliceJSON(_ state: State) -> String {
        let endpoints = state.endpoints.keys.sorted().map { index -> String in
            let ready = state.endpoints[index]!
            return
                #"{"addresses":["\#(self.addresses[index])"],"conditions":{"ready":\#(ready),"serving":true,"terminating":\#(!ready)},"targetRef":{"kind":"Pod","name":"web-\#(index)","namespace":"default"}}"#
        }.joined(separator: ",")
        return
            #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-abc12","namespace":"default","resourceVersion":"\#(state.version)","creationTimestamp":"2026-12-01T00:00:00Z","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[\#(endpoints)],"ports":[{"name":"http","protocol":"TCP","port":\#(self.endpointPort)}]}"#
    }

    func scaleJSON(_ state: State) -> String {
        #"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","namespace":"default","resourceVersion":"\#(state.version)","creationTimestamp":"2026-12-01T00:00:00Z"},"spec":{"replicas":\#(state.replicas)},"status":{"replicas":\#(state.replicas),"selector":"app=web"}}"#
    }

    func deploymentJSON(_ state: State) -> String {
        let ready = state.endpoints.values.filter { $0 }.count
        return
            #"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"default","uid":"9a5e0c1e-0000-4000-8000-000000000001","resourceVersion":"\#(state.version)","generation":1,"creationTimestamp":"2026-12-01T00:00:00Z","labels":{"app":"web"}},"spec":{"replicas":\#(state.replicas),"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"swiftvs"}]}}},"status":{"observedGeneration":1,"replicas":\#(state.replicas),"updatedReplicas":\#(state.replicas),"readyReplicas":\#(ready),"availableReplicas":\#(ready)}}"#
    }

    static let discovery: [String: String] = [
        "/version":
            #"{"major":"1","minor":"29","gitVersion":"v1.29.0","gitCommit":"0","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.21","compiler":"gc","platform":"linux/amd64"}"#,
        "/apis":
            #"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}},{"name":"discovery.k8s.io","versions":[{"groupVersion":"discovery.k8s.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"discovery.k8s.io/v1","version":"v1"}},{"name":"autoscaling","versions":[{"groupVersion":"autoscaling/v1","version":"v1"}],"preferredVersion":{"groupVersion":"autoscaling/v1","version":"v1"}}]}"#,
        "/api/v1": #"{"kind":"APIResourceList","groupVersion":"v1","resources":[]}"#,
        "/apis/apps/v1":
            #"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[{"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["get","list","patch","update","watch"],"shortNames":["deploy"],"categories":["all"]},{"name":"deployments/scale","singularName":"","namespaced":true,"group":"autoscaling","version":"v1","kind":"Scale","verbs":["get","patch","update"]}]}"#,
        "/apis/discovery.k8s.io/v1":
            #"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"discovery.k8s.io/v1","resources":[{"name":"endpointslices","singularName":"endpointslice","namespaced":true,"kind":"EndpointSlice","verbs":["get","list","watch"]}]}"#,
        "/apis/autoscaling/v1":
            #"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"autoscaling/v1","resources":[]}"#,
    ]

    func apiJSON() -> String {
        #"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:\#(self.port)"}]}"#
    }

    /// The answer to one request: status and JSON body, or nil for a watch (the handler streams it).
    func answer(method: HTTPMethod, uri: String, token: String?, body: [UInt8]) -> (Int, String)? {
        let parts = uri.split(separator: "?", maxSplits: 1)
        let path = String(parts.first ?? "")
        let query = parts.count > 1 ? String(parts[1]) : ""
        if path == "/api" { return (200, self.apiJSON()) }
        if let document = Self.discovery[path] { return (200, document) }
        let accepted = self.state.withLock { state -> Bool in
            if token != state.token { state.unauthorized += 1 }
            return token == state.token
        }
        guard accepted else {
            return (
                401,
                #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
            )
        }
        switch path {
        case "/apis/apps/v1/namespaces/default/deployments/web":
            return (200, self.state.withLock { self.deploymentJSON($0) })
        case "/apis/apps/v1/namespaces/default/deployments/web/scale":
            return self.scaleCall(method, body)
        case "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
            if query.contains("watch=1") || query.contains("watch=true") {
                self.state.withLock { $0.watches += 1 }
                return nil
            }
            return self.state.withLock { state in
                state.lists += 1
                return (
                    200,
                    #"{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"\#(state.version)"},"items":[\#(self.sliceJSON(state))]}"#
                )
            }
        default:
            return (
                404,
                #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found: \#(path)","reason":"NotFound","code":404}"#
            )
        }
    }

    private func scaleCall(_ method: HTTPMethod, _ body: [UInt8]) -> (Int, String) {
        if method == .GET { return (200, self.state.withLock { self.scaleJSON($0) }) }
        guard method == .PATCH || method == .PUT,
            let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let spec = object["spec"] as? [String: Any], let replicas = spec["replicas"] as? Int
        else { return (400, #"{"kind":"Status","code":400,"message":"bad scale"}"#) }
        let version = (object["metadata"] as? [String: Any])?["resourceVersion"] as? String
        let conflict = self.state.withLock { state -> Bool in
            state.patches.append("\(method.rawValue) \(String(decoding: body, as: UTF8.self))")
            if state.conflictsToInject > 0 {
                state.conflictsToInject -= 1
                state.version += 1  // someone else changed it
                return true
            }
            if let version, !version.isEmpty, version != "\(state.version)" { return true }
            return false
        }
        if conflict {
            return (
                409,
                #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"web","group":"apps","kind":"deployments"},"code":409}"#
            )
        }
        self.change { self.scale(to: replicas, &$0) }
        return (200, self.state.withLock { self.scaleJSON($0) })
    }
}

final class KubeAPIHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: KubeAPIServer
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(server: KubeAPIServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(let buffer):
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head = self.head else { return }
            let auth = head.headers.first(name: "authorization")
            let token = auth?.hasPrefix("Bearer ") == true ? String(auth!.dropFirst(7)) : nil
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            guard
                let (status, json) = self.server.answer(
                    method: head.method, uri: head.uri, token: token, body: self.body)
            else {
                // A watch: the head now, then one line per event while the connection lasts.
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                    promise: nil)
                context.flush()
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                self.server.state.withLock { $0.watchers[ObjectIdentifier(context.channel)] = bound }
                return
            }
            headers.add(name: "Content-Length", value: String(json.utf8.count))
            context.write(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: head.version, status: .init(statusCode: status), headers: headers))),
                promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: json)))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        _ = self.server.state.withLock { $0.watchers.removeValue(forKey: ObjectIdentifier(context.channel)) }
        context.fireChannelInactive()
    }
}
