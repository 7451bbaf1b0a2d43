/// IPVS `wrr`: passes over the servers with a falling current weight `cw` (from the largest weight down by the
/// weights' gcd); a server is picked when its weight is at least `cw`. Weights 4, 3, 2 give A A B A B C A B C.
public struct WeightedRoundRobinScheduler: SchedulerAlgorithm {
    /// Position in the list; -1 stands for the list head, as IPVS's `mark->cl`.
    var index = -1
    var currentWeight = 0
    let maxWeight: Int
    let gcd: Int

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.maxWeight = servers.map(\.weight).max() ?? 0
        var g = 0
        for server in servers where server.weight > 0 {
            g = Self.gcd(g, server.weight)
        }
        self.gcd = max(g, 1)
    }

    /// `ip_vs_wrr_dest_changed`: the walk starts again from the head of the list, the current weight carries over
    /// (clamped to the new maximum).
    mutating func inherit(_ old: WeightedRoundRobinScheduler) {
        self.index = -1
        if old.currentWeight > 0 && old.currentWeight <= self.maxWeight {
            self.currentWeight = old.currentWeight
        }
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        let count = servers.count
        guard count > 0, self.maxWeight > 0 else { return nil }
        // A full cycle visits every server at every weight level; past that nothing is available.
        let bound = count * (self.maxWeight / self.gcd + 1) + 1
        for _ in 0..<bound {
            if self.index == -1 || self.index + 1 >= count {
                self.index = 0
                self.currentWeight -= self.gcd
                if self.currentWeight <= 0 { self.currentWeight = self.maxWeight }
            } else {
                self.index += 1
            }
            let server = servers[self.index]
            if !server.isOverloaded && server.weight >= self.currentWeight {
                return self.index
            }
        }
        return nil
    }
}
