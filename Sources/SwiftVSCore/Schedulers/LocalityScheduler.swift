/// IPVS `lblc`: keeps each key (the destination, in IPVS) on the server it was last given, while that server is
/// not overloaded; otherwise picks by wlc and remembers the new server. Entries idle for `expiration` are forgotten.
///
/// Entries name servers by id, so that the cache survives a new snapshot (IPVS keeps it across server changes); an
/// entry whose server left is a miss.
public struct LocalityScheduler: SchedulerAlgorithm {
    struct Entry {
        var server: Int
        var lastUse: Double
    }

    /// Server id → index in this snapshot's servers.
    let indexOfID: [Int: Int]

    /// IPVS `lblc_expiration`: 24 hours.
    public static let defaultExpiration: Double = 86400
    /// The cache's size bound; on reaching it, expired entries are swept (then the oldest half, if needed).
    public static let capacity = 65536

    var entries: [UInt32: Entry] = [:]
    let expiration: Double

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.init(servers: servers, flags: flags, expiration: Self.defaultExpiration)
    }

    public init(servers: [RealServer], flags: SchedulerFlags, expiration: Double) {
        self.expiration = expiration
        self.indexOfID = indexByID(servers)
    }

    /// Takes over the previous snapshot's cache.
    mutating func inherit(_ old: LocalityScheduler) {
        self.entries = old.entries
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        if var entry = self.entries[input.key], input.now - entry.lastUse <= self.expiration,
            let index = self.indexOfID[entry.server]
        {
            entry.lastUse = input.now
            self.entries[input.key] = entry
            if servers[index].isAvailable && !isLocalityOverloaded(index, servers) {
                return index
            }
        }
        guard let chosen = leastWeightedOverhead(servers) else { return nil }
        if self.entries.count >= Self.capacity {
            self.sweep(now: input.now)
        }
        self.entries[input.key] = Entry(server: servers[chosen].id, lastUse: input.now)
        return chosen
    }

    mutating func sweep(now: Double) {
        self.entries = self.entries.filter { now - $0.value.lastUse <= self.expiration }
        if self.entries.count >= Self.capacity {
            let cut = self.entries.values.map(\.lastUse).sorted()[self.entries.count / 2]
            self.entries = self.entries.filter { $0.value.lastUse > cut }
        }
    }
}

/// The lblc/lblcr overload test: the server has more active connections than its weight while another server is
/// below half of its own.
/// Server id → index in `servers`.
func indexByID(_ servers: [RealServer]) -> [Int: Int] {
    Dictionary(servers.indices.map { (servers[$0].id, $0) }, uniquingKeysWith: { first, _ in first })
}

@inline(__always)
func isLocalityOverloaded(_ index: Int, _ servers: [RealServer]) -> Bool {
    guard servers[index].active > servers[index].weight else { return false }
    for server in servers where server.active * 2 < server.weight {
        return true
    }
    return false
}
