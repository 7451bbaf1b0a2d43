import SwiftVSCore
/// Parsers for the Linux /proc files the CPU sampler reads. Pure: the driver reads the files and passes the text.
/// The rate sweep of the first study: offer rates in rising order, one fixed-length step each, and find the highest
/// rate the target sustains (loss under the limit and nearly all of the rate achieved). After the first rate that
/// fails it can bisect between the last good and the first bad rate a few times.
public struct RateSweep: Sendable {
    public let rates: [Double]
    public let maxLossPercent: Double
    /// A step is sustained only if at least this share of the offered rate was answered successfully.
    public let minAchievedFraction: Double
    public let refineSteps: Int

    var index = 0
    var lastGood: Double?
    var firstBad: Double?
    var refined = 0
    var pending: Double?

    public init(rates: [Double], maxLossPercent: Double = 1, minAchievedFraction: Double = 0.98, refineSteps: Int = 0) {
        self.rates = rates.sorted()
        self.maxLossPercent = maxLossPercent
        self.minAchievedFraction = minAchievedFraction
        self.refineSteps = refineSteps
    }

    /// `from`, `from + step`, … up to `to`.
    public static func ladder(from: Double, to: Double, step: Double) -> [Double] {
        guard from > 0, step > 0, to >= from else { return [] }
        var out: [Double] = []
        var rate = from
        while rate <= to + step * 1e-9 && out.count < 1000 {
            out.append(rate)
            rate += step
        }
        return out
    }

    /// The next rate to offer, or nil when the sweep is over.
    public mutating func next() -> Double? {
        if let pending = self.pending { return pending }
        if self.firstBad == nil {
            guard self.index < self.rates.count else { return nil }
            self.pending = self.rates[self.index]
            return self.pending
        }
        guard self.refined < self.refineSteps, let bad = self.firstBad else { return nil }
        let good = self.lastGood ?? 0
        let middle = ((good + bad) / 2).rounded()
        guard middle > good, middle < bad else { return nil }
        self.pending = middle
        return middle
    }

    /// Whether a step counts as sustained.
    public func judge(offered: Double, achieved: Double, lossPercent: Double) -> Bool {
        lossPercent < self.maxLossPercent && achieved >= offered * self.minAchievedFraction
    }

    /// Records the result of the rate `next()` returned; returns whether it was sustained.
    @discardableResult
    public mutating func record(offered: Double, achieved: Double, lossPercent: Double) -> Bool {
        let ok = self.judge(offered: offered, achieved: achieved, lossPercent: lossPercent)
        self.pending = nil
        if self.firstBad == nil {
            self.index += 1
            if ok { self.lastGood = offered } else { self.firstBad = offered }
        } else {
            self.refined += 1
            if ok { self.lastGood = max(self.lastGood ?? 0, offered) } else { self.firstBad = offered }
        }
        return ok
    }
}

/// What each fault of a phase cost, read off the phase's timeline.
public enum FaultAnalysis {
    /// `faults` are (time since phase start, description) in time order. A bucket falls short if it had failures or
    /// answered under 90% of the mean rate of the buckets before the first fault.
    public static func analyze(
        timeline: [TimelinePoint], interval: Double, faults: [(at: Double, action: String)]
    )
        -> [FaultReport]
    {
        guard !faults.isEmpty else { return [] }
        let firstFault = faults[0].at
        let before = timeline.filter { $0.t <= firstFault + 1e-9 }
        // Skip the first bucket (ramp-up) when there are enough to spare.
        let steady = before.count > 2 ? Array(before.dropFirst()) : before
        let baseline = steady.isEmpty ? 0 : steady.reduce(0) { $0 + $1.requestsPerSecond } / Double(steady.count)
        var out: [FaultReport] = []
        for (i, fault) in faults.enumerated() {
            let end = i + 1 < faults.count ? faults[i + 1].at : .infinity
            // Buckets are labelled by their end time; a bucket belongs to the fault if it ends after it.
            let window = timeline.filter { $0.t > fault.at + 1e-9 && $0.t - interval < end - 1e-9 }
            let lost = window.reduce(0) { $0 + $1.failed }
            let short = window.filter { $0.failed > 0 || $0.requestsPerSecond < baseline * 0.9 }
            let recovered = short.last.map { max(0, $0.t - fault.at) } ?? 0
            out.append(FaultReport(at: fault.at, action: fault.action, lost: lost, secondsToFullRate: recovered))
        }
        return out
    }
}
