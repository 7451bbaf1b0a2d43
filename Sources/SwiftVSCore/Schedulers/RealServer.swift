import SwiftVSConfigKit
import Synchronization

/// Live counters of one real server. They outlive snapshots: a weight change rebuilds the snapshot but the
/// connections already open on the server still count against it.
public final class ServerCounters: Sendable {
    /// Connections (tcp) or requests in flight (http) now.
    public let active = Atomic<Int>(0)
    /// IPVS counts connections that are not established (closing) here; lc/wlc weigh them 1/256 of an active one.
    public let inactive = Atomic<Int>(0)
    /// IPVS `IP_VS_DEST_F_OVERLOAD`: set at the upper threshold, cleared below the lower one.
    public let overloaded = Atomic<Bool>(false)
    /// Connections or requests ever sent here.
    public let total = Atomic<Int>(0)
    /// Bytes from clients to this server, and back (http: body bytes; tcp: every byte).
    public let bytesIn = Atomic<Int>(0)
    public let bytesOut = Atomic<Int>(0)
    /// Packets each way (`forward: nat`, from the kernel's counters; the proxy path counts bytes only).
    public let packetsIn = Atomic<Int>(0)
    public let packetsOut = Atomic<Int>(0)
    /// http responses by class, 1xx to 5xx.
    public let responses1xx = Atomic<Int>(0)
    public let responses2xx = Atomic<Int>(0)
    public let responses3xx = Atomic<Int>(0)
    public let responses4xx = Atomic<Int>(0)
    public let responses5xx = Atomic<Int>(0)
    /// Connects that failed, and connections lost before a response began.
    public let failures = Atomic<Int>(0)
    /// Failures (and, with `count_5xx`, 5xx responses) in a row, for passive ejection.
    public let failureStreak = Atomic<Int>(0)
    /// Times passive ejection took this server out.
    public let ejections = Atomic<Int>(0)
    /// http: response times (the request's head to the response's end), for p50/p99.
    public let latency = LatencyHistogram()

    public init() {}

    /// Counts one response by its status class.
    @inline(__always)
    public func countResponse(status: Int) {
        switch status {
        case ..<200: self.responses1xx.wrappingAdd(1, ordering: .relaxed)
        case ..<300: self.responses2xx.wrappingAdd(1, ordering: .relaxed)
        case ..<400: self.responses3xx.wrappingAdd(1, ordering: .relaxed)
        case ..<500: self.responses4xx.wrappingAdd(1, ordering: .relaxed)
        default: self.responses5xx.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Responses by class, 1xx first.
    public var responsesByClass: [Int] {
        [
            self.responses1xx.load(ordering: .relaxed), self.responses2xx.load(ordering: .relaxed),
            self.responses3xx.load(ordering: .relaxed), self.responses4xx.load(ordering: .relaxed),
            self.responses5xx.load(ordering: .relaxed),
        ]
    }

    public var isOverloaded: Bool { self.overloaded.load(ordering: .relaxed) }

    /// Counts one more connection and sets the overload flag at `upper` (0 = no threshold), as `ip_vs_bind_dest`.
    @inline(__always)
    public func open(upper: Int) {
        let now = self.active.wrappingAdd(1, ordering: .relaxed).newValue
        self.total.wrappingAdd(1, ordering: .relaxed)
        if upper > 0, now + self.inactive.load(ordering: .relaxed) >= upper {
            self.overloaded.store(true, ordering: .relaxed)
        }
    }

    /// Counts one connection gone and clears the overload flag below `lower` (or below ¾ of `upper` when `lower`
    /// is 0), as `ip_vs_unbind_dest`.
    @inline(__always)
    public func close(upper: Int, lower: Int) {
        let now = self.active.wrappingSubtract(1, ordering: .relaxed).newValue
        guard self.overloaded.load(ordering: .relaxed) else { return }
        let total = now + self.inactive.load(ordering: .relaxed)
        let clear: Bool
        if lower > 0 {
            clear = total < lower
        } else if upper > 0 {
            clear = total * 4 < upper * 3
        } else {
            clear = true
        }
        if clear { self.overloaded.store(false, ordering: .relaxed) }
    }
}

/// One real server as a snapshot sees it: immutable config plus shared live counters.
///
/// A server out of rotation (health down, or disabled) stays in the snapshot with `weight` 0, so that every
/// scheduler passes it over as it passes over a quiesced one, while the hashing tables (mh, sh), built from
/// `configuredWeight`, keep its slots: a health flip moves only that server's keys, never the others'.
public struct RealServer: Sendable {
    /// Stable across snapshots (persistence templates and upstream pools refer to it).
    public let id: Int
    public let endpoint: Endpoint
    /// `endpoint` as text, made once per snapshot rather than per logged request.
    public let endpointText: String
    /// The weight new connections see: the configured one, or 0 while out of rotation.
    public let weight: Int
    /// The weight from the config or `adm weight`, whatever the server's health.
    public let configuredWeight: Int
    /// Healthy and enabled. A server out of rotation keeps no persistent clients and its hash keys go elsewhere.
    public let inRotation: Bool
    public let upper: Int
    public let lower: Int
    public let counters: ServerCounters

    public init(
        id: Int, endpoint: Endpoint, weight: Int, upper: Int = 0, lower: Int = 0,
        counters: ServerCounters = .init(), inRotation: Bool = true
    ) {
        self.id = id
        self.endpoint = endpoint
        self.endpointText = endpoint.description
        self.configuredWeight = weight
        self.weight = inRotation ? weight : 0
        self.inRotation = inRotation
        self.upper = upper
        self.lower = lower
        self.counters = counters
    }

    @inline(__always) public var active: Int { self.counters.active.load(ordering: .relaxed) }
    @inline(__always) public var isOverloaded: Bool { self.counters.overloaded.load(ordering: .relaxed) }

    /// IPVS `ip_vs_dest_conn_overhead`: active connections weigh 256 times an inactive one.
    @inline(__always)
    public var overhead: Int {
        (self.counters.active.load(ordering: .relaxed) << 8) + self.counters.inactive.load(ordering: .relaxed)
    }

    /// Can take a new connection: weight above 0 and not over its upper threshold.
    @inline(__always) public var isAvailable: Bool { self.weight > 0 && !self.isOverloaded }
}

/// What one pick needs besides the servers.
public struct PickInput: Sendable {
    /// The hashing schedulers' key as 32 bits: the folded client address (plus port with the `port` flag), the
    /// folded destination, or a string key's hash (`KeyHash`).
    public var key: UInt32
    /// Monotonic seconds, for the lblc/lblcr caches.
    public var now: Double

    public init(key: UInt32 = 0, now: Double = 0) {
        self.key = key
        self.now = now
    }
}

/// The scheduling algorithms of IPVS.
public enum SchedulerKind: String, Sendable, CaseIterable {
    case rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos

    /// Schedulers that read `PickInput.key`.
    public var isHashing: Bool {
        switch self {
        case .sh, .dh, .mh, .lblc, .lblcr: return true
        default: return false
        }
    }

    public var summary: String {
        switch self {
        case .rr: return "round robin"
        case .wrr: return "weighted round robin"
        case .lc: return "least connections"
        case .wlc: return "weighted least connections (default)"
        case .lblc: return "locality-based least connections"
        case .lblcr: return "locality-based least connections with replication"
        case .dh: return "destination hashing"
        case .sh: return "source hashing"
        case .sed: return "shortest expected delay"
        case .nq: return "never queue"
        case .fo: return "weighted failover"
        case .ovf: return "weighted overflow"
        case .mh: return "Maglev consistent hashing"
        case .twos: return "weighted random two choices"
        }
    }
}

/// One scheduling algorithm: built from a snapshot's servers off the hot path, then asked for picks.
///
/// `pick` is synchronous, allocation-free in the steady state, and returns the index of the chosen server in
/// `servers` (the same array it was built from) or nil when no server can take the connection.
public protocol SchedulerAlgorithm: Sendable {
    init(servers: [RealServer], flags: SchedulerFlags)
    mutating func pick<R: RandomNumberGenerator>(_ servers: [RealServer], _ input: PickInput, _ random: inout R) -> Int?
}

/// The comparison of wlc, sed, lblc and lblcr: among the available servers at `indices`, the first with the least
/// `overhead` per weight (compared by cross-multiplying, as the kernel does, so no division).
@inline(__always)
func leastPerWeight<Indices: Sequence<Int>>(
    _ servers: [RealServer], among indices: Indices, overhead: (RealServer) -> Int
) -> Int? {
    var least: Int?
    var leastOverhead = 0
    for index in indices where servers[index].isAvailable {
        let value = overhead(servers[index])
        if let current = least {
            if leastOverhead * servers[index].weight > value * servers[current].weight {
                least = index
                leastOverhead = value
            }
        } else {
            least = index
            leastOverhead = value
        }
    }
    return least
}

/// wlc's pick (least overhead per weight), used too by lblc, lblcr and retries; `skip` leaves servers out.
@inline(__always)
func leastWeightedOverhead(_ servers: [RealServer], skipping skip: (Int) -> Bool = { _ in false }) -> Int? {
    withoutActuallyEscaping(skip) { skip in
        leastPerWeight(servers, among: servers.indices.lazy.filter { !skip($0) }, overhead: \.overhead)
    }
}
