/// IPVS `fo`: everything goes to the available server with the highest weight (the first one on ties); the next
/// one takes over only when it is unavailable.
public struct WeightedFailoverScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        var best: Int?
        for index in servers.indices where servers[index].isAvailable {
            if best == nil || servers[index].weight > servers[best!].weight {
                best = index
            }
        }
        return best
    }
}
