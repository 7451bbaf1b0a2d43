/// IPVS `lc`: the available server with the least overhead (active × 256 + inactive); the first one on ties.
public struct LeastConnectionScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        var least: Int?
        var leastOverhead = Int.max
        for index in servers.indices where servers[index].isAvailable {
            let overhead = servers[index].overhead
            if overhead < leastOverhead {
                least = index
                leastOverhead = overhead
            }
        }
        return least
    }
}
