import SwiftVSCore
import Testing

@Suite("IPVS schedulers: golden sequences")
struct SchedulerGoldenTests {
    @Test("rr cycles over available servers and skips weight 0 and overloaded ones")
    func roundRobin() {
        let servers = makeServers([1, 1, 1])
        #expect(sequence(.rr, servers, 6) == [0, 1, 2, 0, 1, 2])
        let quiesced = makeServers([1, 0, 1])
        #expect(sequence(.rr, quiesced, 4) == [0, 2, 0, 2])
        servers[0].counters.overloaded.store(true, ordering: .relaxed)
        #expect(sequence(.rr, servers, 4) == [1, 2, 1, 2])
        #expect(sequence(.rr, makeServers([0, 0]), 2) == [nil, nil])
    }

    @Test("wrr with weights 4, 3, 2 gives A A B A B C A B C (the kernel's falling current weight)")
    func weightedRoundRobin() {
        #expect(sequence(.wrr, makeServers([4, 3, 2]), 9) == [0, 0, 1, 0, 1, 2, 0, 1, 2])
        // gcd 2: weights 4 and 2 give A A B per cycle.
        #expect(sequence(.wrr, makeServers([4, 2]), 6) == [0, 0, 1, 0, 0, 1])
        #expect(sequence(.wrr, makeServers([0, 0]), 1) == [nil])
    }

    @Test("lc takes the least overhead (active*256 + inactive), the first on ties")
    func leastConnection() {
        let servers = makeServers([1, 5, 1])
        setActive(servers, [2, 1, 1])
        #expect(sequence(.lc, servers, 1) == [1])  // weights do not matter to lc
        servers[1].counters.inactive.store(1, ordering: .relaxed)
        #expect(sequence(.lc, servers, 1) == [2])
    }

    @Test("wlc compares overhead per weight")
    func weightedLeastConnection() {
        let servers = makeServers([1, 3])
        setActive(servers, [1, 2])  // 256/1 against 512/3: the second is less loaded per weight
        #expect(sequence(.wlc, servers, 1) == [1])
        setActive(servers, [1, 4])  // 256 against 1024/3
        #expect(sequence(.wlc, servers, 1) == [0])
        setActive(servers, [0, 0])
        #expect(sequence(.wlc, servers, 1) == [0])  // tie: first
    }

    @Test("sed compares (active + 1) / weight; nq takes an idle server first")
    func shortestExpectedDelayAndNeverQueue() {
        let servers = makeServers([1, 3])
        setActive(servers, [0, 2])  // sed: 1/1 against 3/3: tie, first wins
        #expect(sequence(.sed, servers, 1) == [0])
        setActive(servers, [1, 2])  // 2/1 against 3/3
        #expect(sequence(.sed, servers, 1) == [1])
        let idle = makeServers([1, 10, 1])
        setActive(idle, [3, 1, 0])
        #expect(sequence(.nq, idle, 1) == [2])  // idle beats a faster busy one
        setActive(idle, [3, 1, 2])
        #expect(sequence(.nq, idle, 1) == [1])  // none idle: sed
    }

    @Test("fo sends all to the highest weight; the next takes over when it is unavailable")
    func weightedFailover() {
        let servers = makeServers([5, 10, 10, 1])
        #expect(sequence(.fo, servers, 3) == [1, 1, 1])
        servers[1].counters.overloaded.store(true, ordering: .relaxed)
        #expect(sequence(.fo, servers, 1) == [2])
    }

    @Test("ovf fills the highest weight until active exceeds its weight")
    func weightedOverflow() {
        let servers = makeServers([2, 4])
        setActive(servers, [0, 4])
        #expect(sequence(.ovf, servers, 1) == [1])  // 4 active is not more than weight 4
        setActive(servers, [0, 5])
        #expect(sequence(.ovf, servers, 1) == [0])
        setActive(servers, [3, 5])
        #expect(sequence(.ovf, servers, 1) == [nil])
    }

    @Test("twos is replayable with a seeded generator and prefers the less loaded of its two draws")
    func twoChoices() {
        let servers = makeServers([1, 1])
        #expect(sequence(.twos, servers, 20) == sequence(.twos, servers, 20))
        setActive(servers, [10, 0])
        // Whenever the two draws differ the idle server wins; whenever they agree it is a coin toss.
        let picks = sequence(.twos, servers, 1000).compactMap { $0 }
        let idle = picks.filter { $0 == 1 }.count
        #expect(idle > 650 && idle < 850)  // expected 750
    }

    @Test("sh tiles 256 buckets by weight, picks by hash_32 of the key, and falls back only when told")
    func sourceHashing() {
        let servers = makeServers([2, 1])
        let table = SourceHashingScheduler(servers: servers, flags: .init())
        var random = SplitMix64(seed: 0)
        // Buckets go 0,0,1,0,0,1,… so bucket b belongs to server (b % 3 == 2 ? 1 : 0).
        for key: UInt32 in [0, 1, 7, 0xC0A8_0001, 0xFFFF_FFFF] {
            var scheduler = table
            let bucket = Int(KeyHash.hash32(key, bits: 8))
            #expect(scheduler.pick(servers, PickInput(key: key), &random) == (bucket % 3 == 2 ? 1 : 0))
        }
        let down = makeServers([1, 0])
        let key = (0..<1000).map(UInt32.init).first { KeyHash.hash32($0, bits: 8) % 2 == 1 }!
        var plain = SourceHashingScheduler(servers: down, flags: .init())
        #expect(plain.pick(down, PickInput(key: key), &random) == nil)
        var fallback = SourceHashingScheduler(servers: down, flags: .init(fallback: true))
        #expect(fallback.pick(down, PickInput(key: key), &random) == 0)
    }

    @Test("dh assigns buckets in turn and gives nil for an unavailable server")
    func destinationHashing() {
        let servers = makeServers([1, 1, 1])
        var scheduler = DestinationHashingScheduler(servers: servers, flags: .init())
        var random = SplitMix64(seed: 0)
        for key: UInt32 in [0, 1, 2, 99, 0x0A00_0001] {
            let bucket = Int((key &* 2_654_435_761) & 255)
            #expect(scheduler.pick(servers, PickInput(key: key), &random) == bucket % 3)
        }
        let quiesced = makeServers([1, 0, 1])
        let key = (0..<1000).map(UInt32.init).first { Int(($0 &* 2_654_435_761) & 255) % 3 == 1 }!
        var scheduler2 = DestinationHashingScheduler(servers: quiesced, flags: .init())
        #expect(scheduler2.pick(quiesced, PickInput(key: key), &random) == nil)
    }

    @Test("Maglev table of size 7 with two servers is filled by their permutations, weights as turns")
    func maglevTinyTable() {
        let servers = makeServers([1, 1])
        let table = MaglevScheduler(servers: servers, flags: .init(), tableSize: 7).table
        #expect(table.count == 7)
        #expect(Set(table) == [0, 1])
        let counts = [table.filter { $0 == 0 }.count, table.filter { $0 == 1 }.count]
        #expect(abs(counts[0] - counts[1]) <= 1)  // turns alternate, so 4/3 or 3/4
        // Weight 3 against 1: three slots per round against one.
        let weighted = MaglevScheduler(servers: makeServers([3, 1]), flags: .init(), tableSize: 7).table
        #expect(weighted.filter { $0 == 0 }.count >= 5)
        // Weight 0 takes no slot.
        let quiesced = MaglevScheduler(servers: makeServers([1, 0, 1]), flags: .init(), tableSize: 7).table
        #expect(!quiesced.contains(1))
    }

    /// Envoy's way (maglev_lb_test.cc): a table of 7 slots, small enough to follow by hand.
    /// Permutations (offset, skip) from the two hashes of each address, members in address order:
    ///   A 10.0.0.1:80 (5, 6): 5 4 3 2 1 0 6    B 10.0.0.2:80 (1, 5): 1 6 4 2 0 5 3    C 10.0.0.3:80 (0, 1): 0 1 2 3 …
    /// Round 1: A 5, B 1, C 0. Round 2: A 4, B 6, C 1 is taken so 2. Round 3: A 3, and the table is full.
    @Test("Maglev golden table of size 7: three servers, then weights 2:1:1, then one out of rotation")
    func maglevGoldenTable() {
        let servers = makeServers([1, 1, 1])
        #expect(MaglevScheduler(servers: servers, flags: .init(), tableSize: 7).table == [2, 1, 2, 0, 0, 0, 1])
        // A with weight 2 takes two slots a round: 5 4, B 1, C 0; then 3 2, B 6: full.
        #expect(
            MaglevScheduler(servers: makeServers([2, 1, 1]), flags: .init(), tableSize: 7).table
                == [2, 1, 0, 0, 0, 0, 1])
        // B health-down keeps its slots (the table is built from configured weights): nobody else's keys move.
        let bDown = [
            servers[0], RealServer(id: 1, endpoint: servers[1].endpoint, weight: 1, inRotation: false),
            servers[2],
        ]
        var scheduler = MaglevScheduler(servers: bDown, flags: .init(), tableSize: 7)
        #expect(scheduler.table == [2, 1, 2, 0, 0, 0, 1])
        // Its keys go to the others without mh-fallback (a quiesced server's keys would get nil).
        var random = SplitMix64(seed: 1)
        for key in UInt32(0)..<200 {
            let slot = scheduler.slot(key, offset: 0)
            let picked = scheduler.pick(bDown, PickInput(key: key), &random)
            if scheduler.table[slot] == 1 {
                #expect(picked == 0 || picked == 2)
            } else {
                #expect(picked == scheduler.table[slot])
            }
        }
    }

    @Test("Maglev's table size is a prime at least 100 times the servers")
    func maglevTableSize() {
        for count in [1, 3, 10, 40, 41, 100, 700, 2000] {
            let size = MaglevScheduler.tableSize(forServers: count)
            #expect(size >= 100 * count)
            #expect(size >= 65521)
            #expect((2..<Int(Double(size).squareRoot()) + 1).allSatisfy { size % $0 != 0 })
        }
    }

    @Test("lblc keeps a key on its server until it is overloaded, and forgets it after expiration")
    func locality() {
        let servers = makeServers([2, 2])
        var scheduler = LocalityScheduler(servers: servers, flags: .init(), expiration: 60)
        var random = SplitMix64(seed: 0)
        setActive(servers, [0, 1])
        #expect(scheduler.pick(servers, PickInput(key: 7, now: 0), &random) == 0)
        setActive(servers, [2, 0])  // 0 is busier but not overloaded (active not above weight)
        #expect(scheduler.pick(servers, PickInput(key: 7, now: 1), &random) == 0)
        setActive(servers, [3, 0])  // above its weight while 1 is below half of its own
        #expect(scheduler.pick(servers, PickInput(key: 7, now: 2), &random) == 1)
        setActive(servers, [0, 1])
        #expect(scheduler.pick(servers, PickInput(key: 7, now: 3), &random) == 1)  // remembered
        #expect(scheduler.pick(servers, PickInput(key: 7, now: 100), &random) == 0)  // expired: wlc again
    }

    @Test("lblcr grows a key's set under overload and drops its busiest member after expiration")
    func localityReplication() {
        let servers = makeServers([2, 2, 2])
        var scheduler = LocalityReplicationScheduler(servers: servers, flags: .init(), expiration: 60)
        var random = SplitMix64(seed: 0)
        #expect(scheduler.pick(servers, PickInput(key: 1, now: 0), &random) == 0)
        setActive(servers, [3, 0, 1])
        #expect(scheduler.pick(servers, PickInput(key: 1, now: 1), &random) == 1)
        #expect(scheduler.members(of: 1) == [0, 1])
        setActive(servers, [0, 1, 0])
        #expect(scheduler.pick(servers, PickInput(key: 1, now: 2), &random) == 0)  // least loaded member
        setActive(servers, [0, 2, 0])
        _ = scheduler.pick(servers, PickInput(key: 1, now: 100), &random)
        #expect(scheduler.members(of: 1) == [0])  // the busier member left
    }
}

@Suite("IPVS schedulers: distributions over 100k picks")
struct SchedulerDistributionTests {
    func within(_ counts: [Int], _ weights: [Int], _ tolerance: Double = 0.02) -> Bool {
        zip(shares(counts), weightShares(weights)).allSatisfy { abs($0 - $1) <= tolerance }
    }

    @Test("rr spreads evenly", arguments: [[1, 1, 1], [1, 1, 1, 1, 1]])
    func rr(weights: [Int]) {
        #expect(within(distribution(.rr, weights: weights, picks: 100_000), weights))
    }

    @Test("wrr follows the weights", arguments: [[1, 2, 3], [5, 1, 1, 3]])
    func wrr(weights: [Int]) {
        #expect(within(distribution(.wrr, weights: weights, picks: 100_000), weights))
    }

    @Test("wlc under a steady load follows the weights", arguments: [[1, 1, 1], [1, 2, 3]])
    func wlc(weights: [Int]) {
        #expect(within(distribution(.wlc, weights: weights, picks: 100_000, hold: 60), weights))
    }

    @Test("mh over random keys follows the weights", arguments: [[1, 1, 1], [1, 2, 3, 4]])
    func mh(weights: [Int]) {
        var random = SplitMix64(seed: 7)
        let keys = (0..<100_000).map { _ in UInt32.random(in: .min ... .max, using: &random) }
        #expect(within(distribution(.mh, weights: weights, picks: 100_000, key: { keys[$0] }), weights))
    }

    @Test("twos under a steady load follows the weights")
    func twos() {
        #expect(within(distribution(.twos, weights: [1, 2, 3], picks: 100_000, hold: 60), [1, 2, 3], 0.03))
    }

    @Test("Maglev: removing one of N servers moves only its keys, plus at most 1% of the others")
    func maglevDisruption() {
        for count in [5, 10, 20] {
            let all = makeServers([Int](repeating: 1, count: count))
            let removed = count / 2
            let rest = all.enumerated().filter { $0.offset != removed }.map(\.element)
            var before = MaglevScheduler(servers: all, flags: .init())
            var after = MaglevScheduler(servers: rest, flags: .init())
            var random = SplitMix64(seed: 3)
            var moved = 0
            let keys = 100_000
            for _ in 0..<keys {
                let key = UInt32.random(in: .min ... .max, using: &random)
                let old = all[before.pick(all, PickInput(key: key), &random)!].id
                let new = rest[after.pick(rest, PickInput(key: key), &random)!].id
                if old != removed && old != new { moved += 1 }
            }
            #expect(Double(moved) / Double(keys) <= 0.01, "N=\(count): \(moved) of \(keys) keys of other servers moved")
        }
    }
}

@Suite("Upper and lower connection thresholds")
struct ThresholdTests {
    @Test("the overload flag is set at upper and cleared below lower (or three quarters of upper)")
    func hysteresis() {
        let counters = ServerCounters()
        for _ in 0..<3 { counters.open(upper: 4) }
        #expect(!counters.isOverloaded)
        counters.open(upper: 4)
        #expect(counters.isOverloaded)
        counters.close(upper: 4, lower: 0)  // 3 left: 3*4 < 4*3 is false
        #expect(counters.isOverloaded)
        counters.close(upper: 4, lower: 0)  // 2 left
        #expect(!counters.isOverloaded)
        let withLower = ServerCounters()
        for _ in 0..<10 { withLower.open(upper: 10) }
        withLower.close(upper: 10, lower: 5)
        #expect(withLower.isOverloaded)
        for _ in 0..<5 { withLower.close(upper: 10, lower: 5) }
        #expect(!withLower.isOverloaded)
    }
}

@Suite("A new snapshot keeps the scheduler's state where IPVS keeps it")
struct SchedulerCarryTests {
    /// `install` a new list built from `weights` (ids kept), as a weight or health change does.
    static func rebuilt(_ state: inout SchedulingState, _ servers: [RealServer]) {
        state.install(servers, Scheduler(kind: state.kind, servers: servers, flags: state.flags))
    }

    @Test("rr goes on after the server it picked last, not from the start, when another server's health flips")
    func roundRobinPosition() {
        let servers = makeServers([1, 1, 1, 1])
        var state = SchedulingState(kind: .rr, servers: servers)
        #expect(state.schedule(PickInput())?.id == 0)
        #expect(state.schedule(PickInput())?.id == 1)
        // Server 3 goes down: a rebuild. The next pick is 2, not 0 again.
        let down = servers.map {
            RealServer(
                id: $0.id, endpoint: $0.endpoint, weight: 1, counters: $0.counters,
                inRotation: $0.id != 3)
        }
        Self.rebuilt(&state, down)
        #expect([0, 1, 2].map { _ in state.schedule(PickInput())?.id } == [2, 0, 1])
        // The server picked last leaves the list: rr goes on from where it stood.
        Self.rebuilt(&state, [servers[0], servers[2], servers[3]])
        #expect(state.schedule(PickInput())?.id == 2)
    }

    @Test("lblc and lblcr keep their caches across a rebuild, by server id")
    func localityCaches() {
        let servers = makeServers([1, 1, 1])
        for kind in [SchedulerKind.lblc, .lblcr] {
            var state = SchedulingState(kind: kind, servers: servers)
            let key = PickInput(key: 77, now: 1)
            setActive(servers, [1, 0, 1])
            #expect(state.schedule(key)?.id == 1)  // wlc: the idle one
            setActive(servers, [0, 0, 0])
            // A rebuild that moves server 1 to another index: the key stays with it.
            Self.rebuilt(&state, [servers[2], servers[1], servers[0]])
            #expect(state.schedule(PickInput(key: 77, now: 2))?.id == 1, "\(kind)")
            // Its server leaves: the entry is a miss, and the key goes by wlc.
            Self.rebuilt(&state, [servers[0], servers[2]])
            #expect(state.schedule(PickInput(key: 77, now: 3))?.id == 0, "\(kind)")
        }
    }

    @Test("wrr keeps its current weight (clamped) and starts the walk again, as ip_vs_wrr_dest_changed")
    func weightedRoundRobinWeight() {
        var state = SchedulingState(kind: .wrr, servers: makeServers([4, 3, 2]))
        #expect([0, 1, 2].map { _ in state.schedule(PickInput())?.id } == [0, 0, 1])  // current weight now 3
        Self.rebuilt(&state, makeServers([4, 3, 2]))
        // From the head with current weight 3 lowered by the gcd to 2: A B C.
        #expect([0, 1, 2].map { _ in state.schedule(PickInput())?.id } == [0, 1, 2])
    }

    @Test("a server out of rotation keeps no persistent client; a quiesced one does")
    func persistenceAndRotation() {
        let servers = makeServers([1, 1])
        var state = SchedulingState(kind: .rr, servers: servers, persistenceTimeout: 300)
        let client = PersistenceKey(address: [10, 0, 0, 9], prefixV4: 32, prefixV6: 128)
        #expect(state.schedule(PickInput(now: 1), client: client)?.id == 0)
        Self.rebuilt(&state, [RealServer(id: 0, endpoint: servers[0].endpoint, weight: 0), servers[1]])
        #expect(state.schedule(PickInput(now: 2), client: client)?.id == 0, "quiesced: the template holds")
        Self.rebuilt(
            &state,
            [
                RealServer(id: 0, endpoint: servers[0].endpoint, weight: 1, inRotation: false),
                servers[1],
            ])
        #expect(state.schedule(PickInput(now: 3), client: client)?.id == 1, "down: the client moves")
    }
}

@Suite("slow_start: the weight ramp")
struct SlowStartTests {
    @Test(
        "From 10 % to all of the weight, scaled by 16 so that weight 1 ramps too",
        arguments: [
            // (weight, seconds since joined, expected) over a 10 s ramp
            (1, 0.0, 2), (1, 5.0, 8), (1, 10.0, 16), (1, 60.0, 16), (3, 0.0, 5), (3, 2.5, 12), (0, 5.0, 0),
        ])
    func ramp(_ c: (Int, Double, Int)) {
        #expect(SlowStart(duration: 10).weight(c.0, joined: 100, now: 100 + c.1) == c.2)
    }

    @Test("Off, or a server that did not join lately: its weight, scaled only while slow start is on")
    func off() {
        #expect(SlowStart(duration: 0).weight(5, joined: 0, now: 1) == 5)
        #expect(SlowStart(duration: 10).weight(5, joined: nil, now: 1) == 80)
    }
}
