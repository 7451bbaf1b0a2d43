/// IPVS `rr`: the next available server after the last one picked, circularly.
public struct RoundRobinScheduler: SchedulerAlgorithm {
    var last = -1

    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(_ servers: [RealServer], _ input: PickInput, _ random: inout R) -> Int? {
        let count = servers.count
        guard count > 0 else { return nil }
        var index = self.last
        for _ in 0..<count {
            index += 1
            if index >= count { index = 0 }
            if servers[index].isAvailable {
                self.last = index
                return index
            }
        }
        return nil
    }
}
