/// The scheduler of one snapshot, chosen through an exhaustive enum rather than a registry.
public enum Scheduler: Sendable {
    case rr(RoundRobinScheduler)
    case wrr(WeightedRoundRobinScheduler)
    case lc(LeastConnectionScheduler)
    case wlc(WeightedLeastConnectionScheduler)
    case lblc(LocalityScheduler)
    case lblcr(LocalityReplicationScheduler)
    case dh(DestinationHashingScheduler)
    case sh(SourceHashingScheduler)
    case sed(ShortestExpectedDelayScheduler)
    case nq(NeverQueueScheduler)
    case fo(WeightedFailoverScheduler)
    case ovf(WeightedOverflowScheduler)
    case mh(MaglevScheduler)
    case twos(TwoChoicesScheduler)

    public init(kind: SchedulerKind, servers: [RealServer], flags: SchedulerFlags = .init()) {
        switch kind {
        case .rr: self = .rr(.init(servers: servers, flags: flags))
        case .wrr: self = .wrr(.init(servers: servers, flags: flags))
        case .lc: self = .lc(.init(servers: servers, flags: flags))
        case .wlc: self = .wlc(.init(servers: servers, flags: flags))
        case .lblc: self = .lblc(.init(servers: servers, flags: flags))
        case .lblcr: self = .lblcr(.init(servers: servers, flags: flags))
        case .dh: self = .dh(.init(servers: servers, flags: flags))
        case .sh: self = .sh(.init(servers: servers, flags: flags))
        case .sed: self = .sed(.init(servers: servers, flags: flags))
        case .nq: self = .nq(.init(servers: servers, flags: flags))
        case .fo: self = .fo(.init(servers: servers, flags: flags))
        case .ovf: self = .ovf(.init(servers: servers, flags: flags))
        case .mh: self = .mh(.init(servers: servers, flags: flags))
        case .twos: self = .twos(.init(servers: servers, flags: flags))
        }
    }

    /// Takes over what IPVS keeps when a service's servers change: rr's place in the list (by server id), wrr's
    /// current weight (its place starts over, as `ip_vs_wrr_dest_changed`), and the lblc/lblcr caches. The hashing
    /// tables are rebuilt from the new list; the rest keep no state. Cheap: it runs under the pick lock.
    public mutating func inherit(from old: Scheduler, oldServers: [RealServer], newServers: [RealServer]) {
        switch (self, old) {
        case (.rr(var new), .rr(let previous)):
            new.inherit(previous, oldServers: oldServers, newServers: newServers)
            self = .rr(new)
        case (.wrr(var new), .wrr(let previous)):
            new.inherit(previous)
            self = .wrr(new)
        case (.lblc(var new), .lblc(let previous)):
            self = .wlc(.init(servers: [], flags: .init()))  // no copy of the cache on write
            new.inherit(previous)
            self = .lblc(new)
        case (.lblcr(var new), .lblcr(let previous)):
            self = .wlc(.init(servers: [], flags: .init()))
            new.inherit(previous)
            self = .lblcr(new)
        default:
            break
        }
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        switch self {
        case .rr(var s): defer { self = .rr(s) }; return s.pick(servers, input, &random)
        case .wrr(var s): defer { self = .wrr(s) }; return s.pick(servers, input, &random)
        case .lc(var s): return s.pick(servers, input, &random)
        case .wlc(var s): return s.pick(servers, input, &random)
        case .lblc(var s):
            // Move the cache out of `self` while mutating so the dictionary is not copied on write.
            self = .wlc(.init(servers: [], flags: .init()))
            defer { self = .lblc(s) }
            return s.pick(servers, input, &random)
        case .lblcr(var s):
            self = .wlc(.init(servers: [], flags: .init()))
            defer { self = .lblcr(s) }
            return s.pick(servers, input, &random)
        case .dh(var s): return s.pick(servers, input, &random)
        case .sh(var s): return s.pick(servers, input, &random)
        case .sed(var s): return s.pick(servers, input, &random)
        case .nq(var s): return s.pick(servers, input, &random)
        case .fo(var s): return s.pick(servers, input, &random)
        case .ovf(var s): return s.pick(servers, input, &random)
        case .mh(var s): return s.pick(servers, input, &random)
        case .twos(var s): return s.pick(servers, input, &random)
        }
    }
}

/// SplitMix64: small, fast and seedable, so tests can replay the random schedulers.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
