/// IPVS `rr`: the next available server after the last one picked, circularly.
public struct RoundRobinScheduler: SchedulerAlgorithm {
    var last = -1

    public init(servers: [RealServer], flags: SchedulerFlags) {}

    /// Goes on after the server picked last, wherever it now stands; if it left, from the place it had (IPVS moves
    /// its mark back one entry when that server is deleted).
    mutating func inherit(_ old: RoundRobinScheduler, oldServers: [RealServer], newServers: [RealServer]) {
        guard old.last >= 0, old.last < oldServers.count else { return }
        let id = oldServers[old.last].id
        if let index = newServers.firstIndex(where: { $0.id == id }) {
            self.last = index
        } else {
            self.last = min(old.last, newServers.count) - 1
        }
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
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
