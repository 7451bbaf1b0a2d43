/// IPVS `sed`: the available server with the least (active + 1) / weight: the delay a new connection expects.
public struct ShortestExpectedDelayScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        leastPerWeight(servers, among: servers.indices) { $0.active + 1 }
    }
}
