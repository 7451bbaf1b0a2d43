/// One reconcile of HPA (`reconcileAutoscaler` and `computeReplicasForMetrics` in `horizontal.go`): out-of-bounds
/// counts are brought in without reading metrics; otherwise every metric's proposal is taken, the highest wins, a
/// partial failure never scales down, and the result is normalized (`ScaleNormalizer`). It returns the decision
/// with HPA's three conditions, so that `adm scale` and the log say what HPA would say. Pure: `now` is a parameter.
public struct HorizontalAutoscaler: Sendable, Equatable {
    public var minReplicas: Int
    public var maxReplicas: Int
    public var normalizer: ScaleNormalizer

    public init(
        minReplicas: Int, maxReplicas: Int, behavior: ScaleNormalizer.Behavior?,
        downscaleStabilization: Double = 300
    ) {
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
        self.normalizer = ScaleNormalizer(behavior: behavior, downscaleStabilization: downscaleStabilization)
    }

    /// One metric's outcome this round: its proposal, or why there is none.
    public struct MetricOutcome: Sendable, Equatable {
        public var metric: String
        public var result: Result<ReplicaCalculator.Proposal, ReplicaCalculator.Failure>

        public init(_ metric: String, _ result: Result<ReplicaCalculator.Proposal, ReplicaCalculator.Failure>) {
            self.metric = metric
            self.result = result
        }

        public static func proposal(_ metric: String, _ replicas: Int, current: Int64 = 0) -> MetricOutcome {
            MetricOutcome(metric, .success(ReplicaCalculator.Proposal(replicas: replicas, current: current)))
        }
    }

    public struct Decision: Sendable, Equatable {
        public var current: Int
        /// What to scale to; `current` when nothing changes.
        public var desired: Int
        /// The highest proposal, before normalization; nil when the metrics were not read or gave none.
        public var proposal: Int?
        /// Why the count changes (HPA's event message), empty when it does not.
        public var reason: String
        public var ableToScale: ScaleNormalizer.Condition
        public var scalingActive: ScaleNormalizer.Condition
        public var scalingLimited: ScaleNormalizer.Condition?

        public var rescale: Bool { self.desired != self.current }
    }

    /// Decides the replica count from `current` and this round's metric outcomes (in the order of the spec: the
    /// first failure is the one reported), and records the scale event when it changes.
    public mutating func reconcile(current: Int, metrics: [MetricOutcome], now: Double) -> Decision {
        let able = ScaleNormalizer.Condition(true, "SucceededRescale", "the autoscaler can change the replica count")
        if current == 0 && self.minReplicas != 0 {
            return Decision(
                current: 0, desired: 0, proposal: nil, reason: "", ableToScale: able,
                scalingActive: ScaleNormalizer.Condition(
                    false, "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero"),
                scalingLimited: nil)
        }
        let active = ScaleNormalizer.Condition(true, "ValidMetricFound", "the replica count was calculated")
        if current > self.maxReplicas || current < self.minReplicas {
            let above = current > self.maxReplicas
            let desired = above ? self.maxReplicas : self.minReplicas
            self.normalizer.record(from: current, to: desired, now: now)
            return Decision(
                current: current, desired: desired, proposal: nil,
                reason: above
                    ? "Current number of replicas above maxReplicas" : "Current number of replicas below minReplicas",
                ableToScale: able, scalingActive: active, scalingLimited: nil)
        }
        var best = 0
        var bestMetric = ""
        var invalid = 0
        var firstFailure: (String, ReplicaCalculator.Failure)?
        for outcome in metrics {
            switch outcome.result {
            case .failure(let failure):
                if firstFailure == nil { firstFailure = (outcome.metric, failure) }
                invalid += 1
            case .success(let proposal):
                if best == 0 || proposal.replicas > best {
                    best = proposal.replicas
                    bestMetric = outcome.metric
                }
            }
        }
        if invalid >= metrics.count || (invalid > 0 && best < current) {
            // Every metric failed, or one did and the rest would scale down: HPA does not scale on partial data.
            let (metric, failure) = firstFailure ?? ("", .noMetrics)
            return Decision(
                current: current, desired: current, proposal: nil, reason: "", ableToScale: able,
                scalingActive: ScaleNormalizer.Condition(false, "FailedGetMetric", "\(metric): \(failure)"),
                scalingLimited: nil)
        }
        let scalingActive = ScaleNormalizer.Condition(
            true, "ValidMetricFound", "the autoscaler calculated a replica count from \(bestMetric)")
        var reason = ""
        if best > current { reason = "\(bestMetric) above target" }
        if best < current { reason = "All metrics below target" }
        let outcome = self.normalizer.normalize(
            current: current, proposal: best, min: self.minReplicas, max: self.maxReplicas, now: now)
        if outcome.replicas != current { self.normalizer.record(from: current, to: outcome.replicas, now: now) }
        if outcome.replicas == current { reason = "" }
        return Decision(
            current: current, desired: outcome.replicas, proposal: best, reason: reason,
            ableToScale: outcome.ableToScale, scalingActive: scalingActive, scalingLimited: outcome.scalingLimited)
    }
}
