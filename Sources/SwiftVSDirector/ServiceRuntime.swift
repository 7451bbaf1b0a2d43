import SwiftVSConfigKit
import SwiftVSSystem
import Logging
import NIOCore
import SwiftVSCore
import Synchronization

/// A real server as the data plane holds it for one connection or request: the snapshot entry (with its live
/// counters), its socket address, and the in-flight slot `VirtualService.schedule` took on it, which `release`
/// gives back.
///
/// One real server, one name through the layers: `RealServerConfig` (what the config says), `RealServerState`
/// (what the control plane keeps: health, enabled, rates), `RealServerStatus` (what the rotation and quorum see),
/// `RealServer` (the scheduler snapshot's entry), `RealServerSlot` (what a request holds), `RealServerChecker` (its
/// health probe).
struct RealServerSlot {
    let server: RealServer
    let address: SocketAddress
    /// The persistence template this connection holds open (IPVS's controlled connections), if any.
    var hold: (service: VirtualService, key: PersistenceKey)? = nil

    @inline(__always) func release() {
        self.server.counters.close(upper: self.server.upper, lower: self.server.lower)
        if let hold { hold.service.releaseTemplate(hold.key, server: self.server.id) }
    }
}

/// Counters of a virtual service itself (its real servers count the rest).
final class ServiceStats: Sendable {
    /// Client connections accepted.
    let connections = Atomic<Int>(0)
    /// Requests (http) or connections (tcp) that found no real server.
    let noServer = Atomic<Int>(0)
}

/// The id the sorry server has in snapshots: never a real server's.
let sorryServerID = -1

/// One virtual service while it runs: its config, its real servers with their health, and the scheduling state the
/// event loops pick from.
///
/// Two locks, never taken the other way round: `state` (the control plane: realServers, health, quorum, config) and
/// `picker` (what a pick reads and moves: the snapshot's servers, the scheduler's position and caches, persistence).
/// A change (weight, membership, health, reload) builds the new server list and its scheduler, Maglev's table
/// included, under `state` only, then swaps them into `picker` in one short step; picks take `picker` alone, for
/// one scheduler step, so no pick waits for a table to be built.
///
/// A reload that keeps the service's name applies the new config to this same object, so connections, counters and
/// health state carry over; connections read the config once, when they are accepted.
/// A service's routes, compiled, and its pools by their short name.
struct Routing: Sendable {
    let table: RouteTable
    let pools: [String: VirtualService]
}

public final class VirtualService: Sendable {
    public let name: String
    let logger: Logger
    let stats = ServiceStats()
    /// The health-check drivers of this service's real servers.
    let checks: ServiceChecks
    /// Where new persistence templates go (the persistence sync to the peer director); nil when not syncing.
    let templateSink = Mutex<(@Sendable (String, PersistenceKey, Endpoint) -> Void)?>(nil)

    /// A real server as the control plane keeps it.
    struct RealServerState {
        var config: RealServerConfig
        var address: SocketAddress
        let counters: ServerCounters
        var enabled = true
        var health: HealthTracker?
        var lastCheckSeconds: Double?
        var checkSecondsSum = 0.0
        var checkCount = 0
        var rates = ServerRates()
        /// Response-time snapshots, every 2 s, the oldest first: p50/p99 are over the last 10 s.
        var latencyHistory: [[Int]] = []
        /// When it last joined the rotation (added, up, enabled), for `slow_start`; nil = in at full weight.
        var joined: Double?
        /// Whether it was in rotation at the last publish (to see it join).
        var wasInRotation = false
        /// A replica the autoscaler added: a reload keeps it, whatever the config's `servers` say.
        var managed = false
    }

    struct ServerRates {
        var conns = RateEstimator()
        var bytesIn = RateEstimator()
        var bytesOut = RateEstimator()
    }

    struct State {
        var config: VirtualServiceConfig
        var realServers: [Int: RealServerState]
        var nextID: Int
        var quorum: Quorum
        var rotation: Rotation
        var sorry: RealServerSlot?
        /// The first publish has happened: servers that join after it ramp up (`slow_start`).
        var started = false
    }

    /// What the pick path reads and changes.
    struct Picker {
        var scheduling: SchedulingState
        /// Socket addresses of the snapshot's servers, by id.
        var addresses: [Int: SocketAddress] = [:]
        /// The sorry server while it takes all new traffic (quorum lost), else nil.
        var sorry: RealServerSlot?
        var prefix: (v4: Int, v6: Int)?
        /// `persistence: {key: hash}`: templates are keyed by the pick's hash key, not the client.
        var keyed = false
        var destinationKey: UInt32
    }

    let state: Mutex<State>
    let picker: Mutex<Picker>
    /// Routes and the pools they send to, as last linked (start, reload); nil without routes.
    private let routingBox = Mutex<Routing?>(nil)
    var routing: Routing? {
        get { self.routingBox.withLock { $0 } }
        set { self.routingBox.withLock { $0 = newValue } }
    }
    /// TLS towards real servers with `tls`, by address, as last loaded.
    private let upstreamTLSBox = Mutex<[Endpoint: UpstreamTLS]>([:])
    var upstreamTLS: [Endpoint: UpstreamTLS] {
        get { self.upstreamTLSBox.withLock { $0 } }
        set { self.upstreamTLSBox.withLock { $0 = newValue } }
    }
    /// TLS termination as last loaded (start, reload): new connections take it, open ones keep theirs.
    private let tls = Mutex<TLSFront?>(nil)
    var tlsFront: TLSFront? {
        get { self.tls.withLock { $0 } }
        set { self.tls.withLock { $0 = newValue } }
    }

    /// The director's access log, nil when off (set at start: `access_log` changes on restart only).
    let accessLog: AccessLog?
    /// `forward: nat`: the service as the kernel should forward it, as last published, and who to tell when it
    /// changes (the director's `KernelForwarding`).
    let natBox = Mutex<NATService?>(nil)
    let natListener = Mutex<(@Sendable () -> Void)?>(nil)
    /// Requests waiting for a slot (`maxconn`, scale from zero).
    let queue = RequestQueue()
    /// Set by the autoscaler while replicas are on their way and none serves yet (scale from zero): requests
    /// wait for them instead of getting 503.
    let replicasComing = Atomic<Bool>(false)

    init(config: VirtualServiceConfig, logger: Logger, accessLog: AccessLog? = nil) throws {
        self.name = config.name
        self.logger = logger
        self.accessLog = accessLog
        self.checks = ServiceChecks(logger: logger)
        let now = Monotonic.seconds()
        var realServers: [Int: RealServerState] = [:]
        for (id, server) in config.servers.enumerated() {
            realServers[id] = RealServerState(
                config: server, address: try SocketAddress(ipAddress: server.address.host, port: server.address.port),
                counters: ServerCounters(), health: Self.tracker(config.health, now: now)
            )
        }
        var state = State(
            config: config, realServers: realServers, nextID: config.servers.count,
            quorum: Quorum(quorum: config.quorum, hysteresis: config.quorumHysteresis, healthyWeight: 0),
            rotation: Rotation(servers: [], sorry: false, healthyWeight: 0), sorry: try Self.sorrySlot(config)
        )
        let members0 = realServers.map {
            RealServerStatus(id: $0.key, weight: $0.value.config.weight, health: $0.value.health?.state ?? .up)
        }
        state.quorum = Quorum(
            quorum: config.quorum, hysteresis: config.quorumHysteresis,
            healthyWeight: members0.filter(\.inRotation).reduce(0) { $0 + $1.weight })
        self.picker = Mutex(Picker(scheduling: Self.scheduling(config), prefix: nil, destinationKey: 0))
        self.state = Mutex(state)
        self.state.withLock { state in
            self.publish(&state)
        }
    }

    /// An empty scheduling state for `config`'s scheduler, flags and persistence.
    private static func scheduling(_ config: VirtualServiceConfig) -> SchedulingState {
        SchedulingState(
            kind: config.scheduler, flags: config.flags, servers: [],
            persistenceTimeout: config.persistence?.timeout, seed: UInt64(truncatingIfNeeded: config.name.hashValue)
        )
    }

    private static func tracker(_ health: HealthCheckConfig?, now: Double) -> HealthTracker? {
        health.map { HealthTracker(rise: $0.rise, fall: $0.fall, alpha: $0.alpha, now: now) }
    }

    private static func sorrySlot(_ config: VirtualServiceConfig) throws -> RealServerSlot? {
        guard let sorry = config.sorry else { return nil }
        let address = try SocketAddress(ipAddress: sorry.host, port: sorry.port)
        return RealServerSlot(server: RealServer(id: sorryServerID, endpoint: sorry, weight: 1), address: address)
    }

    /// The config new connections use.
    public var config: VirtualServiceConfig { self.state.withLock { $0.config } }

    // MARK: data plane

    /// Chooses a real server (the sorry server while the quorum is lost) and counts the new connection or request.
    @inline(__always)
    func schedule(
        key: UInt32, remote: SocketAddress?, now: Double, excluding: [Int] = [], counting: Bool = true
    )
        -> RealServerSlot?
    {
        let (slot, template) = self.picker.withLock { picker -> (RealServerSlot?, (PersistenceKey, Endpoint)?) in
            if let sorry = picker.sorry {
                guard !excluding.contains(sorryServerID) else { return (nil, nil) }
                sorry.server.counters.open(upper: 0)
                return (sorry, nil)
            }
            let client =
                picker.keyed
                ? PersistenceKey(hashed: key)
                : picker.prefix.flatMap { prefix in
                    remote?.withAddressBytes { PersistenceKey(address: $0, prefixV4: prefix.v4, prefixV6: prefix.v6) }
                }
            guard
                let server = picker.scheduling.schedule(
                    PickInput(key: key, now: now), client: client, excluding: excluding, hold: client != nil),
                let address = picker.addresses[server.id]
            else {
                return (nil, nil)
            }
            server.counters.open(upper: server.upper)
            var template: (PersistenceKey, Endpoint)?
            if let made = picker.scheduling.newTemplate {
                picker.scheduling.newTemplate = nil
                template = (made.client, server.endpoint)
            }
            var slot = RealServerSlot(server: server, address: address)
            if let client, picker.prefix != nil { slot.hold = (self, client) }
            return (slot, template)
        }
        guard let slot else {
            if counting { self.stats.noServer.wrappingAdd(1, ordering: .relaxed) }
            return nil
        }
        if let (client, endpoint) = template, let sink = self.templateSink.withLock({ $0 }) {
            sink(self.name, client, endpoint)
        }
        return slot
    }

    /// Every live persistence template, with its real server's address: what a peer director that (re)connects is
    /// sent, so that it holds every client this one holds (keepalived's full conntrackd resync).
    public func liveTemplates() -> [(client: PersistenceKey, server: Endpoint)] {
        let now = Monotonic.seconds()
        let templates = self.picker.withLock { $0.scheduling.liveTemplates(now: now) }
        guard !templates.isEmpty else { return [] }
        let addresses = self.state.withLock { state in state.realServers.mapValues(\.config.address) }
        return templates.compactMap { template in addresses[template.server].map { (template.client, $0) } }
    }

    /// The templates open connections hold, with their real servers' addresses (re-sent to the peer director).
    public func heldTemplates() -> [(client: PersistenceKey, server: Endpoint)] {
        let templates = self.picker.withLock { $0.scheduling.heldTemplates() }
        guard !templates.isEmpty else { return [] }
        let addresses = self.state.withLock { state in state.realServers.mapValues(\.config.address) }
        return templates.compactMap { template in addresses[template.server].map { (template.client, $0) } }
    }

    /// A template the peer director made: `client` goes to the real server at `server` here too.
    public func adoptTemplate(_ client: PersistenceKey, server: Endpoint) {
        let now = Monotonic.seconds()
        guard
            let id = self.state.withLock({ state in
                state.realServers.first(where: { $0.value.config.address == server })?.key
            })
        else { return }
        self.picker.withLock { $0.scheduling.adopt(client: client, server: id, now: now) }
    }

    /// The tcp `destination` hash key: this service's own address folded.
    var destinationKey: UInt32 { self.picker.withLock { $0.destinationKey } }

    /// A final response with `status` came from `server`: counted, and a 5xx counts toward ejection.
    @inline(__always)
    func responded(_ server: RealServer, status: Int) {
        server.counters.countResponse(status: status)
        if status >= 500 {
            self.failed(server, "status \(status)", is5xx: true)
        } else {
            self.succeeded(server)
        }
    }

    /// A request or connection on `slot` went well: the failure streak ends.
    @inline(__always)
    func succeeded(_ server: RealServer) {
        let counters = server.counters
        if counters.failureStreak.load(ordering: .relaxed) != 0 { counters.failureStreak.store(0, ordering: .relaxed) }
    }

    /// A connect failed, a connection was lost before its response, or (`is5xx`) the server answered 5xx.
    func failed(_ server: RealServer, _ what: String, is5xx: Bool = false) {
        let counters = server.counters
        if !is5xx { counters.failures.wrappingAdd(1, ordering: .relaxed) }
        guard server.id != sorryServerID else { return }
        let streak = counters.failureStreak.wrappingAdd(1, ordering: .relaxed).newValue
        let ejection: EjectionConfig? = self.state.withLock { $0.config.ejection }
        guard let ejection, streak >= ejection.consecutiveFailures, !is5xx || ejection.count5xx else { return }
        counters.failureStreak.store(0, ordering: .relaxed)
        self.eject(
            server.id, reason: "ejected: \(streak) failed requests in a row, the last \(what)",
            maxPercent: ejection.maxPercent)
    }

    private func eject(_ id: Int, reason: String, maxPercent: Int) {
        let now = Monotonic.seconds()
        let event: (String, HealthTransition)? = self.state.withLock { state in
            let out = state.realServers.values.filter { !$0.enabled || $0.health?.state == .down }.count
            guard var member = state.realServers[id], member.enabled,
                mayEject(outOfRotation: out, poolSize: state.realServers.count, maxPercent: maxPercent),
                let transition = member.health?.eject(reason: reason, now: now)
            else { return nil }
            member.counters.ejections.wrappingAdd(1, ordering: .relaxed)
            state.realServers[id] = member
            self.publish(&state)
            return (member.config.address.description, transition)
        }
        if let (address, transition) = event { self.logTransition(address, transition) }
    }

    /// One health check's result for the member `id`.
    func recordCheck(_ id: Int, _ result: CheckResult, seconds: Double) {
        let now = Monotonic.seconds()
        let event: (String, HealthTransition, Bool?)? = self.state.withLock { state in
            guard var member = state.realServers[id], member.health != nil else { return nil }
            member.lastCheckSeconds = seconds
            member.checkSecondsSum += seconds
            member.checkCount += 1
            let transition = member.health!.record(result, now: now)
            state.realServers[id] = member
            guard let transition else { return nil }
            let quorumChanged = self.publish(&state)
            return (member.config.address.description, transition, quorumChanged)
        }
        guard let (address, transition, quorumChanged) = event else { return }
        self.logTransition(address, transition)
        if let up = quorumChanged { self.logQuorum(up) }
        if transition.to == .up { self.capacityChanged() }
    }

    private func logTransition(_ address: String, _ transition: HealthTransition) {
        let metadata: Logger.Metadata = [
            "service": "\(self.name)", "server": "\(address)", "state": "\(transition.to.rawValue)",
            "reason": "\(transition.reason)",
        ]
        if transition.to == .down {
            self.logger.warning("real server down", metadata: metadata)
        } else {
            self.logger.notice("real server up", metadata: metadata)
        }
    }

    private func logQuorum(_ up: Bool) {
        let (weight, quorum, sorry) = self.state.withLock {
            ($0.rotation.healthyWeight, $0.quorum.quorum, $0.rotation.sorry)
        }
        let metadata: Logger.Metadata = [
            "service": "\(self.name)", "healthy_weight": "\(weight)", "quorum": "\(quorum)",
            "sorry": "\(sorry ? "serving" : "none")",
        ]
        if up {
            self.logger.notice("virtual service up: quorum reached", metadata: metadata)
        } else {
            self.logger.error("virtual service down: quorum lost", metadata: metadata)
        }
    }

    /// Rebuilds the rotation and the scheduler's snapshot from `state` (the caller holds the control lock) and swaps
    /// it into the picker; returns the quorum's new state if it changed. With `newScheduling` (the scheduler, its
    /// flags or persistence changed) the scheduling state starts afresh, templates and positions forgotten.
    ///
    /// Every member stays in the snapshot, those out of rotation with weight 0 (`RealServer`), so that a health flip
    /// leaves the hashing tables as they were; while the sorry server has the traffic the list is empty.
    @discardableResult
    private func publish(_ state: inout State, newScheduling: Bool = false) -> Bool? {
        let ids = state.realServers.keys.sorted()
        let realServers = ids.map { id -> RealServerStatus in
            let member = state.realServers[id]!
            return RealServerStatus(
                id: id, weight: member.config.weight, enabled: member.enabled,
                health: member.health?.state ?? .up)
        }
        let (rotation, changed) = Rotation.plan(realServers, quorum: &state.quorum, hasSorry: state.sorry != nil)
        state.rotation = rotation
        let config = state.config
        let now = Monotonic.seconds()
        let ramp = SlowStart(duration: config.slowStart)
        var servers: [RealServer] = []
        var addresses: [Int: SocketAddress] = [:]
        for (id, status) in zip(ids, realServers) {
            // A server joining the rotation starts its ramp (not those in it when the service started).
            if status.inRotation && !state.realServers[id]!.wasInRotation && state.started {
                state.realServers[id]!.joined = ramp.duration > 0 ? now : nil
            }
            state.realServers[id]!.wasInRotation = status.inRotation
        }
        state.started = true
        if !rotation.sorry {
            servers.reserveCapacity(ids.count)
            for (id, pool) in zip(ids, realServers) {
                let member = state.realServers[id]!
                let maxconn = member.config.maxconn > 0 ? member.config.maxconn : config.maxconn
                let weight = ramp.weight(member.config.weight, joined: member.joined, now: now)
                if member.joined != nil && weight == ramp.scaled(member.config.weight) {
                    state.realServers[id]!.joined = nil
                }
                servers.append(
                    RealServer(
                        id: id, endpoint: member.config.address, weight: weight,
                        upper: maxconn > 0 ? maxconn : member.config.upper,
                        lower: maxconn > 0 ? maxconn : member.config.lower,
                        counters: member.counters, inRotation: pool.inRotation))
                addresses[id] = member.address
            }
        }
        // The slow part, outside the picker's lock.
        let scheduler = Scheduler(kind: config.scheduler, servers: servers, flags: config.flags)
        let fresh = newScheduling ? Self.scheduling(config) : nil
        let prefix = config.persistence.map { ($0.prefixV4, $0.prefixV6) }
        let destinationKey = KeyHash.fold(config.listen.addressBytes)
        let sorry = rotation.sorry ? state.sorry : nil
        self.publishNAT(config, ids: ids, statuses: realServers, state: state, sorry: rotation.sorry)
        self.picker.withLock { picker in
            if let fresh { picker.scheduling = fresh }
            picker.prefix = prefix
            picker.keyed = config.persistence?.key == .hash
            picker.destinationKey = destinationKey
            picker.scheduling.install(servers, scheduler)
            picker.addresses = addresses
            picker.sorry = sorry
        }
        return changed
    }

    /// `forward: nat`: the kernel's view of the service (every member with its weight and whether it is in
    /// rotation, the sorry server while it has the traffic), handed to the kernel forwarder when it changed.
    private func publishNAT(
        _ config: VirtualServiceConfig, ids: [Int], statuses: [RealServerStatus], state: State, sorry: Bool
    ) {
        guard config.forward == .nat else {
            self.natBox.withLock { $0 = nil }
            return
        }
        let backends = zip(ids, statuses).map { id, status in
            NATBackend(
                id: id, endpoint: state.realServers[id]!.config.address, weight: status.weight,
                inRotation: status.inRotation)
        }
        let view = NATService(
            name: config.name, listen: config.listen, proto: config.proto, scheduler: config.scheduler,
            flags: config.flags, hash: config.effectiveHash, persistence: config.persistence,
            masquerade: config.masquerade, backends: backends, sorry: sorry ? config.sorry : nil)
        let changed = self.natBox.withLock { old in
            defer { old = view }
            return old != view
        }
        if changed, let listener = self.natListener.withLock({ $0 }) { listener() }
    }

    /// The kernel's view of this service, nil unless it is `forward: nat`.
    var natService: NATService? { self.natBox.withLock { $0 } }

    /// Kernel counters and conntrack's counts for a `forward: nat` service's real servers, by id: they stand in
    /// the counters the proxy path keeps, so `adm list --stats --rate`, metrics and the stats page read them alike.
    func storeKernelCounts(_ counts: [Int: KernelCounts]) {
        self.state.withLock { state in
            for (id, count) in counts {
                guard let counters = state.realServers[id]?.counters else { continue }
                counters.total.store(count.connections, ordering: .relaxed)
                counters.packetsIn.store(count.packetsIn, ordering: .relaxed)
                counters.packetsOut.store(count.packetsOut, ordering: .relaxed)
                counters.bytesIn.store(count.bytesIn, ordering: .relaxed)
                counters.bytesOut.store(count.bytesOut, ordering: .relaxed)
                counters.active.store(count.active, ordering: .relaxed)
                counters.inactive.store(count.inactive, ordering: .relaxed)
            }
        }
    }

    /// A connection that held `key`'s template open (to `server`) closed.
    func releaseTemplate(_ key: PersistenceKey, server: Int) {
        let now = Monotonic.seconds()
        self.picker.withLock { $0.scheduling.release(client: key, server: server, now: now) }
    }

    /// Open connections the template of `key` controls (tests).
    func templateHolders(_ key: PersistenceKey) -> Int { self.picker.withLock { $0.scheduling.holders(key) } }

    func expireTemplates(now: Double) {
        self.picker.withLock { _ = $0.scheduling.expireTemplates(now: now) }
    }

    /// Samples the counters for the `--rate` figures (every 2 s, as the IPVS estimator).
    func sampleRates(now: Double) {
        self.state.withLock { state in
            for id in state.realServers.keys {
                let counters = state.realServers[id]!.counters
                state.realServers[id]!.rates.conns.sample(total: counters.total.load(ordering: .relaxed), now: now)
                state.realServers[id]!.rates.bytesIn.sample(total: counters.bytesIn.load(ordering: .relaxed), now: now)
                state.realServers[id]!.rates.bytesOut.sample(
                    total: counters.bytesOut.load(ordering: .relaxed), now: now)
                state.realServers[id]!.latencyHistory.append(counters.latency.snapshot())
                if state.realServers[id]!.latencyHistory.count > 5 {
                    state.realServers[id]!.latencyHistory.removeFirst()
                }
            }
        }
    }

    // MARK: runtime control (the admin API, reload and tests)

    public enum ControlError: Error, CustomStringConvertible, Equatable {
        case noSuchServer(String)
        case duplicate(String)
        case badWeight(Int)
        case badAddress(String)

        public var description: String {
            switch self {
            case .noSuchServer(let address): return "no real server \(address) in this service"
            case .duplicate(let address): return "real server \(address) is already in this service"
            case .badWeight(let weight): return "weight must be \(RealServerConfig.weights), got \(weight)"
            case .badAddress(let address): return "'\(address)' is not an ip:port"
            }
        }
    }

    private func withMember<T>(
        _ address: Endpoint, _ body: (inout RealServerState, inout State) throws(ControlError) -> T
    ) throws(ControlError) -> T {
        try self.state.withLock { state throws(ControlError) in
            guard let id = state.realServers.first(where: { $0.value.config.address == address })?.key else {
                throw .noSuchServer(address.description)
            }
            var member = state.realServers[id]!
            let result = try body(&member, &state)
            state.realServers[id] = member
            self.publish(&state)
            return result
        }
    }

    /// Sets a real server's weight; 0 quiesces it (open connections and requests finish, no new ones arrive).
    public func setWeight(_ address: Endpoint, _ weight: Int) throws(ControlError) {
        guard RealServerConfig.weights.contains(weight) else { throw .badWeight(weight) }
        try self.withMember(address) { member, _ in member.config.weight = weight }
        self.capacityChanged()
        self.logger.notice(
            "weight changed",
            metadata: [
                "service": "\(self.name)", "server": "\(address)",
                "weight": "\(weight)",
            ])
    }

    /// Takes a real server out of rotation (`enabled: false`) or puts it back; its health checks go on.
    public func setEnabled(_ address: Endpoint, _ enabled: Bool) throws(ControlError) {
        try self.withMember(address) { member, _ in member.enabled = enabled }
        if enabled { self.capacityChanged() }
        self.logger.notice(
            enabled ? "real server enabled" : "real server disabled",
            metadata: ["service": "\(self.name)", "server": "\(address)"])
    }

    /// Adds a real server (`managed`: a replica of the autoscaler's, which a reload keeps).
    public func addServer(_ server: RealServerConfig, managed: Bool = false) throws(ControlError) {
        guard RealServerConfig.weights.contains(server.weight) else { throw .badWeight(server.weight) }
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: server.address.host, port: server.address.port)
        } catch {
            throw .badAddress(server.address.description)
        }
        let now = Monotonic.seconds()
        try self.state.withLock { state throws(ControlError) in
            if state.realServers.values.contains(where: { $0.config.address == server.address }) {
                throw .duplicate(server.address.description)
            }
            let id = state.nextID
            state.nextID += 1
            state.realServers[id] = RealServerState(
                config: server, address: address, counters: ServerCounters(),
                health: Self.tracker(state.config.health, now: now), managed: managed)
            if !managed { state.config.servers.append(server) }
            self.publish(&state)
        }
        self.logger.notice(
            "real server added",
            metadata: [
                "service": "\(self.name)", "server": "\(server.address)",
                "weight": "\(server.weight)",
            ])
        self.checks.sync(self)
        self.capacityChanged()
    }

    public func removeServer(_ address: Endpoint) throws(ControlError) {
        try self.state.withLock { state throws(ControlError) in
            guard let id = state.realServers.first(where: { $0.value.config.address == address })?.key else {
                throw .noSuchServer(address.description)
            }
            state.realServers[id] = nil
            state.config.servers.removeAll { $0.address == address }
            self.publish(&state)
        }
        self.logger.notice("real server removed", metadata: ["service": "\(self.name)", "server": "\(address)"])
        self.checks.sync(self)
    }

    /// Applies a reloaded config with this service's name: servers that stay keep their counters and health; new
    /// ones are added, gone ones removed; scheduler, persistence and health settings take the new values.
    func apply(_ config: VirtualServiceConfig) throws {
        let now = Monotonic.seconds()
        var addresses: [Endpoint: SocketAddress] = [:]
        for server in config.servers {
            addresses[server.address] = try SocketAddress(ipAddress: server.address.host, port: server.address.port)
        }
        let sorry = try Self.sorrySlot(config)
        let quorumChanged: Bool? = self.state.withLock { state in
            let old = state.config
            var byAddress: [Endpoint: Int] = [:]
            for (id, member) in state.realServers { byAddress[member.config.address] = id }
            // The autoscaler's replicas stay; the config lists the servers that are not its.
            var realServers = state.realServers.filter { $0.value.managed }
            for server in config.servers
            where !realServers.values.contains(where: { $0.config.address == server.address }) {
                if let id = byAddress[server.address], var member = state.realServers[id] {
                    member.config = server
                    if old.health != config.health {
                        // New check settings: the server keeps its state; the counting starts again.
                        if let health = config.health {
                            member.health =
                                member.health?.reconfigured(rise: health.rise, fall: health.fall)
                                ?? Self.tracker(health, now: now)
                        } else {
                            member.health = nil
                        }
                    }
                    realServers[id] = member
                } else {
                    realServers[state.nextID] = RealServerState(
                        config: server, address: addresses[server.address]!,
                        counters: ServerCounters(), health: Self.tracker(config.health, now: now))
                    state.nextID += 1
                }
            }
            state.realServers = realServers
            let newScheduling =
                old.scheduler != config.scheduler || old.flags != config.flags
                || old.persistence != config.persistence
            if old.quorum != config.quorum || old.quorumHysteresis != config.quorumHysteresis {
                state.quorum = Quorum(
                    quorum: config.quorum, hysteresis: config.quorumHysteresis,
                    healthyWeight: state.rotation.healthyWeight)
            }
            state.sorry = sorry
            state.config = config
            return self.publish(&state, newScheduling: newScheduling)
        }
        if let up = quorumChanged { self.logQuorum(up) }
        self.checks.sync(self)
        self.capacityChanged()
    }

    /// The realServers the health checks should run for: id, address and the check settings.
    func checkTargets() -> (HealthCheckConfig?, [(Int, Endpoint)]) {
        self.state.withLock { state in
            (state.config.health, state.realServers.map { ($0.key, $0.value.config.address) })
        }
    }

    // MARK: the queue and the ramp

    /// A request that found no free slot may wait: some server in rotation is only full, or replicas are coming.
    func mayQueue() -> Bool {
        if self.replicasComing.load(ordering: .relaxed) { return true }
        return self.picker.withLock { picker in
            picker.sorry == nil && picker.scheduling.servers.contains { $0.inRotation && $0.weight > 0 }
        }
    }

    /// A slot was given back: the oldest waiter gets it (one atomic load when nobody waits).
    @inline(__always)
    func slotFreed(now: UInt64) {
        guard self.queue.length.load(ordering: .relaxed) > 0 else { return }
        self.queue.serve(self, now: now)
    }

    /// Servers or weights changed (or a replica came): waiters may fit now.
    func capacityChanged() {
        self.slotFreed(now: Monotonic.nanoseconds())
    }

    /// Steps the weights of servers ramping up (`slow_start`); called every half second.
    func rampTick() {
        let ramping = self.state.withLock { state in
            guard state.realServers.values.contains(where: { $0.joined != nil }) else { return false }
            self.publish(&state)
            return true
        }
        if ramping { self.capacityChanged() }
    }

    /// What the autoscaler reads of each real server: in rotation, requests in flight, requests so far, and the
    /// response-time histogram.
    struct ServerView {
        var inRotation: Bool
        var active: Int
        var total: Int
        var latency: [Int]
    }

    func serverViews() -> [Endpoint: ServerView] {
        self.state.withLock { state in
            var out: [Endpoint: ServerView] = [:]
            for member in state.realServers.values {
                let counters = member.counters
                out[member.config.address] = ServerView(
                    inRotation: member.enabled && (member.health?.state ?? .up) == .up,
                    active: counters.active.load(ordering: .relaxed), total: counters.total.load(ordering: .relaxed),
                    latency: counters.latency.snapshot())
            }
            return out
        }
    }

    /// Requests (http) or connections (tcp) in flight on this service's real servers; 0 for `forward: nat`, whose
    /// flows the kernel carries on after the director has gone.
    func inFlight() -> Int {
        self.state.withLock { state in
            guard state.config.forward == .proxy else { return 0 }
            return state.realServers.values.reduce(state.sorry?.server.counters.active.load(ordering: .relaxed) ?? 0) {
                $0 + $1.counters.active.load(ordering: .relaxed)
            }
        }
    }
}

extension SocketAddress {
    /// Calls `body` with the 4 or 16 address bytes.
    @inline(__always)
    func withAddressBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        switch self {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { body($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { body($0) }
        case .unixDomainSocket:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// The folded address (and port) as the sh/mh key of a client.
    @inline(__always)
    func sourceKey(withPort: Bool) -> UInt32 {
        let folded = self.withAddressBytes { $0.count == 4 || $0.count == 16 ? KeyHash.fold($0) : 0 }
        return KeyHash.source(folded: folded, port: self.port ?? 0, withPort: withPort)
    }
}
