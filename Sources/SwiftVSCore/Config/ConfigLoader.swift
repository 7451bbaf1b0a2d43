import SwiftVSConfigKit
import Yams

/// Reads director YAML into a `DirectorConfig`, filling defaults and collecting every problem.
///
/// The file is walked as YAML nodes rather than decoded with `Codable` so that each problem carries its key path
/// and line, and so that one bad key does not hide the next.
public enum ConfigLoader {
    /// Parses and validates; throws `ConfigError` with every problem found.
    public static func load(yaml: String, source: String = "config") throws(ConfigError) -> DirectorConfig {
        var reader = NodeReader()
        let root = try NodeReader.compose(
            yaml, source: source, whenEmpty: "the file is empty; it needs a 'services' list")
        let config = reader.director(root)
        guard reader.problems.isEmpty, let config else {
            throw ConfigError(source: source, problems: reader.problems)
        }
        return config
    }
}

extension NodeReader {
    mutating func director(_ root: Node) -> DirectorConfig? {
        guard
            let keys = self.mapping(
                root, "", allowed: ["threads", "services", "admin", "drain_timeout", "ha", "access_log"])
        else {
            return nil
        }
        var threads: Int?
        if let node = keys["threads"] {
            threads = self.int(node, "threads", 1...256)
        }
        var admin: AdminConfig? = AdminConfig()
        if let node = keys["admin"] {
            admin = self.admin(node, "admin")
        }
        var drainTimeout: Double?
        if let node = keys["drain_timeout"], let value = self.duration(node, "drain_timeout", max: 3600) {
            drainTimeout = value
        }
        guard let servicesNode = keys["services"] else {
            self.report("services", root, "missing: list at least one virtual service")
            return nil
        }
        guard case .sequence(let list) = servicesNode else {
            self.report("services", servicesNode, "expected a list of virtual services, got \(Self.kind(servicesNode))")
            return nil
        }
        if list.isEmpty {
            self.report("services", servicesNode, "is empty: list at least one virtual service")
        }
        var services: [VirtualServiceConfig] = []
        var serviceNodes: [Node] = []
        for (index, node) in list.enumerated() {
            if let service = self.service(node, "services[\(index)]") {
                services.append(service)
                serviceNodes.append(node)
            }
        }
        self.crossCheck(services, serviceNodes, indices: list.enumerated().map { $0.offset })
        // A service's pools run as services of their own (no listener), after the listeners.
        services += services.flatMap(\.pools)
        if let listen = admin?.listen, let node = keys["admin"], services.contains(where: { $0.listen == listen }) {
            self.report("admin.listen", node, "\(listen) is also a virtual service's listen address")
        }
        var config = DirectorConfig(threads: threads, services: services, admin: admin)
        if let drainTimeout { config.drainTimeout = drainTimeout }
        if let node = keys["ha"] { config.ha = self.ha(node, "ha") }
        if let node = keys["access_log"] { config.accessLog = self.accessLog(node, "access_log") }
        return config
    }

    // MARK: high availability

    /// `access_log: off`, `access_log: FILE` (or `stdout`), or `{path, format, sample}`.
    mutating func accessLog(_ node: Node, _ path: String) -> AccessLogConfig? {
        if case .scalar = node {
            guard let text = self.string(node, path) else { return nil }
            if Self.isOff(text) { return nil }
            return AccessLogConfig(path: text)
        }
        guard let keys = self.mapping(node, path, allowed: ["path", "format", "sample"]) else { return nil }
        var config = AccessLogConfig(path: "")
        if let n = keys["path"], let text = self.string(n, "\(path).path") {
            config.path = text
        } else if keys["path"] == nil {
            self.report("\(path).path", node, "missing: a file to append to, or stdout")
        }
        if let n = keys["format"], let text = self.scalar(n, "\(path).format") {
            if let format = AccessLogConfig.Format(rawValue: text.lowercased()) {
                config.format = format
            } else {
                self.report("\(path).format", n, "'\(text)' is not text or json")
            }
        }
        if let n = keys["sample"], let text = self.scalar(n, "\(path).sample") {
            let percent = text.hasSuffix("%")
            if let value = Double(percent ? String(text.dropLast()) : text).map({ percent ? $0 / 100 : $0 }),
                value > 0, value <= 1
            {
                config.sample = value
            } else {
                self.report(
                    "\(path).sample", n, "the share of requests logged: above 0 and at most 1 (or 100%), got '\(text)'")
            }
        }
        return config.path.isEmpty ? nil : config
    }

    mutating func ha(_ node: Node, _ path: String) -> HAConfig? {
        guard
            let keys = self.mapping(
                node, path,
                allowed: [
                    "transport", "instances", "garp_repeat", "garp_master_delay", "notify", "track_services",
                    "track_scripts", "sync",
                ])
        else { return nil }
        var transport = HAConfig.Transport.raw
        if let n = keys["transport"], let text = self.string(n, "\(path).transport") {
            if let t = HAConfig.Transport(rawValue: text) {
                transport = t
            } else {
                self.report(
                    "\(path).transport", n,
                    "expected raw (IP protocol 112, as keepalived) or udp (SwiftVS only, unprivileged), got '\(text)'")
            }
        }
        var instances: [VRRPInstanceConfig] = []
        if case .sequence(let list)? = keys["instances"], !list.isEmpty {
            for (i, item) in list.enumerated() {
                if let instance = self.vrrpInstance(item, "\(path).instances[\(i)]", transport: transport) {
                    if instances.contains(where: { $0.name == instance.name }) {
                        self.report("\(path).instances[\(i)].name", item, "'\(instance.name)' is used twice")
                    }
                    if instances.contains(where: { $0.vrid == instance.vrid && $0.interface == instance.interface }) {
                        self.report(
                            "\(path).instances[\(i)].vrid", item, "VRID \(instance.vrid) is used twice on one interface"
                        )
                    }
                    instances.append(instance)
                }
            }
        } else {
            self.report("\(path).instances", keys["instances"] ?? node, "a list of VRRP instances is required")
        }
        var config = HAConfig(instances: instances)
        config.transport = transport
        if let n = keys["garp_repeat"], let v = self.int(n, "\(path).garp_repeat", 0...100) { config.garpRepeat = v }
        if let n = keys["garp_master_delay"], let v = self.duration(n, "\(path).garp_master_delay", max: 3600) {
            config.garpMasterDelay = v
        }
        if let n = keys["notify"], let v = self.string(n, "\(path).notify") { config.notify = v }
        if let n = keys["track_services"] {
            if case .scalar(let scalar) = n, scalar.string == "fault" {
                config.trackServices = true
                config.trackServicesWeight = nil
            } else if case .scalar = n, let on = self.bool(n, "\(path).track_services") {
                config.trackServices = on
            } else if let m = self.mapping(n, "\(path).track_services", allowed: ["weight"]) {
                config.trackServices = true
                if let w = m["weight"], let v = self.int(w, "\(path).track_services.weight", -254...254) {
                    config.trackServicesWeight = v
                }
            }
        }
        if case .sequence(let list)? = keys["track_scripts"] {
            for (i, item) in list.enumerated() {
                let p = "\(path).track_scripts[\(i)]"
                guard
                    let m = self.mapping(
                        item, p, allowed: ["command", "interval", "timeout", "weight", "rise", "fall"])
                else { continue }
                guard let c = m["command"], let command = self.string(c, "\(p).command") else {
                    self.report("\(p).command", item, "required: the command to run")
                    continue
                }
                var script = TrackScript(command: command)
                if let n = m["interval"], let v = self.duration(n, "\(p).interval", max: 3600) { script.interval = v }
                if let n = m["timeout"], let v = self.duration(n, "\(p).timeout", max: 3600) { script.timeout = v }
                if let n = m["weight"] {
                    if case .scalar(let s) = n, s.string == "fault" {
                        script.weight = nil
                    } else if let v = self.int(n, "\(p).weight", -254...254) {
                        script.weight = v
                    }
                }
                if let n = m["rise"], let v = self.int(n, "\(p).rise", 1...100) { script.rise = v }
                if let n = m["fall"], let v = self.int(n, "\(p).fall", 1...100) { script.fall = v }
                config.trackScripts.append(script)
            }
        } else if let n = keys["track_scripts"] {
            self.report("\(path).track_scripts", n, "expected a list of {command, interval, weight, rise, fall}")
        }
        if let n = keys["sync"], let m = self.mapping(n, "\(path).sync", allowed: ["listen", "peers"]) {
            let listen = m["listen"].flatMap { self.endpoint($0, "\(path).sync.listen") }
            var peers: [Endpoint] = []
            if case .sequence(let list)? = m["peers"] {
                for (i, item) in list.enumerated() {
                    if let e = self.endpoint(item, "\(path).sync.peers[\(i)]") { peers.append(e) }
                }
            }
            if let listen, !peers.isEmpty {
                config.sync = SyncConfig(listen: listen, peers: peers)
            } else {
                self.report("\(path).sync", n, "needs listen (HOST:PORT) and peers (a list of HOST:PORT)")
            }
        }
        return config
    }

    mutating func vrrpInstance(_ node: Node, _ path: String, transport: HAConfig.Transport) -> VRRPInstanceConfig? {
        guard
            let m = self.mapping(
                node, path,
                allowed: [
                    "name", "interface", "vrid", "priority", "advert_interval", "virtual_ips", "preempt",
                    "preempt_delay",
                    "unicast_peers", "udp",
                ])
        else { return nil }
        guard let vridNode = m["vrid"], let vrid = self.int(vridNode, "\(path).vrid", 1...255) else {
            if m["vrid"] == nil {
                self.report(
                    "\(path).vrid", node, "required: the virtual router ID, 1...255, the same on both directors")
            }
            return nil
        }
        let name = m["name"].flatMap { self.string($0, "\(path).name") } ?? "vrid\(vrid)"
        var instance = VRRPInstanceConfig(name: name, vrid: vrid)
        if let n = m["interface"], let v = self.string(n, "\(path).interface") { instance.interface = v }
        if let n = m["priority"], let v = self.int(n, "\(path).priority", 1...255) { instance.priority = v }
        if let n = m["advert_interval"], let v = self.duration(n, "\(path).advert_interval", max: 40.95) {
            if v < 0.01 {
                self.report("\(path).advert_interval", n, "must be at least 10ms (VRRPv3 counts centiseconds)")
            }
            instance.advertInterval = v
        }
        if let n = m["preempt"], let v = self.bool(n, "\(path).preempt") { instance.preempt = v }
        if let n = m["preempt_delay"], let text = self.scalar(n, "\(path).preempt_delay") {
            if let v = NodeReader.parseDuration(text), v >= 0, v <= 3600 {
                instance.preemptDelay = v
            } else {
                self.report("\(path).preempt_delay", n, "expected a duration 0...1h, got '\(text)'")
            }
        }
        if case .sequence(let list)? = m["virtual_ips"] {
            for (i, item) in list.enumerated() {
                guard let text = self.string(item, "\(path).virtual_ips[\(i)]") else { continue }
                if let vip = VirtualIP(parsing: text) {
                    instance.virtualIPs.append(vip)
                } else {
                    self.report(
                        "\(path).virtual_ips[\(i)]", item,
                        "expected an IPv4 address with an optional prefix, like 10.0.0.100/24, got '\(text)'")
                }
            }
        } else if let n = m["virtual_ips"] {
            self.report("\(path).virtual_ips", n, "expected a list like [10.0.0.100/24]")
        }
        if case .sequence(let list)? = m["unicast_peers"] {
            for (i, item) in list.enumerated() {
                if let text = self.string(item, "\(path).unicast_peers[\(i)]") {
                    if let e = try? Endpoint(host: text, port: 0), !e.isIPv6 {
                        instance.unicastPeers.append(e)
                    } else {
                        self.report("\(path).unicast_peers[\(i)]", item, "expected an IPv4 address, got '\(text)'")
                    }
                }
            }
        }
        if let n = m["udp"], let u = self.mapping(n, "\(path).udp", allowed: ["listen", "peers"]) {
            instance.udpListen = u["listen"].flatMap { self.endpoint($0, "\(path).udp.listen") }
            if case .sequence(let list)? = u["peers"] {
                for (i, item) in list.enumerated() {
                    if let e = self.endpoint(item, "\(path).udp.peers[\(i)]") { instance.udpPeers.append(e) }
                }
            }
        }
        switch transport {
        case .raw where instance.interface == nil:
            self.report(
                "\(path).interface", node, "required with the raw transport: the interface to speak VRRP on (e.g. eth0)"
            )
        case .udp where instance.udpListen == nil || instance.udpPeers.isEmpty:
            self.report("\(path).udp", node, "required with the udp transport: {listen: HOST:PORT, peers: [HOST:PORT]}")
        default:
            break
        }
        return instance
    }

    static func isOff(_ text: String) -> Bool { ["off", "false", "no"].contains(text.lowercased()) }

    /// `admin: off`, `admin: 127.0.0.1:9100`, or `{listen, token, socket, socket_mode, names}`.
    mutating func admin(_ node: Node, _ path: String) -> AdminConfig? {
        var config = AdminConfig()
        if case .scalar(let scalar) = node {
            if Self.isOff(scalar.string) { return nil }
            if ["on", "true", "yes"].contains(scalar.string.lowercased()) { return config }
            if let listen = self.endpoint(node, "\(path).listen") { config.listen = listen }
            return config
        }
        guard let keys = self.mapping(node, path, allowed: ["listen", "token", "socket", "socket_mode", "names"])
        else { return config }
        if let n = keys["listen"] {
            if case .scalar(let scalar) = n, Self.isOff(scalar.string) {
                config.listen = nil
            } else if let listen = self.endpoint(n, "\(path).listen") {
                config.listen = listen
            }
        }
        if let n = keys["socket"], let socket = self.string(n, "\(path).socket") {
            if Self.isOff(socket) {
                config.socket = nil
            } else if !socket.hasPrefix("/") {
                self.report("\(path).socket", n, "'\(socket)' is not an absolute path (like /run/swiftvs/admin.sock)")
            } else if socket.utf8.count > 107 {
                self.report("\(path).socket", n, "a Unix socket path may have at most 107 bytes")
            } else {
                config.socket = socket
            }
        }
        if let n = keys["socket_mode"], let text = self.string(n, "\(path).socket_mode") {
            if let mode = Int(text, radix: 8), (0...0o777).contains(mode) {
                config.socketMode = mode
            } else {
                self.report("\(path).socket_mode", n, "'\(text)' is not an octal file mode like 0600 or 0660")
            }
        }
        if let n = keys["names"], let names = self.strings(n, "\(path).names", example: "[director.example.com]") {
            config.names = names
        }
        if config.listen == nil && config.socket == nil {
            self.report(path, node, "both listen and socket are off: write admin: off to turn the API off")
        }
        if let n = keys["token"], let token = self.string(n, "\(path).token") {
            if token.count < 8 {
                self.report("\(path).token", n, "too short to guard anything: use at least 8 characters")
            }
            config.token = token
        }
        return config
    }

    mutating func crossCheck(_ services: [VirtualServiceConfig], _ nodes: [Node], indices: [Int]) {
        var names: [String: Int] = [:]
        var listens: [Endpoint: String] = [:]
        for (position, service) in services.enumerated() {
            let path = "services[\(position)]"
            if let first = names[service.name] {
                self.report(
                    "\(path).name", nodes[position], "'\(service.name)' is already the name of services[\(first)]")
            } else {
                names[service.name] = position
            }
            if let other = listens[service.listen] {
                self.report(
                    "\(path).listen", nodes[position], "\(service.listen) is already used by service '\(other)'")
            } else {
                listens[service.listen] = service.name
            }
        }
    }

    static let serviceKeys = [
        "name", "listen", "protocol", "scheduler", "scheduler_flags", "hash", "persistence", "retries", "timeouts",
        "limits", "forwarded_for", "max_idle_per_server", "health", "ejection", "quorum", "quorum_hysteresis", "sorry",
        "servers", "tls", "http2", "https_redirect", "proxy_protocol", "accept_proxy", "routes", "pools", "maxconn",
        "queue", "slow_start", "autoscale", "forward", "masquerade",
    ]

    /// What a pool has of a service: who its real servers are and how they are chosen and checked.
    static let poolKeys = [
        "scheduler", "scheduler_flags", "hash", "persistence", "retries", "max_idle_per_server", "health", "ejection",
        "quorum", "quorum_hysteresis", "sorry", "servers", "maxconn", "queue", "slow_start", "autoscale",
    ]

    /// A service; or, with `pool`, one of a service's pools (its name and its service's config so far).
    mutating func service(
        _ node: Node, _ path: String, pool: (name: String, parent: VirtualServiceConfig)? = nil
    ) -> VirtualServiceConfig? {
        guard let keys = self.mapping(node, path, allowed: pool == nil ? Self.serviceKeys : Self.poolKeys) else {
            return nil
        }
        let problemsBefore = self.problems.count

        var name = keys["name"].flatMap { self.string($0, "\(path).name") }
        if let name, name.contains("/") {
            self.report("\(path).name", keys["name"], "'\(name)' has a '/', which names a service's pools")
        }
        if pool == nil && keys["name"] == nil {
            self.report("\(path).name", node, "missing: every service needs a name")
        }

        var listen: Endpoint?
        if let pool {
            name = "\(pool.parent.name)/\(pool.name)"
            listen = pool.parent.listen
        } else if let listenNode = keys["listen"] {
            listen = self.endpoint(listenNode, "\(path).listen")
        } else {
            self.report("\(path).listen", node, "missing: the address to listen on, like 0.0.0.0:80 or [::]:80")
        }
        // Every key left out keeps the default its field declares in VirtualServiceConfig: defaults live there once.
        var service = VirtualServiceConfig(name: name ?? "", listen: listen ?? .loopback(port: 0), servers: [])
        if let pool {
            // The listener's settings; the pool has its own servers and how they are chosen.
            service.poolOf = pool.parent.name
            service.proto = pool.parent.proto
            service.timeouts = pool.parent.timeouts
            service.limits = pool.parent.limits
            service.forwardedFor = pool.parent.forwardedFor
        }

        if let protoNode = keys["protocol"], let text = self.scalar(protoNode, "\(path).protocol") {
            if let value = ServiceProtocol(rawValue: text.lowercased()) {
                service.proto = value
            } else {
                self.report("\(path).protocol", protoNode, "'\(text)' is not tcp, http or udp")
            }
        }

        if let schedNode = keys["scheduler"], let text = self.scalar(schedNode, "\(path).scheduler") {
            if let value = SchedulerKind(rawValue: text.lowercased()) {
                service.scheduler = value
            } else {
                let all = SchedulerKind.allCases.map(\.rawValue).joined(separator: ", ")
                self.report("\(path).scheduler", schedNode, "'\(text)' is not an IPVS scheduler; use one of \(all)")
            }
        }

        if let flagsNode = keys["scheduler_flags"] {
            service.flags = self.schedulerFlags(flagsNode, "\(path).scheduler_flags", scheduler: service.scheduler)
        }
        if let hashNode = keys["hash"] {
            service.hash = self.hashKey(hashNode, "\(path).hash", scheduler: service.scheduler, proto: service.proto)
        }
        if let persistenceNode = keys["persistence"] {
            service.persistence = self.persistence(persistenceNode, "\(path).persistence")
            if service.persistence?.key == .hash && !(service.hash?.needsHTTP ?? false) {
                self.report(
                    "\(path).persistence.key", persistenceNode,
                    "key: hash holds requests by the service's hash key; give hash: {query: NAME}, {header: NAME}, "
                        + "{cookie: NAME} or path (for client addresses, key: source)")
            }
        }
        if let retriesNode = keys["retries"], let value = self.int(retriesNode, "\(path).retries", 0...16) {
            service.retries = value
        }
        if let timeoutsNode = keys["timeouts"] {
            service.timeouts = self.timeouts(timeoutsNode, "\(path).timeouts")
        }
        if let limitsNode = keys["limits"] {
            service.limits = self.limits(limitsNode, "\(path).limits")
            if service.proto == .tcp {
                self.report("\(path).limits", limitsNode, "applies to http services only; this one is tcp")
            }
        }
        if let node = keys["forwarded_for"], let value = self.bool(node, "\(path).forwarded_for") {
            service.forwardedFor = value
        }
        if let node = keys["max_idle_per_server"],
            let value = self.int(node, "\(path).max_idle_per_server", 0...100_000)
        {
            service.maxIdlePerServer = value
        }
        if let node = keys["health"] {
            service.health = self.health(node, "\(path).health")
        }
        if let node = keys["ejection"] {
            service.ejection = self.ejection(node, "\(path).ejection")
            if service.proto == .tcp {
                self.report("\(path).ejection", node, "applies to http services only; this one is tcp")
            } else if keys["health"] == nil {
                self.report(
                    "\(path).ejection", node,
                    "needs health: an ejected server comes back only through the active health checks")
            }
        }
        if let node = keys["quorum"], let value = self.int(node, "\(path).quorum", 0...16_777_216) {
            service.quorum = value
        }
        if let node = keys["quorum_hysteresis"],
            let value = self.int(node, "\(path).quorum_hysteresis", 0...16_777_216)
        {
            service.quorumHysteresis = value
            if value > service.quorum {
                self.report(
                    "\(path).quorum_hysteresis", node, "must not exceed quorum (\(service.quorum)), got \(value)")
            }
        }
        if let node = keys["sorry"] {
            service.sorry = self.endpoint(node, "\(path).sorry")
            if let sorry = service.sorry, sorry.port == 0 {
                self.report("\(path).sorry", node, "the sorry server needs a port other than 0")
            }
        }
        if let node = keys["tls"] {
            service.tls = self.tls(node, "\(path).tls")
            if service.proto == .tcp {
                self.report("\(path).tls", node, "terminates TLS on http services only; this one is tcp")
            }
        }
        if let node = keys["http2"], let value = self.bool(node, "\(path).http2") {
            service.http2 = value
            if service.proto == .tcp { self.report("\(path).http2", node, "applies to http services only") }
        }
        if let node = keys["https_redirect"] {
            service.httpsRedirect = self.httpsRedirect(node, "\(path).https_redirect")
            if service.proto == .tcp || keys["tls"] != nil {
                self.report(
                    "\(path).https_redirect", node,
                    "belongs on a plain http service (the one on port 80), not on a tcp or tls one")
            }
        }
        if let node = keys["proxy_protocol"], let text = self.scalar(node, "\(path).proxy_protocol") {
            if let version = ProxyHeader.Version(rawValue: text.lowercased()) {
                service.proxyProtocol = version
            } else if !Self.isOff(text) {
                self.report("\(path).proxy_protocol", node, "'\(text)' is not v1, v2 or off")
            }
            if service.proto != .tcp {
                self.report(
                    "\(path).proxy_protocol", node,
                    "applies to tcp services (http ones tell the real server the client by X-Forwarded-For)")
            }
        }
        if let node = keys["accept_proxy"],
            let list = self.strings(node, "\(path).accept_proxy", example: "[10.0.0.0/8, 127.0.0.1]")
        {
            for (index, text) in list.enumerated() {
                if let network = IPNetwork(text) {
                    service.acceptProxy.append(network)
                } else {
                    self.report(
                        "\(path).accept_proxy[\(index)]", node, "'\(text)' is not an address or network like 10.0.0.0/8"
                    )
                }
            }
        }
        if let node = keys["routes"] {
            service.routes = self.routes(node, "\(path).routes")
            self.checkRouteKinds(service, node, "\(path).routes")
        }
        if let node = keys["pools"] {
            service.pools = self.pools(node, "\(path).pools", parent: service)
            if keys["routes"] == nil { self.report("\(path).pools", node, "pools need routes that send to them") }
        }
        if let node = keys["maxconn"], let value = self.int(node, "\(path).maxconn", 0...1_000_000) {
            service.maxconn = value
        }
        if let node = keys["queue"],
            let m = self.mapping(node, "\(path).queue", allowed: ["size", "timeout"])
        {
            if let n = m["size"], let v = self.int(n, "\(path).queue.size", 0...1_000_000) { service.queue.size = v }
            if let n = m["timeout"], let v = self.duration(n, "\(path).queue.timeout", max: 3600) {
                service.queue.timeout = v
            }
            if service.proto == .tcp {
                self.report("\(path).queue", node, "queues http requests; a tcp connection finding all full is closed")
            }
        }
        if let node = keys["slow_start"], let value = self.durationOrZero(node, "\(path).slow_start") {
            service.slowStart = value
        }
        if let node = keys["autoscale"] {
            service.autoscale = self.autoscale(node, "\(path).autoscale")
            // A replica takes requests only once its check passes: it starts down (alpha). Without a check of
            // the config's, a TCP connect every 250 ms tells when it listens.
            var health = service.health ?? Self.replicaCheck
            health.alpha = true
            service.health = health
            if keys["routes"] != nil {
                self.report("\(path).autoscale", node, "a service with routes autoscales in its pools")
            }
        }
        if keys["routes"] != nil {
            self.checkRoutes(service, keys, path)
            if let n = keys["servers"] {
                self.report("\(path).servers", n, "a service with routes has its real servers in its pools")
            }
        } else if let serversNode = keys["servers"] {
            service.servers = self.servers(serversNode, "\(path).servers")
            if service.proto == .tcp, let index = service.servers.firstIndex(where: { $0.tls != nil }) {
                self.report(
                    "\(path).servers[\(index)].tls", serversNode,
                    "TLS to real servers is for http services; a tcp service passes the client's TLS through")
            }
        } else if keys["autoscale"] == nil {
            self.report("\(path).servers", node, "missing: list the real servers (address, weight)")
        }

        if let node = keys["forward"], let text = self.scalar(node, "\(path).forward") {
            if let mode = ForwardMode(rawValue: text.lowercased()) {
                service.forward = mode
            } else {
                self.report("\(path).forward", node, "'\(text)' is not proxy or nat")
            }
        }
        if let node = keys["masquerade"], let value = self.bool(node, "\(path).masquerade") {
            service.masquerade = value
            if service.forward != .nat {
                self.report("\(path).masquerade", node, "rewrites the client's address on forward: nat services only")
            }
        }
        self.checkKernelForwarding(service, keys, node, path)

        guard self.problems.count == problemsBefore, name != nil, listen != nil else { return nil }
        return service
    }

    /// What `forward: nat` can do: the kernel sees addresses and ports, so the keys of the proxy path (TLS, routes,
    /// headers, queues, retries) do not apply, and the virtual and real addresses are IPv4 with ports.
    mutating func checkKernelForwarding(
        _ service: VirtualServiceConfig, _ keys: [String: Node], _ node: Node, _ path: String
    ) {
        guard service.forward == .nat else {
            if service.proto == .udp {
                self.report(
                    "\(path).protocol", keys["protocol"] ?? node,
                    "udp is forwarded by the kernel: add forward: nat (the proxy path is tcp and http)")
            }
            return
        }
        let forward = keys["forward"] ?? node
        if service.proto == .http {
            self.report(
                "\(path).forward", forward,
                "nat forwards packets and cannot read HTTP; give protocol: tcp (or udp), or keep forward: proxy for "
                    + "routes, TLS and headers")
        }
        let proxyOnly = [
            "tls", "http2", "https_redirect", "routes", "pools", "proxy_protocol", "accept_proxy", "retries",
            "timeouts",
            "limits", "forwarded_for", "max_idle_per_server", "ejection", "maxconn", "queue", "slow_start",
        ]
        for key in proxyOnly where keys[key] != nil {
            self.report(
                "\(path).\(key)", keys[key], "belongs to the proxy path; the kernel does not apply it (forward: nat)")
        }
        if service.listen.isIPv6 || service.listen.port == 0 {
            self.report(
                "\(path).listen", keys["listen"] ?? node,
                "forward: nat needs an IPv4 address and a port, like 10.0.0.100:80 (IPv6 is not forwarded by the kernel path yet)"
            )
        }
        for (index, server) in service.servers.enumerated() where server.address.isIPv6 || server.address.port == 0 {
            self.report(
                "\(path).servers[\(index)].address", keys["servers"] ?? node,
                "forward: nat needs an IPv4 address with a port, got \(server.address)")
        }
        if let sorry = service.sorry, sorry.isIPv6 {
            self.report("\(path).sorry", keys["sorry"] ?? node, "forward: nat needs an IPv4 sorry server")
        }
        if let persistence = service.persistence, persistence.key == .hash {
            self.report("\(path).persistence.key", keys["persistence"] ?? node, "forward: nat persists by source only")
        }
    }

    /// The check autoscaled replicas get when the service has none.
    static var replicaCheck: HealthCheckConfig {
        var check = HealthCheckConfig(kind: .tcp)
        check.interval = 0.25
        check.timeout = 0.25
        check.rise = 1
        check.fall = 2
        return check
    }

    static let routeKeys = [
        "match", "pool", "redirect", "status", "strip_prefix", "rewrite_prefix", "set_request_headers",
        "remove_request_headers", "set_response_headers", "remove_response_headers",
    ]

    mutating func routes(_ node: Node, _ path: String) -> [RouteConfig] {
        guard case .sequence(let items) = node, !items.isEmpty else {
            self.report(path, node, "a list of rules, like [{match: {path_prefix: /api/}, pool: api}, {pool: web}]")
            return []
        }
        return items.enumerated().compactMap { self.route($1, "\(path)[\($0)]") }
    }

    mutating func route(_ node: Node, _ path: String) -> RouteConfig? {
        guard let keys = self.mapping(node, path, allowed: Self.routeKeys) else { return nil }
        let before = self.problems.count
        let actions = ["pool", "redirect", "status"].filter { keys[$0] != nil }
        guard actions.count == 1 else {
            self.report(
                path, node,
                actions.isEmpty
                    ? "says where requests go: pool, redirect or status"
                    : "has \(actions.joined(separator: " and ")): give one")
            return nil
        }
        var action = RouteConfig.Action.respond(status: 404)
        if let n = keys["pool"], let name = self.string(n, "\(path).pool") { action = .pool(name) }
        if let n = keys["status"], let status = self.int(n, "\(path).status", 200...599) {
            action = .respond(status: status)
        }
        if let n = keys["redirect"] {
            if case .scalar = n, let to = self.string(n, "\(path).redirect") {
                action = .redirect(location: to, status: 302, keepPath: false)
            } else if let m = self.mapping(n, "\(path).redirect", allowed: ["to", "status", "keep_path"]) {
                let to = m["to"].flatMap { self.string($0, "\(path).redirect.to") }
                if m["to"] == nil { self.report("\(path).redirect.to", n, "missing: where to send the client") }
                var status = 302
                if let s = m["status"], let v = self.int(s, "\(path).redirect.status", 301...308) {
                    if [301, 302, 303, 307, 308].contains(v) {
                        status = v
                    } else {
                        self.report("\(path).redirect.status", s, "must be 301, 302, 303, 307 or 308, got \(v)")
                    }
                }
                let keep = m["keep_path"].flatMap { self.bool($0, "\(path).redirect.keep_path") } ?? false
                action = .redirect(location: to ?? "", status: status, keepPath: keep)
            }
        }
        var route = RouteConfig(action: action)
        if let n = keys["match"] { route.match = self.routeMatch(n, "\(path).match") }
        if let n = keys["strip_prefix"], let prefix = self.string(n, "\(path).strip_prefix") {
            if !prefix.hasPrefix("/") { self.report("\(path).strip_prefix", n, "a path prefix starts with /") }
            route.rewritePrefix = (prefix, "")
        }
        if let n = keys["rewrite_prefix"], let m = self.mapping(n, "\(path).rewrite_prefix", allowed: ["from", "to"]) {
            let from = m["from"].flatMap { self.string($0, "\(path).rewrite_prefix.from") }
            let to = m["to"].flatMap { self.scalar($0, "\(path).rewrite_prefix.to") } ?? ""
            if let from {
                route.rewritePrefix = (from, to)
            } else {
                self.report("\(path).rewrite_prefix.from", n, "missing: the prefix to replace")
            }
            if keys["strip_prefix"] != nil { self.report(path, node, "strip_prefix or rewrite_prefix, not both") }
        }
        route.setRequestHeaders = self.headerValues(keys["set_request_headers"], "\(path).set_request_headers")
        route.setResponseHeaders = self.headerValues(keys["set_response_headers"], "\(path).set_response_headers")
        if let n = keys["remove_request_headers"] {
            route.removeRequestHeaders =
                self.strings(n, "\(path).remove_request_headers", example: "[Cookie]")?.map { $0.lowercased() } ?? []
        }
        if let n = keys["remove_response_headers"] {
            route.removeResponseHeaders =
                self.strings(n, "\(path).remove_response_headers", example: "[Server]")?.map { $0.lowercased() } ?? []
        }
        return self.problems.count == before ? route : nil
    }

    /// `{Name: value}`; a null value (`~`) means "present, any value" where matching.
    mutating func headerValues(_ node: Node?, _ path: String, allowAny: Bool = false) -> [RouteConfig.Header] {
        guard let node else { return [] }
        guard case .mapping(let mapping) = node else {
            self.report(path, node, "a mapping of names to values, like {X-Env: canary}")
            return []
        }
        var out: [RouteConfig.Header] = []
        for (key, value) in mapping {
            guard let name = key.string, !name.isEmpty else { continue }
            if allowAny, case .scalar(let scalar) = value, scalar.tag == .implicit,
                ["~", "null", ""].contains(scalar.string)
            {
                out.append(.init(name: name.lowercased(), value: nil))
            } else if let text = self.scalar(value, "\(path).\(name)") {
                out.append(.init(name: name.lowercased(), value: text))
            }
        }
        return out
    }

    static let matchKeys = ["host", "path", "path_prefix", "path_regex", "method", "header", "query", "sni"]

    mutating func routeMatch(_ node: Node, _ path: String) -> RouteConfig.Match {
        var match = RouteConfig.Match()
        guard let keys = self.mapping(node, path, allowed: Self.matchKeys) else { return match }
        func list(_ key: String, _ example: String) -> [String] {
            guard let n = keys[key] else { return [] }
            if case .scalar = n { return self.string(n, "\(path).\(key)").map { [$0] } ?? [] }
            return self.strings(n, "\(path).\(key)", example: example) ?? []
        }
        match.hosts = list("host", "[example.com, '*.example.com']").map(RouteConfig.HostPattern.init)
        match.sni = list("sni", "[example.com, '*.example.com']").map(RouteConfig.HostPattern.init)
        match.methods = list("method", "[GET, HEAD]").map { $0.uppercased() }
        let paths = ["path", "path_prefix", "path_regex"].filter { keys[$0] != nil }
        if paths.count > 1 {
            self.report(path, node, "one of path, path_prefix and path_regex, not \(paths.joined(separator: " and "))")
        }
        if let n = keys["path"], let text = self.string(n, "\(path).path") { match.path = .exact(text) }
        if let n = keys["path_prefix"], let text = self.string(n, "\(path).path_prefix") { match.path = .prefix(text) }
        if let n = keys["path_regex"], let text = self.string(n, "\(path).path_regex") { match.path = .regex(text) }
        for (key, text) in [("path", keys["path"]), ("path_prefix", keys["path_prefix"])] {
            if let text, case .exact(let p)? = match.path, key == "path", !p.hasPrefix("/") {
                self.report("\(path).path", text, "a path starts with /")
            }
            if let text, case .prefix(let p)? = match.path, key == "path_prefix", !p.hasPrefix("/") {
                self.report("\(path).path_prefix", text, "a path prefix starts with /")
            }
        }
        match.headers = self.headerValues(keys["header"], "\(path).header", allowAny: true)
        match.query = self.headerValues(keys["query"], "\(path).query", allowAny: true).map {
            RouteConfig.Header(name: $0.name, value: $0.value)
        }
        return match
    }

    /// A tcp service routes TLS it passes through by server name only; an http service by the request only.
    mutating func checkRouteKinds(_ service: VirtualServiceConfig, _ node: Node, _ path: String) {
        var items: [Node] = []
        if case .sequence(let list) = node { items = Array(list) }
        for (index, route) in service.routes.enumerated() {
            let at = index < items.count ? items[index] : node
            let match = route.match
            if service.proto == .tcp {
                var other = match
                other.sni = []
                if !other.isEmpty {
                    self.report("\(path)[\(index)].match", at, "a tcp service routes by sni only (the TLS server name)")
                }
                if case .pool = route.action {
                } else {
                    self.report("\(path)[\(index)]", at, "a tcp service's routes send to a pool")
                }
                if route.rewritePrefix != nil || !route.setRequestHeaders.isEmpty || !route.removeRequestHeaders.isEmpty
                    || !route.setResponseHeaders.isEmpty || !route.removeResponseHeaders.isEmpty
                {
                    self.report(
                        "\(path)[\(index)]", at, "a tcp service passes bytes through: no paths or headers to edit")
                }
            } else if !match.sni.isEmpty {
                self.report(
                    "\(path)[\(index)].match.sni", at,
                    "sni routes TLS a tcp service passes through; an http service matches host")
            }
        }
    }

    mutating func pools(_ node: Node, _ path: String, parent: VirtualServiceConfig) -> [VirtualServiceConfig] {
        guard case .mapping(let mapping) = node, !mapping.isEmpty else {
            self.report(path, node, "a mapping of pool names to pools, like {api: {servers: [10.0.0.1:80]}}")
            return []
        }
        var pools: [VirtualServiceConfig] = []
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                self.report("\(path).\(name)", key, "a pool name is letters, digits, '-', '_' and '.'")
                continue
            }
            if let pool = self.service(value, "\(path).\(name)", pool: (name, parent)) { pools.append(pool) }
        }
        return pools
    }

    /// Routes to pools that exist, pools that routes use, rules that can match, regular expressions that compile.
    mutating func checkRoutes(_ service: VirtualServiceConfig, _ keys: [String: Node], _ path: String) {
        let names = Set(service.pools.compactMap { $0.name.split(separator: "/").last.map(String.init) })
        var items: [Node] = []
        if case .sequence(let list)? = keys["routes"] { items = Array(list) }
        /// The rule's own node (for its line), else the list's.
        func at(_ index: Int) -> Node? { index < items.count ? items[index] : keys["routes"] }
        var used = Set<String>()
        for (index, route) in service.routes.enumerated() {
            guard case .pool(let name) = route.action else { continue }
            used.insert(name)
            if !names.contains(name) && keys["pools"] != nil {
                let known = names.sorted().joined(separator: ", ")
                self.report("\(path).routes[\(index)].pool", at(index), "no pool '\(name)' in pools (\(known))")
            } else if keys["pools"] == nil {
                self.report("\(path).routes[\(index)].pool", at(index), "no pools: add pools with '\(name)' in it")
            }
        }
        for name in names.subtracting(used).sorted() {
            self.report("\(path).pools.\(name)", keys["pools"], "nothing routes to it: add a route or remove the pool")
        }
        for (index, reason) in RouteTable.unreachable(service.routes) {
            self.report("\(path).routes[\(index)]", at(index), reason)
        }
        do {
            _ = try RouteTable(service.routes)
        } catch {
            self.report("\(path).routes[\(error.index)].match.path_regex", at(error.index), error.message)
        }
    }

    static let tlsKeys = [
        "certificates", "min_version", "ciphers", "client_auth", "client_ca", "unknown_name", "alpn",
    ]

    mutating func tls(_ node: Node, _ path: String) -> TLSConfig? {
        guard let keys = self.mapping(node, path, allowed: Self.tlsKeys) else { return nil }
        let before = self.problems.count
        var config = TLSConfig(certificates: [])
        if case .sequence(let items)? = keys["certificates"], !items.isEmpty {
            for (index, item) in items.enumerated() {
                let p = "\(path).certificates[\(index)]"
                guard let m = self.mapping(item, p, allowed: ["cert", "key", "names"]) else { continue }
                let cert = m["cert"].flatMap { self.string($0, "\(p).cert") }
                let key = m["key"].flatMap { self.string($0, "\(p).key") }
                if m["cert"] == nil { self.report("\(p).cert", item, "missing: the PEM file of the certificate chain") }
                if m["key"] == nil { self.report("\(p).key", item, "missing: the PEM file of the private key") }
                var names: [String] = []
                if let n = m["names"],
                    let list = self.strings(n, "\(p).names", example: "[example.com, '*.example.com']")
                {
                    names = list
                }
                if let cert, let key { config.certificates.append(.init(cert: cert, key: key, names: names)) }
            }
        } else {
            self.report(
                "\(path).certificates", keys["certificates"] ?? node,
                "a list of {cert, key} PEM files is required; the first is the default")
        }
        if let n = keys["min_version"], let text = self.scalar(n, "\(path).min_version") {
            if let version = TLSConfig.Version(rawValue: text) {
                config.minVersion = version
            } else {
                self.report("\(path).min_version", n, "'\(text)' is not \"1.2\" or \"1.3\"")
            }
        }
        if let n = keys["ciphers"], let text = self.string(n, "\(path).ciphers") { config.ciphers = text }
        if let n = keys["client_auth"], let text = self.scalar(n, "\(path).client_auth") {
            if let value = TLSConfig.ClientAuth(rawValue: text.lowercased()) {
                config.clientAuth = value
            } else {
                self.report("\(path).client_auth", n, "'\(text)' is not none, optional or required")
            }
        }
        if let n = keys["client_ca"], let text = self.string(n, "\(path).client_ca") { config.clientCA = text }
        if config.clientAuth != .none && config.clientCA == nil {
            self.report(
                "\(path).client_ca", node,
                "client_auth: \(config.clientAuth.rawValue) needs client_ca, the CAs that sign client certificates")
        }
        if let n = keys["unknown_name"], let text = self.scalar(n, "\(path).unknown_name") {
            if let value = TLSConfig.UnknownName(rawValue: text.lowercased()) {
                config.unknownName = value
            } else {
                self.report("\(path).unknown_name", n, "'\(text)' is not default or reject")
            }
        }
        if let n = keys["alpn"], let list = self.strings(n, "\(path).alpn", example: "[h2, http/1.1]") {
            for (index, name) in list.enumerated() where name != "h2" && name != "http/1.1" {
                self.report("\(path).alpn[\(index)]", n, "'\(name)' is not h2 or http/1.1")
            }
            config.alpn = list
        }
        return self.problems.count == before ? config : nil
    }

    mutating func httpsRedirect(_ node: Node, _ path: String) -> HTTPSRedirect? {
        var redirect = HTTPSRedirect()
        if case .scalar = node {
            guard let status = self.int(node, path, 301...308) else { return nil }
            redirect.status = status
        } else {
            guard let keys = self.mapping(node, path, allowed: ["status", "port"]) else { return nil }
            if let n = keys["status"], let status = self.int(n, "\(path).status", 301...308) {
                redirect.status = status
            }
            if let n = keys["port"], let port = self.int(n, "\(path).port", 1...65535) { redirect.port = port }
        }
        guard [301, 302, 307, 308].contains(redirect.status) else {
            self.report(path, node, "the status must be 301, 302, 307 or 308, got \(redirect.status)")
            return nil
        }
        return redirect
    }

    static let healthKeys = [
        "check", "interval", "timeout", "rise", "fall", "jitter", "alpha", "port", "path", "host", "expect_status",
        "digest", "regex", "command",
    ]

    mutating func health(_ node: Node, _ path: String) -> HealthCheckConfig? {
        guard let keys = self.mapping(node, path, allowed: Self.healthKeys) else { return nil }
        guard let checkNode = keys["check"] else {
            self.report("\(path).check", node, "missing: the kind of check, tcp, http or exec")
            return nil
        }
        guard let text = self.scalar(checkNode, "\(path).check") else { return nil }
        guard let kind = HealthCheckConfig.Kind(rawValue: text.lowercased()) else {
            self.report("\(path).check", checkNode, "'\(text)' is not a check; use tcp, http or exec")
            return nil
        }
        var config = HealthCheckConfig(kind: kind)
        if let n = keys["interval"], let v = self.duration(n, "\(path).interval", max: 3600) { config.interval = v }
        if let n = keys["timeout"], let v = self.duration(n, "\(path).timeout", max: 3600) { config.timeout = v }
        if config.timeout > config.interval {
            self.report(
                "\(path).timeout", keys["timeout"] ?? node,
                "must not exceed interval (\(config.interval)s), got \(config.timeout)s")
        }
        if let n = keys["rise"], let v = self.int(n, "\(path).rise", 1...100) { config.rise = v }
        if let n = keys["fall"], let v = self.int(n, "\(path).fall", 1...100) { config.fall = v }
        if let n = keys["jitter"], let text = self.scalar(n, "\(path).jitter") {
            let share = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
            if let share, share >= 0, share <= 0.5 {
                config.jitter = share
            } else {
                self.report(
                    "\(path).jitter", n, "expected a share of the interval from 0 to 0.5 (or 0% to 50%), got '\(text)'")
            }
        }
        if let n = keys["alpha"], let v = self.bool(n, "\(path).alpha") { config.alpha = v }
        if let n = keys["port"], let v = self.int(n, "\(path).port", 1...65535) { config.port = v }
        let httpOnly = ["path", "host", "expect_status", "digest", "regex"]
        for key in httpOnly where keys[key] != nil && kind != .http {
            self.report("\(path).\(key)", keys[key], "applies to check: http only; this check is \(kind.rawValue)")
        }
        if let n = keys["path"], let v = self.string(n, "\(path).path") {
            if v.hasPrefix("/") {
                config.path = v
            } else {
                self.report("\(path).path", n, "must start with /, got '\(v)'")
            }
        }
        if let n = keys["host"], let v = self.string(n, "\(path).host") { config.host = v }
        if let n = keys["expect_status"] { config.expectStatus = self.statusRanges(n, "\(path).expect_status") }
        if let n = keys["digest"], let v = self.string(n, "\(path).digest") {
            let hex = v.lowercased()
            if hex.count == 32, hex.allSatisfy({ $0.isHexDigit }) {
                config.digest = hex
            } else {
                self.report(
                    "\(path).digest", n, "expected an MD5 digest, 32 hex digits (md5sum prints one), got '\(v)'")
            }
        }
        if let n = keys["regex"], let v = self.string(n, "\(path).regex") {
            do {
                _ = try Regex(v)
                config.regex = v
            } catch {
                self.report("\(path).regex", n, "not a valid regular expression: \(error)")
            }
        }
        if let n = keys["command"], let v = self.string(n, "\(path).command") {
            if kind == .exec {
                config.command = v
            } else {
                self.report("\(path).command", n, "applies to check: exec only; this check is \(kind.rawValue)")
            }
        }
        if kind == .exec && config.command == nil && keys["command"] == nil {
            self.report("\(path).command", node, "missing: check: exec needs the command to run")
        }
        return config
    }

    mutating func statusRanges(_ node: Node, _ path: String) -> [StatusRange] {
        // `200`, `200-299`, `"200-299,301"` or a list of those.
        var items: [(String, Node, String)] = []
        switch node {
        case .scalar(let scalar):
            for part in scalar.string.split(separator: ",") { items.append((String(part), node, path)) }
        case .sequence(let list):
            for (index, item) in list.enumerated() {
                if let text = self.scalar(item, "\(path)[\(index)]") { items.append((text, item, "\(path)[\(index)]")) }
            }
        default:
            self.report(path, node, "expected statuses like 200-299 or [200, 301]")
        }
        var ranges: [StatusRange] = []
        for (text, item, itemPath) in items {
            if let range = StatusRange(parsing: String(Substring(text).trimmingSpaces())) {
                ranges.append(range)
            } else {
                self.report(itemPath, item, "'\(text)' is not a status or range of statuses in 100...599, like 200-299")
            }
        }
        if ranges.isEmpty && items.isEmpty { self.report(path, node, "is empty: list the statuses that pass") }
        return ranges.isEmpty ? [StatusRange(200, 399)] : ranges
    }

    mutating func ejection(_ node: Node, _ path: String) -> EjectionConfig? {
        var config = EjectionConfig()
        if case .scalar(let scalar) = node {
            if ["off", "false", "no"].contains(scalar.string.lowercased()) { return nil }
            if ["on", "true", "yes"].contains(scalar.string.lowercased()) { return config }
        }
        guard let keys = self.mapping(node, path, allowed: ["consecutive_failures", "max_percent", "count_5xx"]) else {
            return nil
        }
        if let n = keys["consecutive_failures"], let v = self.int(n, "\(path).consecutive_failures", 1...1000) {
            config.consecutiveFailures = v
        }
        if let n = keys["max_percent"], let v = self.int(n, "\(path).max_percent", 0...100) { config.maxPercent = v }
        if let n = keys["count_5xx"], let v = self.bool(n, "\(path).count_5xx") { config.count5xx = v }
        return config
    }

    mutating func schedulerFlags(_ node: Node, _ path: String, scheduler: SchedulerKind) -> SchedulerFlags {
        var flags = SchedulerFlags()
        guard case .sequence(let list) = node else {
            self.report(path, node, "expected a list such as [fallback, port]")
            return flags
        }
        for (index, item) in list.enumerated() {
            guard let text = self.scalar(item, "\(path)[\(index)]") else { continue }
            switch text {
            case "fallback": flags.fallback = true
            case "port": flags.port = true
            default: self.report("\(path)[\(index)]", item, "'\(text)' is not a flag; use fallback or port")
            }
        }
        if (flags.fallback || flags.port) && scheduler != .sh && scheduler != .mh {
            self.report(
                path, node, "fallback and port apply to the sh and mh schedulers only, not \(scheduler.rawValue)")
        }
        return flags
    }

    mutating func hashKey(_ node: Node, _ path: String, scheduler: SchedulerKind, proto: ServiceProtocol) -> HashKey? {
        var key: HashKey?
        switch node {
        case .scalar(let scalar):
            switch scalar.string {
            case "source": key = .source
            case "destination": key = .destination
            case "path": key = .path
            default:
                self.report(
                    path, node,
                    "'\(scalar.string)' is not a hash key; use source, destination, path, "
                        + "{query: NAME}, {header: NAME} or {cookie: NAME}")
            }
        case .mapping:
            guard let keys = self.mapping(node, path, allowed: ["query", "header", "cookie"]) else { return nil }
            guard keys.count == 1, let (kind, valueNode) = keys.first else {
                self.report(path, node, "give exactly one of query, header or cookie")
                return nil
            }
            guard let name = self.string(valueNode, "\(path).\(kind)") else { return nil }
            switch kind {
            case "query": key = .query(name)
            case "header": key = .header(name)
            default: key = .cookie(name)
            }
        default:
            self.report(path, node, "expected source, destination, path, or {query|header|cookie: NAME}")
        }
        guard let key else { return nil }
        if !scheduler.isHashing {
            self.report(path, node, "the \(scheduler.rawValue) scheduler does not hash; use sh, dh, mh, lblc or lblcr")
            return nil
        }
        if key.needsHTTP && proto == .tcp {
            self.report(path, node, "\(key) needs protocol: http; a tcp service can hash source or destination only")
            return nil
        }
        return key
    }

    mutating func persistence(_ node: Node, _ path: String) -> PersistenceConfig? {
        var config = PersistenceConfig()
        // `persistence: 600` is shorthand for a timeout; `persistence: true` takes the defaults.
        if case .scalar(let scalar) = node {
            if let on = ["true": true, "yes": true, "false": false, "no": false][scalar.string.lowercased()] {
                return on ? config : nil
            }
            guard let timeout = self.duration(node, path) else { return nil }
            config.timeout = timeout
            return config
        }
        guard let keys = self.mapping(node, path, allowed: ["timeout", "netmask", "netmask6", "key"]) else {
            return nil
        }
        if let timeoutNode = keys["timeout"], let value = self.duration(timeoutNode, "\(path).timeout") {
            config.timeout = value
        }
        if let keyNode = keys["key"], let text = self.scalar(keyNode, "\(path).key") {
            if let key = PersistenceConfig.Key(rawValue: text) {
                config.key = key
            } else {
                self.report(
                    "\(path).key", keyNode, "expected source (the client's network) or hash (the service's hash key)")
            }
        }
        if let maskNode = keys["netmask"], let text = self.scalar(maskNode, "\(path).netmask") {
            if let prefix = Self.prefixLength(text, bits: 32) {
                config.prefixV4 = prefix
            } else {
                self.report("\(path).netmask", maskNode, "'\(text)' is not a netmask: write 255.255.255.0 or 24")
            }
        }
        if let maskNode = keys["netmask6"], let text = self.scalar(maskNode, "\(path).netmask6") {
            if let prefix = Self.prefixLength(text, bits: 128) {
                config.prefixV6 = prefix
            } else {
                self.report("\(path).netmask6", maskNode, "'\(text)' is not a prefix length 0...128")
            }
        }
        return config
    }

    /// A prefix length from `24`, `/24` or (IPv4) a contiguous dotted mask `255.255.255.0`.
    static func prefixLength(_ text: String, bits: Int) -> Int? {
        let trimmed = text.hasPrefix("/") ? String(text.dropFirst()) : text
        if let value = Int(trimmed) { return (0...bits).contains(value) ? value : nil }
        guard bits == 32, let bytes = Endpoint.parseIP(trimmed), bytes.count == 4 else { return nil }
        let mask = bytes.reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        let ones = mask.leadingZeroBitCount == 0 ? (~mask).leadingZeroBitCount : 0
        let prefix = mask == 0 ? 0 : ones
        // Contiguous ones only.
        let rebuilt: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix)
        return rebuilt == mask ? prefix : nil
    }

    mutating func timeouts(_ node: Node, _ path: String) -> TimeoutsConfig {
        var config = TimeoutsConfig()
        guard let keys = self.mapping(node, path, allowed: ["connect", "header_read", "idle", "server", "body"]) else {
            return config
        }
        if let n = keys["connect"], let v = self.duration(n, "\(path).connect") { config.connect = v }
        if let n = keys["header_read"], let v = self.duration(n, "\(path).header_read") { config.headerRead = v }
        if let n = keys["idle"], let v = self.duration(n, "\(path).idle") { config.idle = v }
        if let n = keys["server"], let v = self.duration(n, "\(path).server") { config.server = v }
        if let n = keys["body"], let v = self.duration(n, "\(path).body") { config.body = v }
        return config
    }

    mutating func limits(_ node: Node, _ path: String) -> HTTPLimitsConfig {
        var config = HTTPLimitsConfig()
        guard let keys = self.mapping(node, path, allowed: ["max_header_bytes", "max_headers"]) else { return config }
        if let n = keys["max_header_bytes"], let v = self.int(n, "\(path).max_header_bytes", 256...1_048_576) {
            config.maxHeaderBytes = v
        }
        if let n = keys["max_headers"], let v = self.int(n, "\(path).max_headers", 1...10_000) {
            config.maxHeaders = v
        }
        return config
    }

    /// `tls: true`, or `{ca, server_name, verify}`.
    mutating func upstreamTLS(_ node: Node, _ path: String) -> UpstreamTLSConfig? {
        if case .scalar = node {
            guard let on = self.bool(node, path) else { return nil }
            return on ? UpstreamTLSConfig() : nil
        }
        guard let keys = self.mapping(node, path, allowed: ["ca", "server_name", "verify"]) else { return nil }
        var config = UpstreamTLSConfig()
        if let n = keys["ca"] { config.ca = self.string(n, "\(path).ca") }
        if let n = keys["server_name"] { config.serverName = self.string(n, "\(path).server_name") }
        if let n = keys["verify"], let v = self.bool(n, "\(path).verify") { config.verify = v }
        return config
    }

    mutating func servers(_ node: Node, _ path: String) -> [RealServerConfig] {
        guard case .sequence(let list) = node else {
            self.report(path, node, "expected a list of real servers, got \(Self.kind(node))")
            return []
        }
        if list.isEmpty {
            self.report(path, node, "is empty: list at least one real server")
        }
        var out: [RealServerConfig] = []
        var seen: [Endpoint: Int] = [:]
        for (index, item) in list.enumerated() {
            let itemPath = "\(path)[\(index)]"
            // `- 10.0.0.1:80` is shorthand for `- address: 10.0.0.1:80`.
            if case .scalar = item {
                if let address = self.endpoint(item, "\(itemPath).address") {
                    if let first = seen[address] {
                        self.report("\(itemPath).address", item, "\(address) is already \(path)[\(first)]")
                    }
                    seen[address] = index
                    out.append(RealServerConfig(address: address))
                }
                continue
            }
            guard
                let keys = self.mapping(
                    item, itemPath, allowed: ["address", "weight", "upper", "lower", "tls", "maxconn"])
            else {
                continue
            }
            guard let addressNode = keys["address"] else {
                self.report("\(itemPath).address", item, "missing: the real server's ip:port")
                continue
            }
            guard let address = self.endpoint(addressNode, "\(itemPath).address") else { continue }
            if address.port == 0 {
                self.report("\(itemPath).address", addressNode, "a real server needs a port other than 0")
            }
            if let first = seen[address] {
                self.report("\(itemPath).address", addressNode, "\(address) is already \(path)[\(first)]")
            }
            seen[address] = index
            var server = RealServerConfig(address: address)
            if let n = keys["weight"], let v = self.int(n, "\(itemPath).weight", RealServerConfig.weights) {
                server.weight = v
            }
            if let n = keys["upper"], let v = self.int(n, "\(itemPath).upper", 0...1_000_000) { server.upper = v }
            if let n = keys["tls"] { server.tls = self.upstreamTLS(n, "\(itemPath).tls") }
            if let n = keys["lower"], let v = self.int(n, "\(itemPath).lower", 0...1_000_000) { server.lower = v }
            if let n = keys["maxconn"], let v = self.int(n, "\(itemPath).maxconn", 0...1_000_000) {
                server.maxconn = v
                if server.upper > 0 { self.report("\(itemPath).maxconn", n, "give maxconn or upper, not both") }
            }
            if server.lower > 0 && server.upper == 0 {
                self.report("\(itemPath).lower", keys["lower"], "lower needs upper: it is where a full server reopens")
            } else if server.upper > 0 && server.lower >= server.upper {
                self.report(
                    "\(itemPath).lower", keys["lower"], "must be below upper (\(server.upper)), got \(server.lower)")
            }
            out.append(server)
        }
        return out
    }
}
