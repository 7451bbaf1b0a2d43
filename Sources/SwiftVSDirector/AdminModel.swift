import SwiftVSSystem
import SwiftVSCore

/// A virtual service as the admin API reports it (`GET /api/services`), and as `swiftvs adm` reads it.
public struct ServiceStatus: Codable, Sendable, Equatable {
    public var name: String
    public var listen: String
    public var proto: String
    public var scheduler: String
    /// `up` while the quorum holds, else `down`.
    public var state: HealthState
    public var quorum: Int
    public var healthyWeight: Int
    /// The sorry server, and whether it has the traffic now.
    public var sorry: String?
    public var sorryActive: Bool
    /// The health check kind, if any (`tcp`, `http`, `exec`).
    public var check: String?
    /// For a pool: the service whose routes send to it.
    public var poolOf: String?
    /// Client connections accepted; requests or connections that found no real server.
    public var connections: Int
    public var noServer: Int
    public var servers: [ServerStatus]
    /// `proxy` or `nat` (nil from directors before the kernel path: proxy).
    public var forward: String? = nil
}

/// Where a real server stands, as the admin API reports it.
public enum ServerState: String, Codable, Sendable, Equatable {
    case up, down
    /// Taken out of rotation by an operator (`swiftvs adm disable`); its health checks go on.
    case disabled
}

/// A real server as the admin API reports it: `ipvsadm -L -n --stats --rate` plus health.
public struct ServerStatus: Codable, Sendable, Equatable {
    public var address: String
    public var weight: Int
    public var upper: Int
    public var lower: Int
    public var enabled: Bool
    /// `up`, `down` (health) or `disabled` (by an operator).
    public var state: ServerState
    /// Why it is in that state.
    public var reason: String
    /// Seconds since the state last changed.
    public var sinceSeconds: Double
    public var active: Int
    public var inactive: Int
    /// Connections (tcp) or requests (http) sent here.
    public var total: Int
    public var bytesIn: Int
    public var bytesOut: Int
    /// `forward: nat`: packets each way, from the kernel's counters (nil on the proxy path).
    public var packetsIn: Int? = nil
    public var packetsOut: Int? = nil
    /// http responses by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    public var responses: [Int]
    public var failures: Int
    public var ejections: Int
    /// Smoothed per-second rates, as `ipvsadm --rate`.
    public var cps: Double
    public var inBps: Double
    public var outBps: Double
    /// http: response-time percentiles over the last 10 s, in milliseconds; nil without requests.
    public var p50Ms: Double?
    public var p99Ms: Double?
    /// The last check's result and how long it took; checks run and failed.
    public var lastCheck: String?
    public var lastCheckMs: Double?
    public var checkMsSum: Double
    public var checks: Int
    public var checkFailures: Int
    /// Health state changes (down and up) so far.
    public var transitions: Int
}

extension VirtualService {
    /// A response-time percentile in ms over the window the snapshots cover (up to 10 s), nil without requests.
    static func percentile(_ q: Double, _ member: RealServerState) -> Double? {
        let now = member.counters.latency.snapshot()
        return LatencyHistogram.quantile(q, newer: now, older: member.latencyHistory.first ?? []).map { $0 * 1000 }
    }

    /// The service and its real servers as they are now.
    public func status() -> ServiceStatus {
        let now = Monotonic.seconds()
        let poolsUp = self.routing?.pools.values.contains { $0.state.withLock { $0.quorum.isUp } } ?? false
        return self.state.withLock { state in
            let nat = state.config.forward == .nat
            let servers = state.realServers.keys.sorted().map { id -> ServerStatus in
                let member = state.realServers[id]!
                let counters = member.counters
                let health = member.health
                let serverState: ServerState = !member.enabled ? .disabled : (health?.state ?? .up) == .up ? .up : .down
                var reason = !member.enabled ? "disabled by an operator" : (health?.reason ?? "no health check")
                if member.enabled, let health, health.transitions == 0, let last = health.last {
                    // No change yet: say what the checks see rather than how the server started.
                    switch (health.state, last.ok) {
                    case (.up, true): reason = "checks passing: \(last.detail)"
                    case (.up, false): reason = "check failed \(health.streak)/\(health.fall): \(last.detail)"
                    case (.down, true): reason = "check passed \(health.streak)/\(health.rise): \(last.detail)"
                    case (.down, false): reason = "\(health.reason); last check failed: \(last.detail)"
                    }
                }
                var status = ServerStatus(
                    address: member.config.address.description, weight: member.config.weight,
                    upper: member.config.upper, lower: member.config.lower, enabled: member.enabled, state: serverState,
                    reason: reason, sinceSeconds: health.map { now - $0.since } ?? 0,
                    active: counters.active.load(ordering: .relaxed),
                    inactive: counters.inactive.load(ordering: .relaxed),
                    total: counters.total.load(ordering: .relaxed), bytesIn: counters.bytesIn.load(ordering: .relaxed),
                    bytesOut: counters.bytesOut.load(ordering: .relaxed), responses: counters.responsesByClass,
                    failures: counters.failures.load(ordering: .relaxed),
                    ejections: counters.ejections.load(ordering: .relaxed),
                    cps: member.rates.conns.rate, inBps: member.rates.bytesIn.rate, outBps: member.rates.bytesOut.rate,
                    p50Ms: Self.percentile(0.5, member), p99Ms: Self.percentile(0.99, member),
                    lastCheck: health?.last.map { ($0.ok ? "passed: " : "failed: ") + $0.detail },
                    lastCheckMs: member.lastCheckSeconds.map { $0 * 1000 }, checkMsSum: member.checkSecondsSum * 1000,
                    checks: health?.checks ?? 0, checkFailures: health?.failures ?? 0,
                    transitions: health?.transitions ?? 0
                )
                if nat {
                    status.packetsIn = counters.packetsIn.load(ordering: .relaxed)
                    status.packetsOut = counters.packetsOut.load(ordering: .relaxed)
                }
                return status
            }
            let config = state.config
            // A listener with routes has no servers of its own: it is up while one of its pools is.
            let up = config.routes.isEmpty ? state.quorum.isUp : poolsUp
            return ServiceStatus(
                name: config.name, listen: config.listen.description, proto: config.proto.rawValue,
                scheduler: config.routes.isEmpty ? config.scheduler.rawValue : "routes",
                state: up ? .up : .down, quorum: config.quorum,
                healthyWeight: state.rotation.healthyWeight, sorry: config.sorry?.description,
                sorryActive: state.rotation.sorry, check: config.health?.kind.rawValue, poolOf: config.poolOf,
                connections: self.stats.connections.load(ordering: .relaxed),
                noServer: self.stats.noServer.load(ordering: .relaxed), servers: servers,
                forward: config.forward.rawValue
            )
        }
    }
}
