import SwiftVSConfigKit

/// A real server of a `forward: nat` service as the kernel path sees it.
public struct NATBackend: Sendable, Equatable {
    /// The service's stable id for it (counters and persistence marks carry it).
    public var id: Int
    public var endpoint: Endpoint
    /// The weight new connections see now (slow start included), health aside.
    public var weight: Int
    /// Healthy and enabled.
    public var inRotation: Bool

    public init(id: Int, endpoint: Endpoint, weight: Int, inRotation: Bool = true) {
        self.id = id
        self.endpoint = endpoint
        self.weight = weight
        self.inRotation = inRotation
    }

    /// Can take new flows.
    public var isAvailable: Bool { self.inRotation && self.weight > 0 }
}

/// One `forward: nat` service, as the director hands it to the kernel: the virtual address, how the kernel chooses,
/// and the real servers with their state at this moment.
public struct NATService: Sendable, Equatable {
    public var name: String
    public var listen: Endpoint
    public var proto: ServiceProtocol
    public var scheduler: SchedulerKind
    public var flags: SchedulerFlags
    public var hash: HashKey
    public var persistence: PersistenceConfig?
    public var masquerade: Bool
    public var backends: [NATBackend]
    /// The sorry server, while it has every new flow (the quorum is lost).
    public var sorry: Endpoint?
    /// The least-connection family's weights for the next second (by backend id), from conntrack's counts
    /// (`NATPlan.leastConnectionWeights`); nil: the configured weights.
    public var dynamicWeights: [Int: Int]?

    public init(
        name: String, listen: Endpoint, proto: ServiceProtocol = .tcp, scheduler: SchedulerKind = .wrr,
        flags: SchedulerFlags = .init(), hash: HashKey = .source, persistence: PersistenceConfig? = nil,
        masquerade: Bool = false, backends: [NATBackend], sorry: Endpoint? = nil, dynamicWeights: [Int: Int]? = nil
    ) {
        self.name = name
        self.listen = listen
        self.proto = proto
        self.scheduler = scheduler
        self.flags = flags
        self.hash = hash
        self.persistence = persistence
        self.masquerade = masquerade
        self.backends = backends
        self.sorry = sorry
        self.dynamicWeights = dynamicWeights
    }
}

/// How the kernel chooses a slot for a new flow.
public enum NATSelector: Sendable, Equatable {
    /// `numgen inc`: the next slot, flow after flow (rr, wrr and the weighted families).
    case counter
    /// `jhash` of the client's address (and port with the `port` flag): sh and mh.
    case source(port: Bool)
    /// `jhash` of the destination address: dh.
    case destination
}

/// The kernel's form of one service's choice: a selector over slots, each slot a real server. The map a rule holds is
/// `slot → address . port`; a slot's index is what `numgen`/`jhash` yields modulo the slot count.
public struct NATChoice: Sendable, Equatable {
    public var selector: NATSelector
    /// Slot → index into the service's `backends` (the sorry server is `NATChoice.sorrySlot`).
    public var slots: [Int]

    public static let sorrySlot = -1

    public init(selector: NATSelector, slots: [Int]) {
        self.selector = selector
        self.slots = slots
    }
}

/// The pure part of the kernel path: which slots go to which real server, for every IPVS scheduler. The slots come
/// from the same scheduler code the proxy path picks with, so both paths choose alike:
///
/// - rr: every available server once, in order; wrr: the interleaved sequence `WeightedRoundRobinScheduler` walks
///   over one cycle of the weights (reduced by their gcd; scaled down to at most `maxCycle` slots).
/// - sh and dh: IPVS's 256 buckets (`SourceHashingScheduler`) over every member; a bucket whose server is out of
///   rotation passes to the next bucket's server that is available, as `sh-fallback` walks.
/// - mh: a Maglev table (`MaglevScheduler`) of `maglevSize` slots over the available servers: a server that leaves
///   frees only its own slots.
/// - lc, wlc, sed, nq, twos, lblc, lblcr: the wrr sequence over weights the director recomputes every second from
///   conntrack's counts (`leastConnectionWeights`); fo and ovf: the highest-weight available server.
public enum NATPlan {
    /// The largest wrr cycle put in a map: weights whose reduced sum is larger are scaled down.
    public static let maxCycle = 1024
    /// The Maglev table size in the kernel: IPVS's own default (`CONFIG_IP_VS_MH_TAB_INDEX` 12 → 4093). The proxy
    /// path's 65521 slots cost half a second of `nft` per change.
    public static let maglevSize = 4093

    /// The choice for `service` now; nil when no server can take a new flow (and there is no sorry server).
    public static func choice(_ service: NATService) -> NATChoice? {
        if service.sorry != nil { return NATChoice(selector: .counter, slots: [NATChoice.sorrySlot]) }
        let backends = service.backends
        let available = backends.indices.filter { backends[$0].isAvailable }
        guard !available.isEmpty else { return nil }
        switch service.scheduler {
        case .rr:
            return NATChoice(selector: .counter, slots: available)
        case .wrr:
            return NATChoice(selector: .counter, slots: self.weightedCycle(backends, weights: backends.map(\.weight)))
        case .lc, .wlc, .sed, .nq, .twos, .lblc, .lblcr:
            // Until the first second's counts: lc ignores weights, the others start from the configured ones.
            let weights = backends.map { service.dynamicWeights?[$0.id] ?? (service.scheduler == .lc ? 1 : $0.weight) }
            let cycle = self.weightedCycle(backends, weights: weights)
            return NATChoice(
                selector: .counter,
                slots: cycle.isEmpty ? self.weightedCycle(backends, weights: backends.map(\.weight)) : cycle)
        case .fo, .ovf:
            let best = available.max { backends[$0].weight < backends[$1].weight }!
            return NATChoice(selector: .counter, slots: [best])
        case .sh, .dh:
            let servers = backends.map { RealServer(id: $0.id, endpoint: $0.endpoint, weight: $0.weight) }
            let buckets = SourceHashingScheduler(servers: servers, flags: service.flags).buckets
            let selector: NATSelector =
                service.scheduler == .dh || service.hash == .destination
                ? .destination : .source(port: service.flags.port)
            return NATChoice(selector: selector, slots: self.passOn(buckets, backends))
        case .mh:
            let servers = available.map {
                RealServer(id: backends[$0].id, endpoint: backends[$0].endpoint, weight: backends[$0].weight)
            }
            let size = MaglevScheduler.primes.first { $0 >= max(self.maglevSize, 100 * servers.count) } ?? 131071
            let table = MaglevScheduler(servers: servers, flags: service.flags, tableSize: size).table
            let selector: NATSelector =
                service.hash == .destination ? .destination : .source(port: service.flags.port)
            return NATChoice(selector: selector, slots: table.map { available[$0] })
        }
    }

    /// One cycle of IPVS wrr over the available servers (weights reduced by their gcd, at most `maxCycle` slots):
    /// indices into `backends`, interleaved as the proxy path's wrr picks them.
    static func weightedCycle(_ backends: [NATBackend], weights: [Int]) -> [Int] {
        let usable = backends.indices.filter { backends[$0].inRotation && weights[$0] > 0 }
        guard !usable.isEmpty else { return [] }
        var reduced = usable.map { weights[$0] }
        let gcd = reduced.reduce(0) { WeightedRoundRobinScheduler.gcd($0, $1) }
        reduced = reduced.map { $0 / gcd }
        var total = reduced.reduce(0, +)
        if total > self.maxCycle {
            // Scaled down, each server keeping at least one slot; the largest remainders take what rounding left.
            let scaled = reduced.map { Double($0) * Double(self.maxCycle) / Double(total) }
            reduced = scaled.map { max(1, Int($0)) }
            var spare = self.maxCycle - reduced.reduce(0, +)
            for index in scaled.indices.sorted(by: {
                scaled[$0] - scaled[$0].rounded(.down) > scaled[$1] - scaled[$1].rounded(.down)
            })
            where spare > 0 {
                reduced[index] += 1
                spare -= 1
            }
            total = reduced.reduce(0, +)
        }
        let servers = usable.indices.map {
            RealServer(id: $0, endpoint: backends[usable[$0]].endpoint, weight: reduced[$0])
        }
        var scheduler = WeightedRoundRobinScheduler(servers: servers, flags: .init())
        var random = SplitMix64(seed: 0)
        var cycle: [Int] = []
        cycle.reserveCapacity(total)
        for _ in 0..<total {
            guard let pick = scheduler.pick(servers, PickInput(), &random) else { break }
            cycle.append(usable[pick])
        }
        return cycle
    }

    /// Hash buckets (server indices) with those of servers out of rotation handed to the next available bucket's
    /// server, walking on as `sh-fallback` does.
    static func passOn(_ buckets: [Int], _ backends: [NATBackend]) -> [Int] {
        buckets.indices.map { bucket in
            for step in 0..<buckets.count {
                let index = buckets[(bucket + step) % buckets.count]
                if index >= 0 && backends[index].isAvailable { return index }
            }
            return -1
        }
    }

    /// The least-connection family in the kernel: weights for the next second's new flows, so that each server's
    /// active flows per unit of weight move towards the same level. `active` is what conntrack counts per server
    /// now, `expected` the new flows of the last second. A server's share is the flows it lacks from the level the
    /// servers would reach if the expected flows were spread perfectly; every available server keeps a sliver
    /// (1/64 of its weight), so a new server is never starved of a flow that measures it. Integer weights, summing
    /// to about `NATPlan.maxCycle`. `nq` and `sed` count one more flow per server, as their formulas do.
    public static func leastConnectionWeights(
        _ backends: [NATBackend], active: [Int: Int], expected: Int, scheduler: SchedulerKind
    ) -> [Int: Int] {
        let usable = backends.filter(\.isAvailable)
        guard !usable.isEmpty else { return [:] }
        let weighted = scheduler != .lc
        let weightOf = { (b: NATBackend) in Double(weighted ? b.weight : 1) }
        let extra = scheduler == .sed || scheduler == .nq ? 1.0 : 0.0
        let totalWeight = usable.reduce(0.0) { $0 + weightOf($1) }
        let totalActive = usable.reduce(0.0) { $0 + Double(active[$1.id] ?? 0) + extra }
        let level = (totalActive + Double(max(expected, usable.count))) / totalWeight
        var shares: [Int: Double] = [:]
        for backend in usable {
            let lacking = level * weightOf(backend) - (Double(active[backend.id] ?? 0) + extra)
            shares[backend.id] = max(lacking, weightOf(backend) * level / 64)
        }
        let sum = shares.values.reduce(0, +)
        return shares.mapValues { max(1, Int(($0 / sum * Double(self.maxCycle)).rounded())) }
    }
}
