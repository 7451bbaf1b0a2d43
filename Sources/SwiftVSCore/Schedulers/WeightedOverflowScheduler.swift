/// IPVS `ovf`: the highest-weight available server until its active connections exceed its weight, then the next.
public struct WeightedOverflowScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        var best: Int?
        for index in servers.indices {
            let server = servers[index]
            let weight = server.weight
            if server.isOverloaded || weight == 0 || server.active > weight { continue }
            if best == nil || weight > servers[best!].weight {
                best = index
            }
        }
        return best
    }
}
