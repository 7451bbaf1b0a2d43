@testable import SwiftVSCore
import Testing

/// Kubernetes' own test vectors for the HPA (`replica_calculator_test.go`, `horizontal_test.go`), each case named
/// after its upstream test. Upstream pods have two containers; the figures here are per pod. Requests are 1000m
/// unless a case says otherwise; tolerance 0.1; the CPU initialization period 2 minutes and the initial readiness
/// delay 10 s, as upstream's tests set them.
@Suite("HPA: upstream golden vectors")
struct HPAGoldenTests {
    typealias Replica = ReplicaCalculator.Replica
    static let now = 10_000.0
    static let calculator = ReplicaCalculator(cpuInitializationPeriod: 120, delayOfInitialReadinessStatus: 10)

    /// A replica running for an hour, ready since it started (upstream's default pod).
    static func pod(
        _ name: String, _ value: Int64?, request: Int64 = 1000, ready: Bool = true,
        phase: Replica.Phase = .running
    ) -> Replica {
        let started = now - 3600
        return Replica(
            name: name, phase: phase, readiness: .init(ready: ready, since: started), started: started, value: value,
            sampledAt: now, window: 60, request: request)
    }

    struct Resource: CustomStringConvertible, Sendable {
        var name: String
        var current: Int
        var target: Int
        var pods: [Replica]
        var strays: [String: Int64] = [:]
        var expected: Int
        var utilization: Int64
        var description: String { self.name }
    }

    static let resourceCases: [Resource] = [
        Resource(
            name: "TestReplicaCalcScaleUp", current: 3, target: 30,
            pods: [pod("a", 300), pod("b", 500), pod("c", 700)], expected: 5, utilization: 50),
        Resource(
            name: "TestReplicaCalcScaleUpUnreadyLessScale", current: 3, target: 30,
            pods: [pod("a", 300, ready: false), pod("b", 500), pod("c", 700)], expected: 4, utilization: 60),
        Resource(
            name: "TestReplicaCalcScaleUpUnreadyNoScale", current: 3, target: 30,
            pods: [pod("a", 400), pod("b", 500, ready: false), pod("c", 700, ready: false)], expected: 3,
            utilization: 40),
        Resource(
            name: "TestReplicaCalcScaleUpIgnoresFailedPods", current: 2, target: 30,
            pods: [
                pod("a", 500), pod("b", 700), pod("c", 100, phase: .failed), pod("d", 100, phase: .failed),
            ], expected: 4, utilization: 60),
        Resource(
            name: "TestReplicaCalcScaleDown", current: 5, target: 50,
            pods: [pod("a", 100), pod("b", 300), pod("c", 500), pod("d", 250), pod("e", 250)], expected: 3,
            utilization: 28),
        Resource(
            name: "TestReplicaCalcScaleDownExcludeUnreadyPods", current: 5, target: 50,
            pods: [
                pod("a", 100), pod("b", 300), pod("c", 500), pod("d", 250, ready: false),
                pod("e", 250, ready: false),
            ], expected: 2, utilization: 30),
        Resource(
            name: "TestReplicaCalcScaleDownExcludeUnscheduledPods", current: 5, target: 50,
            pods: [
                pod("a", 100), pod("b", nil, phase: .pending), pod("c", nil, phase: .pending),
                pod("d", nil, phase: .pending), pod("e", nil, phase: .pending),
            ], expected: 1, utilization: 10),
        Resource(
            name: "TestReplicaCalcTolerance", current: 3, target: 100,
            pods: [pod("a", 1010, request: 900), pod("b", 1030, request: 1000), pod("c", 1020, request: 1100)],
            expected: 3, utilization: 102),
        Resource(
            name: "TestReplicaCalcSuperfluousMetrics", current: 4, target: 100,
            pods: [pod("a", 4000), pod("b", 9500), pod("c", 3000), pod("d", 7000)],
            strays: ["e": 2000, "f": 2000], expected: 24, utilization: 587),
        Resource(
            name: "TestReplicaCalcMissingMetrics", current: 4, target: 100,
            pods: [pod("a", 400), pod("b", 95), pod("c", nil), pod("d", nil)], expected: 3, utilization: 24),
        Resource(
            name: "TestReplicaCalcMissingMetricsNoChangeGt", current: 2, target: 100,
            pods: [pod("a", 1900), pod("b", nil)], expected: 2, utilization: 190),
        Resource(
            name: "TestReplicaCalcMissingMetricsUnreadyScaleUp", current: 3, target: 50,
            pods: [pod("a", 100, ready: false), pod("b", 2000), pod("c", nil)], expected: 4, utilization: 200),
    ]

    @Test(arguments: resourceCases)
    func resource(_ c: Resource) throws {
        let proposal = try Self.calculator.resourceReplicas(
            current: c.current, targetUtilization: c.target, replicas: c.pods, cpu: true, now: Self.now,
            strays: c.strays)
        #expect(proposal.replicas == c.expected)
        #expect(proposal.current == c.utilization)
    }

    @Test("TestReplicaCalcScaleUpCM: a Pods metric (qps) averaged over the replicas")
    func podsMetric() throws {
        let pods = [Self.pod("a", 20000), Self.pod("b", 10000), Self.pod("c", 30000)]
        let proposal = try Self.calculator.averageReplicas(current: 3, targetAverage: 15000, replicas: pods, now: 0)
        #expect(proposal.replicas == 4)
        #expect(proposal.current == 20000)
    }

    @Test("TestReplicaCalcToleranceCM: an average 3.3 % over target changes nothing")
    func podsMetricTolerance() throws {
        let pods = [Self.pod("a", 20000), Self.pod("b", 21000), Self.pod("c", 21000)]
        let proposal = try Self.calculator.averageReplicas(current: 3, targetAverage: 20000, replicas: pods, now: 0)
        #expect(proposal.replicas == 3)
        #expect(proposal.current == 20666)
    }

    @Test("TestReplicaCalcScaleUpCMPerPodObject: an object's value against a per-replica average")
    func objectPerPod() throws {
        let proposal = try Self.calculator.averageValueReplicas(statusReplicas: 3, value: 20000, targetAverage: 5000)
        #expect(proposal.replicas == 4)
    }

    @Test("TestReplicaCalcScaleUpCMExternal: an external value against its target, times the ready replicas")
    func external() throws {
        let proposal = try Self.calculator.valueReplicas(current: 1, value: 8600, target: 4400, readyReplicas: 1)
        #expect(proposal.replicas == 2)
    }

    @Test("From zero replicas, a value metric proposes ceil(value / target): the way back from zero")
    func externalFromZero() throws {
        #expect(
            try Self.calculator.valueReplicas(current: 0, value: 8600, target: 4400, readyReplicas: 0).replicas == 2)
    }

    @Test("No ready replica with a sample is an error, as upstream's 'did not receive metrics for any ready pods'")
    func noMetrics() {
        #expect(throws: ReplicaCalculator.Failure.noMetrics) {
            try Self.calculator.resourceReplicas(
                current: 2, targetUtilization: 50, replicas: [Self.pod("a", 300, ready: false)], cpu: true,
                now: Self.now)
        }
        #expect(throws: ReplicaCalculator.Failure.missingRequest("a")) {
            var pod = Self.pod("a", 300)
            pod.request = nil
            return try Self.calculator.resourceReplicas(
                current: 1, targetUtilization: 50, replicas: [pod], cpu: true, now: Self.now)
        }
    }

    // MARK: normalization (TestScalingWithRules)

    typealias Policy = ScaleNormalizer.Policy
    typealias Rules = ScaleNormalizer.Rules

    struct Rate: CustomStringConvertible, Sendable {
        var name: String
        var current: Int
        var proposal: Int
        var up: Rules = .defaultUp
        var down: Rules = .defaultDown
        var upEvents: [Int] = []
        var downEvents: [Int] = []
        var min = 1
        var max = 1000
        var expected: Int
        var reason: String? = nil
        var description: String { self.name }
    }

    /// upstream's `generateScalingRules(pods, podsPeriod, percent, percentPeriod, window)`.
    static func rules(
        pods: Int = 0, podsPeriod: Double = 0, percent: Int = 0, percentPeriod: Double = 0,
        select: ScaleNormalizer.Select = .max
    ) -> Rules {
        var policies: [Policy] = []
        if pods != 0 { policies.append(Policy(.pods, pods, period: podsPeriod)) }
        if percent != 0 { policies.append(Policy(.percent, percent, period: percentPeriod)) }
        return Rules(stabilizationWindow: 0, select: select, policies: policies)
    }

    static let rateCases: [Rate] = [
        Rate(name: "scaleUp with default behavior", current: 10, proposal: 50, expected: 20, reason: "ScaleUpLimit"),
        Rate(
            name: "scaleUp with pods policy larger than percent policy", current: 10, proposal: 500,
            up: rules(pods: 100, podsPeriod: 60, percent: 100, percentPeriod: 60), expected: 110),
        Rate(
            name: "scaleUp with percent policy larger than pods policy", current: 10, proposal: 500,
            up: rules(pods: 2, podsPeriod: 60, percent: 100, percentPeriod: 60), expected: 20),
        Rate(
            name: "scaleUp with spec MaxReplicas limitation with large pod policy", current: 10, proposal: 50,
            up: rules(pods: 30, podsPeriod: 60), expected: 40),
        Rate(
            name: "scaleUp with percent policy only", current: 10, proposal: 50,
            up: rules(percent: 200, percentPeriod: 60), expected: 30),
        Rate(
            name: "scaleDown with pods policy larger than percent policy", current: 100, proposal: 2,
            down: rules(pods: 20, podsPeriod: 60, percent: 1, percentPeriod: 60), expected: 80),
        Rate(
            name: "scaleDown with percent policy larger than pods policy", current: 100, proposal: 2,
            down: rules(pods: 2, podsPeriod: 60, percent: 1, percentPeriod: 60), expected: 98),
        Rate(
            name: "scaleDown with pods policy only", current: 10, proposal: 2, down: rules(pods: 5, podsPeriod: 60),
            expected: 5, reason: "ScaleDownLimit"),
        Rate(
            name: "scaleUp with pods policy and previous scale up events", current: 100, proposal: 500,
            up: rules(pods: 150, podsPeriod: 120), upEvents: [1, 5, 9], expected: 235),
        Rate(
            name: "scaleUp with percent policy and previous scale up events", current: 100, proposal: 500,
            up: rules(percent: 200, percentPeriod: 120), upEvents: [1, 5, 9], expected: 255),
        Rate(
            name: "scaleUp with pods policy and previous scale up events over the limit", current: 100,
            proposal: 500, up: rules(pods: 5, podsPeriod: 120), upEvents: [1, 5, 9], expected: 100),
        Rate(
            name: "scaleUp with percent policy and previous scale up and down events", current: 6, proposal: 24,
            up: rules(percent: 300, percentPeriod: 300), upEvents: [4], downEvents: [2], expected: 16),
        Rate(
            name: "scaleDown with percent policy and previous scale down events", current: 100, proposal: 0,
            down: rules(percent: 50, percentPeriod: 120), downEvents: [2, 4, 6], min: 0, expected: 56),
        Rate(
            name: "scaleDown with percent policy and previous scale up and down events", current: 10, proposal: 1,
            down: rules(percent: 50, percentPeriod: 180), upEvents: [2], downEvents: [4], expected: 6),
        Rate(
            name: "scaleDown with pods policy and previous scale down events over the limit", current: 100,
            proposal: 2, down: rules(pods: 5, podsPeriod: 120), downEvents: [1, 5, 9], expected: 100),
        Rate(
            name: "scaleUp with the Min select policy", current: 1, proposal: 10,
            up: rules(pods: 2, podsPeriod: 60, percent: 50, percentPeriod: 60, select: .min), expected: 2),
        Rate(
            name: "scaleDown with the Min select policy", current: 5, proposal: 1,
            down: rules(pods: 2, podsPeriod: 60, percent: 50, percentPeriod: 60, select: .min), expected: 3),
        Rate(
            name: "scaleUp disabled", current: 5, proposal: 10,
            up: Rules(stabilizationWindow: 0, select: .disabled, policies: [Policy(.pods, 4, period: 15)]),
            expected: 5),
    ]

    @Test(arguments: rateCases)
    func rate(_ c: Rate) {
        var normalizer = ScaleNormalizer(behavior: .init(scaleUp: c.up, scaleDown: c.down))
        // Events spread evenly over the last 60 s, inside every period of these cases.
        func events(_ changes: [Int]) -> [ScaleNormalizer.ScaleEvent] {
            changes.enumerated().map { ScaleNormalizer.ScaleEvent(change: $1, time: Self.now - 50 + Double($0) * 10) }
        }
        normalizer.upEvents = events(c.upEvents)
        normalizer.downEvents = events(c.downEvents)
        let (replicas, reason, _) = normalizer.rateLimited(
            normalizer.behavior!, current: c.current, desired: c.proposal, min: c.min, max: c.max, now: Self.now)
        #expect(replicas == c.expected)
        if let expected = c.reason { #expect(reason == expected) }
    }

    @Test(
        "TestConvertDesiredReplicasWithRules (legacy): within [min, min(max, max(2 × current, 4))]",
        arguments: [
            (5, 7, 3, 8, 7, "DesiredWithinRange"), (3, 1, 2, 8, 2, "TooFewReplicas"),
            (1, 0, 0, 10, 0, "DesiredWithinRange"), (20, 1000, 1, 10, 10, "TooManyReplicas"),
            (3, 1000, 1, 2000, 6, "ScaleUpLimit"),
        ])
    func legacyBounds(_ c: (Int, Int, Int, Int, Int, String)) {
        let (replicas, reason, _) = ScaleNormalizer.legacyBounds(current: c.0, desired: c.1, min: c.2, max: c.3)
        #expect(replicas == c.4)
        #expect(reason == c.5)
    }

    @Test(
        "TestNormalizeDesiredReplicas (legacy stabilization): the highest recommendation of the last 5 minutes",
        arguments: [
            ([(4, -120.0), (5, -60.0)], 5), ([(1, -120.0), (2, -60.0)], 3), ([(10, -600.0), (9, -540.0)], 3),
            ([(10, -600.0), (4, -60.0), (5, -120.0), (9, -540.0)], 5),
        ])
    func legacyStabilization(_ c: ([(Int, Double)], Int)) {
        var normalizer = ScaleNormalizer(behavior: nil)
        normalizer.recommendations = c.0.map { .init(replicas: $0.0, time: Self.now + $0.1) }
        #expect(normalizer.stabilizeLegacy(3, now: Self.now) == c.1)
        #expect(normalizer.recommendations.count == c.0.count + (c.0.contains { $0.1 < -300 } ? 0 : 1))
    }
}

/// Scripted sequences: a load that rises, holds and falls, through `HorizontalAutoscaler` every 15 s as HPA's loop
/// runs, against the counts worked out by hand from HPA's rules.
@Suite("HPA: scripted sequences with injected time")
struct HPASequenceTests {
    /// A CPU load of `demand` millicores spread evenly over `replicas` replicas with 1000m requests.
    static func round(_ hpa: inout HorizontalAutoscaler, replicas: Int, demand: Int64, now: Double) -> Int {
        let pods = (0..<replicas).map { index in
            ReplicaCalculator.Replica(
                name: "r\(index)", readiness: .init(ready: true, since: -3600), started: -3600,
                value: demand / Int64(replicas), sampledAt: now, window: 15, request: 1000)
        }
        let result = Result<ReplicaCalculator.Proposal, ReplicaCalculator.Failure> {
            () throws(ReplicaCalculator.Failure) in
            try ReplicaCalculator().resourceReplicas(
                current: replicas, targetUtilization: 50, replicas: pods, cpu: true, now: now)
        }
        return hpa.reconcile(current: replicas, metrics: [.init("cpu", result)], now: now).desired
    }

    @Test("Legacy defaults: up by at most max(2 × current, 4) a round; down only after 5 minutes of lower proposals")
    func legacy() {
        var hpa = HorizontalAutoscaler(minReplicas: 1, maxReplicas: 10, behavior: nil)
        var replicas = 1
        var seen: [Int] = []
        // 400m (0.8 of target on one replica: within nothing, proposes 1), then 3000m from 15 s to 120 s, then 600m.
        for step in 0...30 {
            let now = Double(step) * 15
            let demand: Int64 = now < 15 ? 400 : now <= 120 ? 3000 : 600
            replicas = Self.round(&hpa, replicas: replicas, demand: demand, now: now)
            seen.append(replicas)
        }
        // 0 s: 1. 15 s: 3000m on 1 is 300 % (proposal 6), capped at 4. 30 s: 75 % on 4 proposes 6, cap 8 → 6. Then
        // 50 % on 6 holds. From 135 s the proposal is 2, but 6 was recommended until 120 s: the 5-minute window
        // keeps 6 until 420 s, and at 435 s the count falls to 2 at once (the legacy path has no down rate).
        let expected = [1, 4] + Array(repeating: 6, count: 27) + [2, 2]
        #expect(seen == expected)
    }

    @Test("Behavior defaults: up 1 → 5 → 10 → 20 (4 pods or 100 % per 15 s), down after the 5-minute window")
    func behaviorDefaults() {
        var hpa = HorizontalAutoscaler(minReplicas: 1, maxReplicas: 40, behavior: .init())
        var replicas = 1
        var seen: [Int] = []
        for step in 0...26 {
            let now = Double(step) * 15
            // 10000m wants 20 replicas at 50 %; from 60 s on, 2000m wants 4.
            let demand: Int64 = now < 60 ? 10000 : 2000
            replicas = Self.round(&hpa, replicas: replicas, demand: demand, now: now)
            seen.append(replicas)
        }
        // The scale-down window holds the highest recommendation of the last 300 s: 20, proposed until 45 s, so
        // the count stays 20 up to 330 s and drops to 4 at 345 s (100 % per 15 s allows any drop).
        let expected = [5, 10, 20] + Array(repeating: 20, count: 20) + [4, 4, 4, 4]
        #expect(seen == expected)
    }

    @Test("A partial metric failure never scales down; all metrics failing scales nothing")
    func partialFailure() {
        var hpa = HorizontalAutoscaler(minReplicas: 1, maxReplicas: 10, behavior: nil)
        let failing = HorizontalAutoscaler.MetricOutcome("rps", .failure(.noMetrics))
        let down = hpa.reconcile(current: 4, metrics: [.proposal("cpu", 2), failing], now: 0)
        #expect(down.desired == 4)
        #expect(down.scalingActive.status == false)
        let up = hpa.reconcile(current: 4, metrics: [.proposal("cpu", 6), failing], now: 15)
        #expect(up.desired == 6)
        #expect(up.reason == "cpu above target")
        let none = hpa.reconcile(current: 4, metrics: [failing], now: 30)
        #expect(none.desired == 4)
        #expect(none.scalingActive.reason == "FailedGetMetric")
    }

    @Test("Out of bounds comes back without reading metrics; zero replicas with min > 0 is ScalingDisabled")
    func bounds() {
        var hpa = HorizontalAutoscaler(minReplicas: 2, maxReplicas: 4, behavior: nil)
        #expect(hpa.reconcile(current: 6, metrics: [], now: 0).desired == 4)
        #expect(hpa.reconcile(current: 1, metrics: [], now: 0).desired == 2)
        let disabled = hpa.reconcile(current: 0, metrics: [.proposal("cpu", 3)], now: 0)
        #expect(disabled.desired == 0)
        #expect(disabled.scalingActive.reason == "ScalingDisabled")
    }
}
