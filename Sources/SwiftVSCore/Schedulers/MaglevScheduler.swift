/// IPVS `mh`: Maglev consistent hashing (Eisenbud et al., NSDI 2016).
///
/// Each server walks its own permutation of a prime-sized table (offset and skip from two hashes of its address)
/// and claims free slots, `weight / gcd` slots per round, until the table is full. Removing one server frees only
/// its slots, so only its keys move (plus a sliver of others). Built off the hot path; a pick is one table read.
public struct MaglevScheduler: SchedulerAlgorithm {
    /// The IPVS table sizes (`CONFIG_IP_VS_MH_TAB_INDEX`); the default there is 4093.
    public static let primes = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]

    /// The smallest listed prime that is at least 65521 and at least 100 × the servers. IPVS's default 4093 moved
    /// 1.2-1.7% of other servers' keys when one of 10-20 servers left; 65521 keeps that under 1% (Envoy uses 65537),
    /// and a membership change of a few servers keeps the same size (so the same slots for the others).
    public static func tableSize(forServers count: Int) -> Int {
        let wanted = max(65521, 100 * count)
        if let prime = Self.primes.first(where: { $0 >= wanted }) { return prime }
        var candidate = wanted | 1
        while !Self.isPrime(candidate) { candidate += 2 }
        return candidate
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n % 2 == 0 { return n == 2 }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    /// Slot → server index (-1 when no server has weight).
    public let table: [Int]
    let fallback: Bool

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.init(servers: servers, flags: flags, tableSize: Self.tableSize(forServers: servers.count))
    }

    /// `tableSize` must be prime; tests use tiny ones (7) so the expected table can be read.
    public init(servers: [RealServer], flags: SchedulerFlags, tableSize: Int) {
        self.fallback = flags.fallback
        let size = tableSize
        var table = [Int](repeating: -1, count: size)
        var gcd = 0
        // The configured weights: a server out of rotation keeps its slots (its keys rehash at pick time).
        for server in servers where server.configuredWeight > 0 {
            gcd = WeightedRoundRobinScheduler.gcd(gcd, server.configuredWeight)
        }
        guard gcd > 0 else {
            self.table = table
            return
        }
        // Members sorted by address so that the table depends on who is in the pool, not on list order.
        let members = servers.indices.filter { servers[$0].configuredWeight > 0 }
            .sorted { servers[$0].endpoint.description < servers[$1].endpoint.description }
        var offsets = [Int](repeating: 0, count: members.count)
        var skips = [Int](repeating: 0, count: members.count)
        var turns = [Int](repeating: 0, count: members.count)
        for (m, index) in members.enumerated() {
            let name = servers[index].endpoint.description
            offsets[m] = Int(KeyHash.string64(name, seed: 0xA5A5) % UInt64(size))
            skips[m] = Int(KeyHash.string64(name, seed: 0x5A5A) % UInt64(size - 1)) + 1
            turns[m] = servers[index].configuredWeight / gcd
        }
        var filled = 0
        fill: while true {
            for m in members.indices {
                for _ in 0..<turns[m] {
                    var slot = offsets[m]
                    while table[slot] != -1 {
                        slot += skips[m]
                        if slot >= size { slot -= size }
                    }
                    table[slot] = members[m]
                    offsets[m] = slot + skips[m]
                    if offsets[m] >= size { offsets[m] -= size }
                    filled += 1
                    if filled == size { break fill }
                }
            }
        }
        self.table = table
    }

    /// The slot of `key` on its `offset`-th hash (0 first; the fallback walks the rest).
    @inline(__always)
    public func slot(_ key: UInt32, offset: UInt32) -> Int {
        Int(KeyHash.mix(key &+ offset &* 0x9E37_79B9) % UInt32(self.table.count))
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        guard !self.table.isEmpty else { return nil }
        let index = self.table[self.slot(input.key, offset: 0)]
        guard index >= 0 else { return nil }
        if servers[index].isAvailable { return index }
        // A server out of rotation always hands its keys on; a quiesced or overloaded one only with mh-fallback.
        guard self.fallback || !servers[index].inRotation else { return nil }
        // Rehash with growing offsets until an available server turns up.
        for offset in 1..<UInt32(min(self.table.count, 4096)) {
            let candidate = self.table[self.slot(input.key, offset: offset)]
            if candidate >= 0 && servers[candidate].isAvailable { return candidate }
        }
        return nil
    }
}
