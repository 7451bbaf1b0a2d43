/// HPA's normalization of a proposed replica count (`horizontal.go`): stabilization over recent recommendations,
/// then the rate limits, then min/max. Two paths, as upstream has them: the legacy one when the autoscaler has no
/// `behavior` (the highest recommendation of the last 5 minutes; up to `max(2 × current, 4)` per step), and the
/// `behavior` one (stabilization windows per direction, Pods/Percent policies over `periodSeconds` counted from the
/// scale events recorded, `selectPolicy`). Pure: `now` (seconds) is a parameter; the recommendations and events it
/// remembers are its state.
public struct ScaleNormalizer: Sendable, Equatable {
    /// `HPAScalingPolicy`.
    public struct Policy: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable { case pods = "Pods", percent = "Percent" }
        public var kind: Kind
        public var value: Int
        /// `periodSeconds`.
        public var period: Double

        public init(_ kind: Kind, _ value: Int, period: Double) {
            self.kind = kind
            self.value = value
            self.period = period
        }
    }

    /// `selectPolicy`.
    public enum Select: String, Sendable, Codable {
        /// The policy that allows the biggest change (the default).
        case max = "Max"
        case min = "Min"
        /// No scaling in this direction.
        case disabled = "Disabled"
    }

    /// `HPAScalingRules`: one direction of `behavior`.
    public struct Rules: Sendable, Equatable, Codable {
        /// `stabilizationWindowSeconds`.
        public var stabilizationWindow: Double
        public var select: Select
        public var policies: [Policy]

        public init(stabilizationWindow: Double, select: Select = .max, policies: [Policy]) {
            self.stabilizationWindow = stabilizationWindow
            self.select = select
            self.policies = policies
        }

        /// Upstream's defaults for scale-up: no window; 4 pods or 100 % per 15 s, whichever is more.
        public static let defaultUp = Rules(
            stabilizationWindow: 0, policies: [Policy(.pods, 4, period: 15), Policy(.percent, 100, period: 15)])
        /// For scale-down: a 5-minute window; up to 100 % per 15 s.
        public static let defaultDown = Rules(stabilizationWindow: 300, policies: [Policy(.percent, 100, period: 15)])

        var longestPeriod: Double { self.policies.map(\.period).max() ?? 0 }
    }

    /// `HorizontalPodAutoscalerBehavior`.
    public struct Behavior: Sendable, Equatable, Codable {
        public var scaleUp: Rules
        public var scaleDown: Rules

        public init(scaleUp: Rules = .defaultUp, scaleDown: Rules = .defaultDown) {
            self.scaleUp = scaleUp
            self.scaleDown = scaleDown
        }
    }

    /// A condition as HPA sets it on its status (`AbleToScale`, `ScalingLimited`).
    public struct Condition: Sendable, Equatable {
        public var status: Bool
        public var reason: String
        public var message: String

        public init(_ status: Bool, _ reason: String, _ message: String) {
            self.status = status
            self.reason = reason
            self.message = message
        }
    }

    public struct Outcome: Sendable, Equatable {
        public var replicas: Int
        /// After stabilization, before the rate and bounds.
        public var stabilized: Int
        public var ableToScale: Condition
        public var scalingLimited: Condition
    }

    struct Recommendation: Sendable, Equatable {
        var replicas: Int
        var time: Double
    }

    struct ScaleEvent: Sendable, Equatable {
        var change: Int
        var time: Double
        var outdated = false
    }

    /// nil: the legacy path.
    public var behavior: Behavior?
    /// The legacy path's window (`--horizontal-pod-autoscaler-downscale-stabilization`, 5 minutes).
    public var downscaleStabilization: Double
    var recommendations: [Recommendation] = []
    var upEvents: [ScaleEvent] = []
    var downEvents: [ScaleEvent] = []

    public init(behavior: Behavior?, downscaleStabilization: Double = 300) {
        self.behavior = behavior
        self.downscaleStabilization = downscaleStabilization
    }

    /// The replica count to scale to from `current`, given the calculator's `proposal`.
    public mutating func normalize(current: Int, proposal: Int, min: Int, max: Int, now: Double) -> Outcome {
        if let behavior = self.behavior {
            return self.normalizeWithBehavior(
                behavior, current: current, proposal: proposal, min: min, max: max,
                now: now)
        }
        let stabilized = self.stabilizeLegacy(proposal, now: now)
        let able =
            stabilized != proposal
            ? Condition(
                true, "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation")
            : Condition(true, "ReadyForNewScale", "recommended size matches current size")
        let (replicas, reason, message) = Self.legacyBounds(current: current, desired: stabilized, min: min, max: max)
        return Outcome(
            replicas: replicas, stabilized: stabilized, ableToScale: able,
            scalingLimited: Condition(replicas != stabilized, reason, message))
    }

    /// The scale happened (`from` → `to`): recorded for the policies' periods (the behavior path only, as upstream).
    public mutating func record(from: Int, to: Int, now: Double) {
        guard let behavior = self.behavior, from != to else { return }
        let up = to > from
        let period = up ? behavior.scaleUp.longestPeriod : behavior.scaleDown.longestPeriod
        func store(_ events: inout [ScaleEvent]) {
            for index in events.indices where events[index].time < now - period { events[index].outdated = true }
            let event = ScaleEvent(change: abs(to - from), time: now)
            if let slot = events.lastIndex(where: \.outdated) {
                events[slot] = event
            } else {
                events.append(event)
            }
        }
        if up { store(&self.upEvents) } else { store(&self.downEvents) }
    }

    /// Forgets what it remembered (the autoscaler was reconfigured).
    public mutating func reset() {
        self.recommendations = []
        self.upEvents = []
        self.downEvents = []
    }

    // MARK: legacy

    /// `stabilizeRecommendation`: the highest of the proposal and the recommendations of the last window.
    mutating func stabilizeLegacy(_ proposal: Int, now: Double) -> Int {
        var highest = proposal
        var old: Int?
        let cutoff = now - self.downscaleStabilization
        for (index, recommendation) in self.recommendations.enumerated() {
            if recommendation.time < cutoff {
                old = index
            } else if recommendation.replicas > highest {
                highest = recommendation.replicas
            }
        }
        let fresh = Recommendation(replicas: proposal, time: now)
        if let old { self.recommendations[old] = fresh } else { self.recommendations.append(fresh) }
        return highest
    }

    /// `convertDesiredReplicasWithRules`: within [min, min(max, max(2 × current, 4))].
    static func legacyBounds(current: Int, desired: Int, min: Int, max: Int) -> (Int, String, String) {
        let scaleUpLimit = Int(Swift.max(2.0 * Double(current), 4.0))
        let maximum: Int
        var reason: String
        var message: String
        if max > scaleUpLimit {
            maximum = scaleUpLimit
            reason = "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        } else {
            maximum = max
            reason = "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        }
        if desired < min {
            reason = "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
            return (min, reason, message)
        }
        if desired > maximum { return (maximum, reason, message) }
        return (desired, "DesiredWithinRange", "the desired count is within the acceptable range")
    }

    // MARK: behavior

    mutating func normalizeWithBehavior(
        _ behavior: Behavior, current: Int, proposal: Int, min: Int, max: Int,
        now: Double
    ) -> Outcome {
        let (stabilized, reason, message) = self.stabilize(behavior, current: current, proposal: proposal, now: now)
        let able =
            stabilized != proposal
            ? Condition(true, reason, message)
            : Condition(true, "ReadyForNewScale", "recommended size matches current size")
        let (replicas, limitReason, limitMessage) = self.rateLimited(
            behavior, current: current, desired: stabilized, min: min, max: max, now: now)
        return Outcome(
            replicas: replicas, stabilized: stabilized, ableToScale: able,
            scalingLimited: Condition(replicas != stabilized, limitReason, limitMessage))
    }

    /// `stabilizeRecommendationWithBehaviors`: the current count raised to the lowest recommendation of the
    /// scale-up window, then lowered to the highest of the scale-down window.
    mutating func stabilize(_ behavior: Behavior, current: Int, proposal: Int, now: Double) -> (Int, String, String) {
        var upRecommendation = proposal
        var downRecommendation = proposal
        let upCutoff = now - behavior.scaleUp.stabilizationWindow
        let downCutoff = now - behavior.scaleDown.stabilizationWindow
        var old: Int?
        for (index, recommendation) in self.recommendations.enumerated() {
            if recommendation.time > upCutoff {
                upRecommendation = Swift.min(recommendation.replicas, upRecommendation)
            }
            if recommendation.time > downCutoff {
                downRecommendation = Swift.max(recommendation.replicas, downRecommendation)
            }
            if recommendation.time < upCutoff && recommendation.time < downCutoff { old = index }
        }
        var result = current
        if result < upRecommendation { result = upRecommendation }
        if result > downRecommendation { result = downRecommendation }
        let fresh = Recommendation(replicas: proposal, time: now)
        if let old { self.recommendations[old] = fresh } else { self.recommendations.append(fresh) }
        if proposal >= current {
            return (
                result, "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation"
            )
        }
        return (
            result, "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation"
        )
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    func rateLimited(
        _ behavior: Behavior, current: Int, desired: Int, min: Int, max: Int, now: Double
    )
        -> (Int, String, String)
    {
        if desired > current {
            let limit = Swift.max(self.upLimit(behavior.scaleUp, current: current, now: now), current)
            if max > limit {
                if desired > limit {
                    return (
                        limit, "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate"
                    )
                }
            } else if desired > max {
                return (max, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
            }
        } else if desired < current {
            let limit = Swift.min(self.downLimit(behavior.scaleDown, current: current, now: now), current)
            if min < limit {
                if desired < limit {
                    return (
                        limit, "ScaleDownLimit",
                        "the desired replica count is decreasing faster than the maximum scale rate"
                    )
                }
            } else if desired < min {
                return (min, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
            }
        }
        return (desired, "DesiredWithinRange", "the desired count is within the acceptable range")
    }

    /// Replicas added (or removed) by the events newer than `period`.
    func change(_ events: [ScaleEvent], period: Double, now: Double) -> Int {
        events.reduce(0) { $0 + ($1.time > now - period ? $1.change : 0) }
    }

    /// `calculateScaleUpLimitWithScalingRules`: per policy, from the count at the start of its period.
    func upLimit(_ rules: Rules, current: Int, now: Double) -> Int {
        guard rules.select != .disabled else { return current }
        var result = rules.select == .min ? Int(Int32.max) : Int(Int32.min)
        for policy in rules.policies {
            let start =
                current - self.change(self.upEvents, period: policy.period, now: now)
                + self.change(self.downEvents, period: policy.period, now: now)
            let proposed =
                policy.kind == .pods
                ? start + policy.value : ReplicaCalculator.ceil(Double(start) * (1 + Double(policy.value) / 100))
            result = rules.select == .min ? Swift.min(result, proposed) : Swift.max(result, proposed)
        }
        return result
    }

    /// `calculateScaleDownLimitWithBehaviors`: a Percent policy's count is truncated, as upstream's `int32(…)`.
    func downLimit(_ rules: Rules, current: Int, now: Double) -> Int {
        guard rules.select != .disabled else { return current }
        var result = rules.select == .min ? Int(Int32.min) : Int(Int32.max)
        for policy in rules.policies {
            let start =
                current - self.change(self.upEvents, period: policy.period, now: now)
                + self.change(self.downEvents, period: policy.period, now: now)
            let proposed =
                policy.kind == .pods ? start - policy.value : Int(Double(start) * (1 - Double(policy.value) / 100))
            result = rules.select == .min ? Swift.max(result, proposed) : Swift.min(result, proposed)
        }
        return result
    }
}
