/// IPVS `wlc` (the default): the available server with the least overhead per weight; the first one on ties.
public struct WeightedLeastConnectionScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        leastWeightedOverhead(servers)
    }
}
