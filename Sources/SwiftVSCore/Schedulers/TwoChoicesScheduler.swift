/// IPVS `twos`: two servers drawn at random in proportion to their weights; the one with less overhead per weight
/// wins. Randomness comes from the injected generator.
public struct TwoChoicesScheduler: SchedulerAlgorithm {
    public init(servers: [RealServer], flags: SchedulerFlags) {}

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        var totalWeight = 0
        for server in servers where server.isAvailable {
            totalWeight += server.weight
        }
        guard totalWeight > 0 else { return nil }
        // As the kernel: r in 1...total, subtract weights until it reaches 0 or below.
        var r1 = Int.random(in: 1...totalWeight, using: &random)
        var r2 = Int.random(in: 1...totalWeight, using: &random)
        var choice1 = -1
        var choice2 = -1
        for index in servers.indices where servers[index].isAvailable {
            let weight = servers[index].weight
            r1 -= weight
            r2 -= weight
            if r1 <= 0 && choice1 == -1 { choice1 = index }
            if r2 <= 0 && choice2 == -1 { choice2 = index }
            if choice1 != -1 && choice2 != -1 { break }
        }
        guard choice1 != -1 else { return nil }
        if choice2 != -1 {
            let w1 = servers[choice1].weight
            let w2 = servers[choice2].weight
            if w2 * servers[choice1].overhead > w1 * servers[choice2].overhead {
                return choice2
            }
        }
        return choice1
    }
}
