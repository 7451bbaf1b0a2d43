/// IPVS `sed`: the available server with the least (active + 1) / weight: the delay a new connection expects.
public struct ShortestExpectedDelayScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(_ servers: [RealServer], _ input: PickInput, _ random: inout R) -> Int? {
        var least: Int?
        var leastOverhead = 0
        for index in servers.indices where servers[index].isAvailable {
            let overhead = servers[index].active + 1
            if let current = least {
                if leastOverhead * servers[index].weight > overhead * servers[current].weight {
                    least = index
                    leastOverhead = overhead
                }
            } else {
                least = index
                leastOverhead = overhead
            }
        }
        return least
    }
}
