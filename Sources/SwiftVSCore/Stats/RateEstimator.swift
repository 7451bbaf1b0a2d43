/// The rate of a growing total, smoothed as the IPVS estimator smooths `ipvsadm --rate`: every sample (the kernel
/// takes one each 2 s) moves the average a quarter of the way towards the rate seen since the last sample.
public struct RateEstimator: Sendable, Equatable {
    private var lastTotal: Int?
    private var lastTime = 0.0
    /// Per second.
    public private(set) var rate = 0.0

    public init() {}

    public mutating func sample(total: Int, now: Double) {
        defer {
            self.lastTotal = total
            self.lastTime = now
        }
        guard let last = self.lastTotal, now > self.lastTime else { return }
        let current = Double(max(0, total - last)) / (now - self.lastTime)
        self.rate += (current - self.rate) / 4
    }
}
