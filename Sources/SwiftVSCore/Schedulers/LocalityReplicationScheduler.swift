/// IPVS `lblcr`: each key maps to a set of servers. A pick takes the set's least loaded member; when that one is
/// overloaded (lblc's test) a wlc pick over all servers joins the set. A set with several members that has not
/// changed for `expiration` loses its most loaded member.
///
/// Sets hold server ids, so that they survive a new snapshot (IPVS keeps them across server changes); a member that
/// left is passed over.
public struct LocalityReplicationScheduler: SchedulerAlgorithm {
    struct Entry {
        /// Server ids.
        var members: [Int]
        var lastUse: Double
        var lastModified: Double
    }

    /// IPVS `lblcr_expiration`: 24 hours.
    public static let defaultExpiration: Double = 86400

    var entries: [UInt32: Entry] = [:]
    let expiration: Double

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.init(servers: servers, flags: flags, expiration: Self.defaultExpiration)
    }

    /// Server id → index in this snapshot's servers.
    let indexOfID: [Int: Int]

    public init(servers: [RealServer], flags: SchedulerFlags, expiration: Double) {
        self.expiration = expiration
        self.indexOfID = indexByID(servers)
    }

    /// Takes over the previous snapshot's sets.
    mutating func inherit(_ old: LocalityReplicationScheduler) {
        self.entries = old.entries
    }

    /// The ids of the servers in `key`'s set.
    public func members(of key: UInt32) -> [Int] { self.entries[key]?.members ?? [] }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        guard var entry = self.entries[input.key] else {
            guard let chosen = leastWeightedOverhead(servers) else { return nil }
            if self.entries.count >= LocalityScheduler.capacity {
                self.entries = self.entries.filter { input.now - $0.value.lastUse <= self.expiration }
            }
            self.entries[input.key] = Entry(members: [servers[chosen].id], lastUse: input.now, lastModified: input.now)
            return chosen
        }
        entry.lastUse = input.now
        let indexOfID = self.indexOfID
        let present = entry.members.lazy.compactMap { indexOfID[$0] }
        let least = Self.least(present, servers)
        if entry.members.count > 1 && input.now - entry.lastModified > self.expiration,
            let most = Self.most(present, servers)
        {
            let mostID = servers[most].id
            entry.members.removeAll { $0 == mostID }
            entry.lastModified = input.now
        }
        if let least, !isLocalityOverloaded(least, servers) {
            self.entries[input.key] = entry
            return least
        }
        guard let chosen = leastWeightedOverhead(servers) else {
            self.entries[input.key] = entry
            return nil
        }
        if !entry.members.contains(servers[chosen].id) {
            entry.members.append(servers[chosen].id)
            entry.lastModified = input.now
        }
        self.entries[input.key] = entry
        return chosen
    }

    /// `ip_vs_dest_set_min`: the available member with the least overhead per weight.
    static func least<Members: Sequence<Int>>(_ members: Members, _ servers: [RealServer]) -> Int? {
        leastPerWeight(servers, among: members, overhead: \.overhead)
    }

    /// `ip_vs_dest_set_max`: the member with the most overhead per weight.
    static func most<Members: Sequence<Int>>(_ members: Members, _ servers: [RealServer]) -> Int? {
        var first: Int?
        var most: Int?
        for index in members {
            if first == nil { first = index }
            guard servers[index].weight > 0 else { continue }
            if let current = most {
                if servers[current].overhead * servers[index].weight < servers[index].overhead * servers[current].weight
                {
                    most = index
                }
            } else {
                most = index
            }
        }
        return most ?? first
    }
}
