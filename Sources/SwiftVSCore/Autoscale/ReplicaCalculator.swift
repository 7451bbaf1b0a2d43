/// Kubernetes' Horizontal Pod Autoscaler replica calculation (`pkg/controller/podautoscaler/replica_calculator.go`),
/// ported line for line so that a user who trusts HPA's arithmetic can trust ours: integer utilization, the ready
/// replica count as the multiplier, replicas without a sample and not-ready replicas rebalanced the way upstream
/// does, and the guards that refuse a change of direction. Pure: the time is a parameter, the samples are values.
///
/// "Pod" in upstream is "replica" here: a process the director started, or a pod behind a Deployment.
public struct ReplicaCalculator: Sendable, Equatable {
    /// HPA's `--horizontal-pod-autoscaler-tolerance`, per direction (`behavior.scaleUp/scaleDown.tolerance`): a
    /// ratio r changes nothing while `1 − scaleDown ≤ r ≤ 1 + scaleUp`.
    public struct Tolerances: Sendable, Equatable {
        public var scaleDown: Double
        public var scaleUp: Double

        public init(scaleDown: Double = 0.1, scaleUp: Double = 0.1) {
            self.scaleDown = scaleDown
            self.scaleUp = scaleUp
        }

        public func isWithin(_ ratio: Double) -> Bool { (1 - self.scaleDown) <= ratio && ratio <= (1 + self.scaleUp) }
    }

    public var tolerances: Tolerances
    /// `--horizontal-pod-autoscaler-cpu-initialization-period` (5 min): CPU samples of a replica this young count
    /// only once it is ready and a whole sample window has passed since it became so.
    public var cpuInitializationPeriod: Double
    /// `--horizontal-pod-autoscaler-initial-readiness-delay` (30 s): a replica that turned unready this soon after
    /// its start is taken as never ready yet.
    public var delayOfInitialReadinessStatus: Double

    public init(
        tolerances: Tolerances = Tolerances(), cpuInitializationPeriod: Double = 300,
        delayOfInitialReadinessStatus: Double = 30
    ) {
        self.tolerances = tolerances
        self.cpuInitializationPeriod = cpuInitializationPeriod
        self.delayOfInitialReadinessStatus = delayOfInitialReadinessStatus
    }

    /// One replica as the calculation sees it, with its sample of one metric.
    public struct Replica: Sendable, Equatable {
        public enum Phase: Sendable, Equatable {
            /// Upstream's `Running` (and `Succeeded`/`Unknown`): counted.
            case running
            /// Not started yet (a pod not scheduled, a process not spawned): unready.
            case pending
            /// Failed, or being deleted (draining, stopping): left out, its sample dropped.
            case failed
        }

        /// The Ready condition: whether it holds, and when it last changed.
        public struct Readiness: Sendable, Equatable {
            public var ready: Bool
            public var since: Double

            public init(ready: Bool, since: Double) {
                self.ready = ready
                self.since = since
            }
        }

        public var name: String
        public var phase: Phase
        /// nil: no Ready condition yet.
        public var readiness: Readiness?
        /// When the replica started; nil when unknown.
        public var started: Double?
        /// The sample (milli-units: millicores, bytes × 1000, requests per second × 1000), nil when there is none.
        public var value: Int64?
        /// When the sample was taken and over how long a window (CPU's readiness rule reads them).
        public var sampledAt: Double
        public var window: Double
        /// Resource metrics: what the replica asked for (millicores, bytes), the utilization's 100 %.
        public var request: Int64?

        public init(
            name: String, phase: Phase = .running, readiness: Readiness? = nil, started: Double? = nil,
            value: Int64?, sampledAt: Double = 0, window: Double = 0, request: Int64? = nil
        ) {
            self.name = name
            self.phase = phase
            self.readiness = readiness
            self.started = started
            self.value = value
            self.sampledAt = sampledAt
            self.window = window
            self.request = request
        }
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case noReplicas
        case noMetrics
        case missingRequest(String)
        case zeroRequests
        case badTarget

        public var description: String {
            switch self {
            case .noReplicas: return "no replicas to calculate the replica count from"
            case .noMetrics: return "did not receive metrics for any ready replica"
            case .missingRequest(let name): return "replica \(name) has no request for the resource"
            case .zeroRequests: return "the replicas' requests add up to 0"
            case .badTarget: return "the target must be above 0"
            }
        }
    }

    /// A proposal: the replica count, and the metric's current value as HPA reports it (a utilization in percent,
    /// or an average in milli-units).
    public struct Proposal: Sendable, Equatable {
        public var replicas: Int
        public var current: Int64
        /// Resource metrics: the raw average (milli-units) beside the utilization.
        public var rawAverage: Int64?

        public init(replicas: Int, current: Int64, rawAverage: Int64? = nil) {
            self.replicas = replicas
            self.current = current
            self.rawAverage = rawAverage
        }
    }

    // MARK: grouping

    struct Groups {
        var ready = 0
        /// Failed or going away: their samples are dropped and never rebalanced.
        var ignored: Set<String> = []
        /// Pending, or (CPU) not ready yet: dropped, and counted as idle on a scale-up.
        var unready: Set<String> = []
        var missing: Set<String> = []

        /// Whose samples the first ratio leaves out.
        func excludes(_ name: String) -> Bool { self.ignored.contains(name) || self.unready.contains(name) }
    }

    /// `groupPods`: failed/deleting replicas are ignored, pending ones unready, those without a sample missing;
    /// for CPU, a replica not ready yet (or whose first window after becoming ready has not passed) is unready.
    func group(_ replicas: [Replica], cpu: Bool, now: Double) -> Groups {
        var groups = Groups()
        for replica in replicas {
            switch replica.phase {
            case .failed:
                groups.ignored.insert(replica.name)
                continue
            case .pending:
                groups.unready.insert(replica.name)
                continue
            case .running: break
            }
            guard replica.value != nil else {
                groups.missing.insert(replica.name)
                continue
            }
            if cpu {
                let ignore: Bool
                if let readiness = replica.readiness, let started = replica.started {
                    if started + self.cpuInitializationPeriod > now {
                        ignore = !readiness.ready || replica.sampledAt < readiness.since + replica.window
                    } else {
                        ignore = !readiness.ready && started + self.delayOfInitialReadinessStatus > readiness.since
                    }
                } else {
                    ignore = true
                }
                if ignore {
                    groups.unready.insert(replica.name)
                    continue
                }
            }
            groups.ready += 1
        }
        return groups
    }

    // MARK: resource utilization (cpu, memory)

    /// `GetResourceReplicas`: `targetUtilization` percent of each replica's request. `strays` are samples of
    /// replicas not in `replicas` (a metrics API that knows more pods than the lister): upstream keeps them, and
    /// since they have no request they weigh only in the slow path's count.
    public func resourceReplicas(
        current: Int, targetUtilization: Int, replicas: [Replica], cpu: Bool, now: Double,
        strays: [String: Int64] = [:]
    ) throws(Failure) -> Proposal {
        guard !replicas.isEmpty else { throw .noReplicas }
        guard targetUtilization > 0 else { throw .badTarget }
        let groups = self.group(replicas, cpu: cpu, now: now)
        var requests: [String: Int64] = [:]
        for replica in replicas {
            guard let request = replica.request else { throw .missingRequest(replica.name) }
            requests[replica.name] = request
        }
        var metrics = strays
        for replica in replicas {
            if let value = replica.value, !groups.excludes(replica.name) { metrics[replica.name] = value }
        }
        guard !metrics.isEmpty else { throw .noMetrics }
        let (ratio, utilization, raw) = try Self.utilizationRatio(metrics, requests, target: targetUtilization)
        let proposal = { (replicas: Int) in Proposal(replicas: replicas, current: utilization, rawAverage: raw) }

        let rebalanceUnready = !groups.unready.isEmpty && ratio > 1
        if !rebalanceUnready && groups.missing.isEmpty {
            if self.tolerances.isWithin(ratio) { return proposal(current) }
            return proposal(Self.ceil(ratio * Double(groups.ready)))
        }
        if !groups.missing.isEmpty {
            for name in groups.missing {
                if ratio < 1 {
                    // On a scale-down, a replica without a sample counts as using its request (or the target,
                    // when that is above 100 %).
                    metrics[name] = (requests[name] ?? 0) * Int64(max(100, targetUtilization)) / 100
                } else if ratio > 1 {
                    metrics[name] = 0
                }
            }
        }
        if rebalanceUnready {
            // On a scale-up, a replica not ready yet counts as idle.
            for name in groups.unready { metrics[name] = 0 }
        }
        let (newRatio, _, _) = try Self.utilizationRatio(metrics, requests, target: targetUtilization)
        if self.tolerances.isWithin(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
            return proposal(current)
        }
        let newReplicas = Self.ceil(newRatio * Double(metrics.count))
        if (newRatio < 1 && newReplicas > current) || (newRatio > 1 && newReplicas < current) {
            return proposal(current)
        }
        return proposal(newReplicas)
    }

    /// `GetResourceUtilizationRatio`: Σusage·100/Σrequest in integer arithmetic, over replicas with a request.
    static func utilizationRatio(
        _ metrics: [String: Int64], _ requests: [String: Int64], target: Int
    )
        throws(Failure) -> (ratio: Double, utilization: Int64, rawAverage: Int64)
    {
        var total: Int64 = 0
        var requested: Int64 = 0
        var entries: Int64 = 0
        for (name, value) in metrics {
            guard let request = requests[name] else { continue }
            total += value
            requested += request
            entries += 1
        }
        guard requested != 0 else { throw .zeroRequests }
        let utilization = Int64(Int32(truncatingIfNeeded: total * 100 / requested))
        return (Double(utilization) / Double(target), utilization, total / entries)
    }

    // MARK: plain values (Pods metrics, raw resource averages)

    /// `calcPlainMetricReplicas`: the average of the replicas' samples against `targetAverage` (milli-units).
    public func averageReplicas(
        current: Int, targetAverage: Int64, replicas: [Replica], now: Double
    ) throws(Failure)
        -> Proposal
    {
        guard !replicas.isEmpty else { throw .noReplicas }
        guard targetAverage > 0 else { throw .badTarget }
        let groups = self.group(replicas, cpu: false, now: now)
        var metrics: [String: Int64] = [:]
        for replica in replicas {
            if let value = replica.value, !groups.excludes(replica.name) { metrics[replica.name] = value }
        }
        guard !metrics.isEmpty else { throw .noMetrics }
        let (ratio, average) = Self.usageRatio(metrics, target: targetAverage)

        let rebalanceUnready = !groups.unready.isEmpty && ratio > 1
        if !rebalanceUnready && groups.missing.isEmpty {
            if self.tolerances.isWithin(ratio) { return Proposal(replicas: current, current: average) }
            return Proposal(replicas: Self.ceil(ratio * Double(groups.ready)), current: average)
        }
        for name in groups.missing { metrics[name] = ratio < 1 ? targetAverage : 0 }
        if rebalanceUnready {
            for name in groups.unready { metrics[name] = 0 }
        }
        let (newRatio, _) = Self.usageRatio(metrics, target: targetAverage)
        if self.tolerances.isWithin(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
            return Proposal(replicas: current, current: average)
        }
        let newReplicas = Self.ceil(newRatio * Double(metrics.count))
        if (newRatio < 1 && newReplicas > current) || (newRatio > 1 && newReplicas < current) {
            return Proposal(replicas: current, current: average)
        }
        return Proposal(replicas: newReplicas, current: average)
    }

    /// `GetMetricUsageRatio`: the integer average over the samples.
    static func usageRatio(_ metrics: [String: Int64], target: Int64) -> (ratio: Double, average: Int64) {
        let average = metrics.values.reduce(0, +) / Int64(metrics.count)
        return (Double(average) / Double(target), average)
    }

    // MARK: one value for the whole service (Object, External)

    /// `GetObjectMetricReplicas` / `GetExternalMetricReplicas` with a `Value` target: `value` (an external metric's
    /// series summed) against `target`, times the ready replicas; from 0 replicas, `ceil(ratio)`.
    public func valueReplicas(
        current: Int, value: Int64, target: Int64, readyReplicas: Int
    ) throws(Failure)
        -> Proposal
    {
        guard target > 0 else { throw .badTarget }
        let ratio = Double(value) / Double(target)
        guard current != 0 else { return Proposal(replicas: Self.ceil(ratio), current: value) }
        if self.tolerances.isWithin(ratio) { return Proposal(replicas: current, current: value) }
        return Proposal(replicas: Self.ceil(ratio * Double(readyReplicas)), current: value)
    }

    /// `GetObjectPerPodMetricReplicas` / `GetExternalPerPodMetricReplicas` (an `AverageValue` target): `value` over
    /// `targetAverage × statusReplicas`; outside the tolerance, `ceil(value / targetAverage)`.
    public func averageValueReplicas(
        statusReplicas: Int, value: Int64, targetAverage: Int64
    ) throws(Failure)
        -> Proposal
    {
        guard targetAverage > 0 else { throw .badTarget }
        guard statusReplicas > 0 else {
            return Proposal(replicas: Self.ceil(Double(value) / Double(targetAverage)), current: value)
        }
        var replicas = statusReplicas
        let ratio = Double(value) / (Double(targetAverage) * Double(statusReplicas))
        if !self.tolerances.isWithin(ratio) { replicas = Self.ceil(Double(value) / Double(targetAverage)) }
        let average = Int64((Double(value) / Double(statusReplicas)).rounded(.up))
        return Proposal(replicas: replicas, current: average)
    }

    /// Go's `int32(math.Ceil(x))`.
    static func ceil(_ x: Double) -> Int { Int(Int32(clamping: Int64(x.rounded(.up)))) }
}
