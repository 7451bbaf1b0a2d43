import SwiftVSConfigKit
/// The director's whole configuration: what `swiftvs director --config FILE` reads.
///
/// Every field has a default except the services themselves; `ConfigLoader` fills the defaults and reports
/// every problem it finds, each with its key path and line.
public struct DirectorConfig: Sendable, Equatable {
    /// Event-loop threads. Default: the number of cores.
    public var threads: Int?
    /// The virtual services, in file order.
    public var services: [VirtualServiceConfig]
    /// The admin API (runtime control, `/metrics`); nil when turned off with `admin: off`.
    public var admin: AdminConfig? = AdminConfig()
    /// On SIGTERM the director stops accepting and gives requests in flight this long to finish. Default 30 s.
    public var drainTimeout: Double = 30
    /// VRRPv3 high availability; nil when the director runs alone.
    public var ha: HAConfig?
    /// One line per request (and tcp connection); nil = none.
    public var accessLog: AccessLogConfig?

    public init(threads: Int? = nil, services: [VirtualServiceConfig], admin: AdminConfig? = AdminConfig()) {
        self.threads = threads
        self.services = services
        self.admin = admin
    }
}

/// `tcp` is a full L4 proxy (the director's NAT mode); `http` is an HTTP/1.1 reverse proxy.
public enum ServiceProtocol: String, Sendable, CaseIterable {
    case tcp
    case http
    /// Datagrams, forwarded by the kernel (`forward: nat` only).
    case udp
}

/// How a service's packets reach its real servers.
public enum ForwardMode: String, Sendable, CaseIterable {
    /// The director is a full proxy (as HAProxy): it accepts the client's connection and opens its own.
    case proxy
    /// The kernel rewrites each flow's destination to a real server and back (LVS-NAT), programmed through
    /// nf_tables: the real servers route back through the director and see the client's own address.
    case nat
}

/// What a hashing scheduler (sh, dh, mh, lblc, lblcr) hashes.
public enum HashKey: Sendable, Equatable, CustomStringConvertible {
    /// The client's IP address (IPVS `sh`/`mh`). The default for sh and mh.
    case source
    /// The virtual service's own address (IPVS `dh`, `lblc`, `lblcr` in `tcp` mode) or the Host header in `http` mode.
    case destination
    /// The request path without the query (`http` only).
    case path
    /// One query parameter's value (`http` only): `hash: {query: room}`.
    case query(String)
    /// One request header's value (`http` only): `hash: {header: X-Room}`.
    case header(String)
    /// One cookie's value (`http` only): `hash: {cookie: session}`.
    case cookie(String)

    public var description: String {
        switch self {
        case .source: return "source"
        case .destination: return "destination"
        case .path: return "path"
        case .query(let name): return "query \(name)"
        case .header(let name): return "header \(name)"
        case .cookie(let name): return "cookie \(name)"
        }
    }

    /// Keys that need an HTTP request to be read.
    public var needsHTTP: Bool {
        switch self {
        case .source, .destination: return false
        case .path, .query, .header, .cookie: return true
        }
    }
}

/// IPVS persistence: a client (its address masked by `netmask`) keeps its real server for `timeout`; or, with
/// `key: hash`, every request with the same hash key (a room, a session) does: affinity that survives pool changes.
public struct PersistenceConfig: Sendable, Equatable {
    /// What a template is keyed by.
    public enum Key: String, Sendable, Equatable {
        /// The client's address under the netmask (IPVS).
        case source
        /// The service's `hash` key: a query parameter, header, cookie or the path.
        case hash
    }

    /// Seconds a template lives after the last connection it controls closed. Default 300 (ipvsadm `-p`).
    public var timeout: Double = 300
    /// Default `source`.
    public var key: Key = .source
    /// IPv4 prefix length the client address is masked with. Default 32 (ipvsadm `-M 255.255.255.255`).
    public var prefixV4: Int = 32
    /// IPv6 prefix length. Default 128.
    public var prefixV6: Int = 128

    public init(timeout: Double = 300, prefixV4: Int = 32, prefixV6: Int = 128) {
        self.timeout = timeout
        self.prefixV4 = prefixV4
        self.prefixV6 = prefixV6
    }
}

/// Timeouts in seconds.
public struct TimeoutsConfig: Sendable, Equatable {
    /// Connecting to a real server. Default 3 s; on expiry the next real server is tried.
    public var connect: Double = 3
    /// A client has this long to send a whole request head once it started one. Default 10 s, then 408.
    public var headerRead: Double = 10
    /// An idle connection (keep-alive client with no request, or a tcp connection with no bytes either way) is
    /// closed after this long. Default 60 s.
    public var idle: Double = 60
    /// A real server has this long to start its response, and may be silent this long within one. Default 60 s, then 504.
    public var server: Double = 60
    /// A request body has this long to arrive whole once its head has, so that a body that trickles in is bounded
    /// as a head is by `headerRead`. Default 60 s, then 408 (or a close, if the response has begun).
    public var body: Double = 60

    public init(
        connect: Double = 3, headerRead: Double = 10, idle: Double = 60, server: Double = 60,
        body: Double = 60
    ) {
        self.connect = connect
        self.headerRead = headerRead
        self.idle = idle
        self.server = server
        self.body = body
    }
}

/// HTTP request limits.
public struct HTTPLimitsConfig: Sendable, Equatable {
    /// Most bytes of request line plus headers. Default 16384; beyond it the client gets 431.
    public var maxHeaderBytes: Int = 16384
    /// Most header fields in one request. Default 100; beyond it the client gets 431.
    public var maxHeaders: Int = 100

    public init(maxHeaderBytes: Int = 16384, maxHeaders: Int = 100) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
    }
}

/// IPVS scheduler flags (`ipvsadm -b`).
public struct SchedulerFlags: Sendable, Equatable {
    /// sh/mh: when the hashed real server is unavailable, rehash to another (`sh-fallback`, `mh-fallback`).
    public var fallback: Bool = false
    /// sh/mh with `hash: source`: hash the client's port too (`sh-port`, `mh-port`).
    public var port: Bool = false

    public init(fallback: Bool = false, port: Bool = false) {
        self.fallback = fallback
        self.port = port
    }
}

/// TLS towards a real server (`servers[M].tls`).
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// PEM file of the CAs that sign the server's certificate; nil = the system's trust store.
    public var ca: String?
    /// Sent as SNI and checked against the certificate; nil = no SNI, and the certificate's chain is checked
    /// but not its name.
    public var serverName: String?
    /// Check the certificate at all (off only for tests and throw-away setups).
    public var verify = true

    public init(ca: String? = nil, serverName: String? = nil, verify: Bool = true) {
        self.ca = ca
        self.serverName = serverName
        self.verify = verify
    }
}

/// One real server of a virtual service.
public struct RealServerConfig: Sendable, Equatable {
    /// The weights a real server may have (IPVS's): the config, `adm weight` and `adm add` all check this one range.
    public static let weights = 0...65535

    public var address: Endpoint
    /// 0...65535 (`weights`), default 1. 0 quiesces: no new connections or requests, existing ones finish.
    public var weight: Int = 1
    /// Upper connection threshold (ipvsadm `-x`); 0 = none. At or above it the server takes no new connections.
    public var upper: Int = 0
    /// Lower threshold (ipvsadm `-y`); the server takes connections again below it. 0 = three quarters of `upper`.
    public var lower: Int = 0
    /// http: requests (and health checks) go to this server over TLS; nil = clear text.
    public var tls: UpstreamTLSConfig?
    /// Requests (http) or connections (tcp) in flight at most (HAProxy's `maxconn`); 0 = the service's `maxconn`.
    /// A full server takes nothing new; http requests that find every server full wait in the service's `queue`.
    public var maxconn: Int = 0

    public init(address: Endpoint, weight: Int = 1, upper: Int = 0, lower: Int = 0) {
        self.address = address
        self.weight = weight
        self.upper = upper
        self.lower = lower
    }
}

/// `queue`: HAProxy's server queue and `timeout queue`.
public struct QueueConfig: Sendable, Equatable {
    /// Requests waiting at most; beyond, 503 at once. Default 1000.
    public var size = 1000
    /// How long a request waits for a slot before it gets 503. Default 5 s.
    public var timeout: Double = 5

    public init(size: Int = 1000, timeout: Double = 5) {
        self.size = size
        self.timeout = timeout
    }
}

/// One virtual service: a listening address and the real servers behind it.
public struct VirtualServiceConfig: Sendable, Equatable {
    public var name: String
    public var listen: Endpoint
    /// Default `http`.
    public var proto: ServiceProtocol = .http
    /// Default `wlc`, as IPVS.
    public var scheduler: SchedulerKind = .wlc
    public var flags: SchedulerFlags = .init()
    /// What the hashing schedulers hash; nil = the scheduler's own default (see `HashKey`).
    public var hash: HashKey?
    /// nil = no persistence.
    public var persistence: PersistenceConfig?
    /// How many other real servers an idempotent request (http) or a connection (tcp) is retried on when its real
    /// server cannot be reached, or (http) drops the connection before any response byte. Default 1.
    public var retries: Int = 1
    public var timeouts: TimeoutsConfig = .init()
    public var limits: HTTPLimitsConfig = .init()
    /// Add the client's address to `X-Forwarded-For` (http). Default true.
    public var forwardedFor: Bool = true
    /// Idle upstream connections kept per real server per event loop (http). Default 256.
    public var maxIdlePerServer: Int = 256
    /// Active health checks; nil = none (every server counts as up).
    public var health: HealthCheckConfig?
    /// Passive ejection (http); needs `health`. nil = off.
    public var ejection: EjectionConfig?
    /// Least total weight of servers in rotation for the service to count as up. Default 1.
    public var quorum: Int = 1
    /// Band around `quorum` against flapping (keepalived `hysteresis`). Default 0.
    public var quorumHysteresis: Int = 0
    /// The server that takes all new traffic while the quorum is lost (keepalived `sorry_server`).
    public var sorry: Endpoint?
    /// TLS termination (http); nil = clear text.
    public var tls: TLSConfig?
    /// HTTP/2 towards clients (http): offered by ALPN with `tls`, and in clear text to clients that start with its
    /// preface (prior knowledge, h2c). Default true.
    public var http2 = true
    /// Every request answered with a redirect to HTTPS (http, without `tls`); nil = off.
    public var httpsRedirect: HTTPSRedirect?
    /// http: routing rules, in order (the first that matches wins); empty = every request to `servers`.
    public var routes: [RouteConfig] = []
    /// http with `routes`: the pools the rules send to, each a service of its own without a listener (named
    /// `SERVICE/POOL`; they also appear, flattened, in `DirectorConfig.services`).
    public var pools: [VirtualServiceConfig] = []
    /// For a pool: the service whose routes send to it; nil for a service with a listener.
    public var poolOf: String?
    /// tcp: each connection to a real server starts with a PROXY header of this version; nil = none.
    public var proxyProtocol: ProxyHeader.Version?
    /// tcp: clients from these networks start with a PROXY header, whose source is then the client's address;
    /// others are refused. Empty = no PROXY header is read.
    public var acceptProxy: [IPNetwork] = []
    /// Every real server's `maxconn` unless it has its own (HAProxy's `default-server maxconn`); 0 = no limit.
    public var maxconn: Int = 0
    /// http: requests that find every real server full (or, autoscaled from zero, no replica yet) wait here.
    public var queue = QueueConfig()
    /// A real server that joins the rotation (added, or back up) ramps from 10 % of its weight to all of it over
    /// this long (HAProxy's `slowstart`, Envoy's slow start); 0 = at once. Weighted schedulers only.
    public var slowStart: Double = 0
    /// Replicas started and stopped by the director with HPA's algorithm; nil = the servers are as listed.
    public var autoscale: AutoscaleConfig?
    /// `proxy` (default) or `nat` (the kernel forwards; tcp and udp services).
    public var forward: ForwardMode = .proxy
    /// `forward: nat`: the director also rewrites the client's address to its own (full NAT), for real servers
    /// that cannot route back through it; they then see the director's address. Default false.
    public var masquerade = false
    public var servers: [RealServerConfig]

    public init(
        name: String,
        listen: Endpoint,
        proto: ServiceProtocol = .http,
        scheduler: SchedulerKind = .wlc,
        servers: [RealServerConfig]
    ) {
        self.name = name
        self.listen = listen
        self.proto = proto
        self.scheduler = scheduler
        self.servers = servers
    }

    /// The key the scheduler hashes, after defaults.
    public var effectiveHash: HashKey {
        if let hash = self.hash { return hash }
        switch self.scheduler {
        case .dh, .lblc, .lblcr: return .destination
        default: return .source
        }
    }
}
