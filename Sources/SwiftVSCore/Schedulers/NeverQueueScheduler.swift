/// IPVS `nq`: the first idle available server (no active connections); when none is idle, as `sed`.
public struct NeverQueueScheduler: SchedulerAlgorithm {
    var sed: ShortestExpectedDelayScheduler

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.sed = ShortestExpectedDelayScheduler(servers: servers, flags: flags)
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        for index in servers.indices where servers[index].isAvailable && servers[index].active == 0 {
            return index
        }
        return self.sed.pick(servers, input, &random)
    }
}
