import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftVSCore
import SwiftVSSystem
import Synchronization
import Yams

/// The few Kubernetes API calls the director makes, over HTTPS with the cluster's CA and a bearer token: the scale
/// subresource of a Deployment (GET, PATCH), and a Service's EndpointSlices (list, watch). Where the API is and how
/// to get in comes from the config (`api`, `ca_file`, `token_file`), a kubeconfig, or the pod's service account.
/// The token file is read again every 5 minutes (client-go's period; projected tokens rotate within the hour) and
/// after a 401.
final class KubernetesClient: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let host: String
    let port: Int
    let address: SocketAddress
    let tls: UpstreamTLS
    let namespace: String
    let group: EventLoopGroup
    private let token: TokenSource

    /// How the token is had: from a file (read again now and then), or given (a kubeconfig's `token`).
    final class TokenSource: Sendable {
        let file: String?
        private let cached = Mutex<(token: String?, readAt: Double)>((nil, -Double.infinity))
        static let reread: Double = 300

        init(file: String?, token: String?) {
            self.file = file
            if let token { self.cached.withLock { $0 = (token, Double.infinity) } }
        }

        func current(now: Double, force: Bool = false) -> String? {
            self.cached.withLock { cached in
                if let file = self.file, force || now - cached.readAt >= Self.reread {
                    if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                        cached = (text.trimmingCharacters(in: .whitespacesAndNewlines), now)
                    }
                }
                return cached.token
            }
        }
    }

    init(_ config: KubernetesProviderConfig, base: String?, group: EventLoopGroup) throws {
        self.group = group
        var server = config.api
        var caFile: String? = config.caFile
        var caPEM: [UInt8]?
        var tokenFile: String? = config.tokenFile
        var token: String?
        var namespace = config.namespace
        if server == nil, let path = config.kubeconfig {
            let file = path.hasPrefix("/") || base == nil ? path : "\(base!)/\(path)"
            let kube = try Self.kubeconfig(file)
            server = kube.server
            caFile = kube.caFile
            caPEM = kube.caPEM
            token = kube.token
            tokenFile = kube.tokenFile
            namespace = namespace ?? kube.namespace
        }
        if server == nil {
            let env = ProcessInfo.processInfo.environment
            guard let host = env["KUBERNETES_SERVICE_HOST"] else {
                throw Failure(
                    description: "autoscale.kubernetes: no api, no kubeconfig, and not in a pod "
                        + "(KUBERNETES_SERVICE_HOST is not set)")
            }
            let port = env["KUBERNETES_SERVICE_PORT_HTTPS"] ?? env["KUBERNETES_SERVICE_PORT"] ?? "443"
            server = host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        }
        if namespace == nil {
            let file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
            namespace = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        self.namespace = namespace ?? "default"
        let (host, port) = try Self.hostPort(server!)
        self.host = host
        self.port = port
        do {
            self.address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw Failure(description: "autoscale.kubernetes.api: cannot resolve \(host): \(error)")
        }
        var tlsConfig = TLSConfiguration.makeClientConfiguration()
        tlsConfig.applicationProtocols = ["http/1.1"]
        tlsConfig.certificateVerification = .fullVerification
        do {
            if let caPEM {
                tlsConfig.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(caPEM))
            } else if let caFile {
                tlsConfig.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
        } catch {
            throw Failure(description: "autoscale.kubernetes.ca_file: \(caFile ?? "the kubeconfig's CA"): \(error)")
        }
        let context = try NIOSSLContext(configuration: tlsConfig)
        // An IP address is checked against the certificate's IP names by NIOSSL when no host name is given.
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        self.tls = UpstreamTLS(context: context, serverName: isIP ? nil : host)
        self.token = TokenSource(file: token == nil ? tokenFile : nil, token: token)
    }

    static func hostPort(_ url: String) throws -> (String, Int) {
        guard url.hasPrefix("https://") else {
            throw Failure(description: "the API server must be https://, got \(url)")
        }
        var rest = url.dropFirst("https://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            let host = String(rest[rest.index(after: rest.startIndex)..<close])
            let port = Int(rest[close...].dropFirst(2)) ?? 443
            return (host, port)
        }
        if let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) {
            return (String(rest[..<colon]), port)
        }
        return (String(rest), 443)
    }

    struct Kubeconfig {
        var server: String
        var caFile: String?
        var caPEM: [UInt8]?
        var token: String?
        var tokenFile: String?
        var namespace: String?
    }

    /// The current context of a kubeconfig: its cluster's server and CA, its user's token, its namespace.
    static func kubeconfig(_ path: String) throws -> Kubeconfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let root = try? Yams.load(yaml: text) as? [String: Any]
        else { throw Failure(description: "autoscale.kubernetes.kubeconfig: cannot read \(path) as YAML") }
        func named(_ key: String, _ name: String?) -> [String: Any]? {
            let list = root[key] as? [[String: Any]] ?? []
            let item = list.first { ($0["name"] as? String) == name } ?? (name == nil ? list.first : nil)
            return item?[String(key.dropLast())] as? [String: Any]
        }
        let current = root["current-context"] as? String
        let context = named("contexts", current)
        guard let cluster = named("clusters", context?["cluster"] as? String),
            let server = cluster["server"] as? String
        else { throw Failure(description: "autoscale.kubernetes.kubeconfig: \(path) has no cluster with a server") }
        let user = named("users", context?["user"] as? String) ?? [:]
        let dir = (path as NSString).deletingLastPathComponent
        func file(_ value: Any?) -> String? {
            guard let value = value as? String else { return nil }
            return value.hasPrefix("/") ? value : "\(dir)/\(value)"
        }
        var config = Kubeconfig(server: server)
        config.caFile = file(cluster["certificate-authority"])
        if let data = cluster["certificate-authority-data"] as? String, let bytes = Data(base64Encoded: data) {
            config.caPEM = Array(bytes)
        }
        config.token = user["token"] as? String
        config.tokenFile = file(user["tokenFile"])
        config.namespace = context?["namespace"] as? String
        if config.token == nil && config.tokenFile == nil {
            throw Failure(
                description: "autoscale.kubernetes.kubeconfig: the user of \(path)'s current context has no token "
                    + "or tokenFile (client certificates are not supported)")
        }
        return config
    }

    // MARK: calls

    /// One call, answered whole; a 401 makes it read the token again and try once more.
    func call(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String? = nil
    ) async throws
        -> FetchedResponse
    {
        var response = try await self.once(method, path, body: body, contentType: contentType, forceToken: false)
        if response.status == 401 {
            response = try await self.once(method, path, body: body, contentType: contentType, forceToken: true)
        }
        return response
    }

    private func once(
        _ method: HTTPMethod, _ path: String, body: [UInt8]?, contentType: String?, forceToken: Bool
    )
        async throws -> FetchedResponse
    {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token = self.token.current(now: Monotonic.seconds(), force: forceToken) {
            headers.append(("Authorization", "Bearer \(token)"))
        }
        if let contentType { headers.append(("Content-Type", contentType)) }
        return try await HTTPFetch.fetch(
            on: self.group.next(), to: self.address, method: method, path: path, host: "\(self.host):\(self.port)",
            headers: headers, body: body, timeout: .seconds(10), maxBody: 16 << 20, tls: self.tls
        ).get()
    }

    /// A watch: `onLine` gets each event line until the server ends the stream (or `stop` is called). Returns the
    /// status; a 401 reads the token again for the next call.
    func watch(
        _ path: String, onLine: @escaping @Sendable ([UInt8]) -> Void, started: (Channel) -> Void
    )
        async throws -> Int
    {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token = self.token.current(now: Monotonic.seconds()) {
            headers.append(("Authorization", "Bearer \(token)"))
        }
        let status = Mutex(0)
        let pending = Mutex<[UInt8]>([])
        let (channel, done) = try await HTTPFetch.stream(
            on: self.group.next(), to: self.address, path: path, host: "\(self.host):\(self.port)", headers: headers,
            timeout: .seconds(10), tls: self.tls, onHead: { code in status.withLock { $0 = code } },
            onBody: { buffer in
                let lines: [[UInt8]] = pending.withLock { pending in
                    pending.append(contentsOf: buffer.readableBytesView)
                    var out: [[UInt8]] = []
                    while let newline = pending.firstIndex(of: 0x0A) {
                        out.append(Array(pending[..<newline]))
                        pending.removeSubrange(...newline)
                    }
                    return out
                }
                for line in lines where !line.isEmpty { onLine(line) }
            }
        ).get()
        started(channel)
        try await done.get()
        let code = status.withLock { $0 }
        if code == 401 { _ = self.token.current(now: Monotonic.seconds(), force: true) }
        return code
    }
}
