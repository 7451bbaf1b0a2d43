/// The director's autoscaler for one service: each period it is given what the director measured of every
/// replica (and of the service's queue) and returns the replica count, by HPA's arithmetic (`ReplicaCalculator`,
/// `HorizontalAutoscaler`). Around HPA it adds what HPA cannot do: scale from zero when a request waits with no
/// replica (as Knative's activator), and to zero after `scale_to_zero_after` without requests. Pure: the time
/// and the samples come in.
public struct Autoscaler: Sendable {
    public let config: AutoscaleConfig
    public private(set) var hpa: HorizontalAutoscaler
    let calculator: ReplicaCalculator
    /// When the service last had a request, or one waiting or in flight.
    private var lastBusy: Double?
    /// With `metricsDelay`: the observations of the last `metricsDelay`, the oldest first.
    private var delayed: [Observation] = []

    public init(_ config: AutoscaleConfig) {
        self.config = config
        // With scale to zero, HPA works within [1, max]; the way to 0 and back is the autoscaler's own.
        self.hpa = HorizontalAutoscaler(
            minReplicas: max(1, config.minReplicas), maxReplicas: config.maxReplicas, behavior: config.behavior,
            downscaleStabilization: config.downscaleStabilization)
        self.calculator = ReplicaCalculator(
            tolerances: config.tolerances, cpuInitializationPeriod: config.cpuInitializationPeriod,
            delayOfInitialReadinessStatus: config.initialReadinessDelay)
    }

    /// New bounds at run time (`adm scale --min/--max`).
    public mutating func setBounds(min: Int, max: Int) {
        self.hpa.minReplicas = Swift.max(1, min)
        self.hpa.maxReplicas = max
    }

    /// What the director measured of one replica over the last period.
    public struct ReplicaSample: Sendable, Equatable {
        public enum Phase: Sendable, Equatable {
            /// Started, its health check not passed yet.
            case starting(since: Double)
            case ready(since: Double, started: Double)
            /// Draining or stopping.
            case leaving
        }

        public var name: String
        public var phase: Phase
        /// Millicores over the period, and resident memory, from /proc; nil when unreadable.
        public var cpuMillis: Int64?
        public var memoryBytes: Int64?
        public var requestsPerSecond: Double
        /// Requests (http) or connections (tcp) in flight.
        public var concurrency: Double
        /// The 90th percentile response time over the period, seconds; nil without responses.
        public var p90: Double?

        public init(
            name: String, phase: Phase, cpuMillis: Int64? = nil, memoryBytes: Int64? = nil,
            requestsPerSecond: Double = 0, concurrency: Double = 0, p90: Double? = nil
        ) {
            self.name = name
            self.phase = phase
            self.cpuMillis = cpuMillis
            self.memoryBytes = memoryBytes
            self.requestsPerSecond = requestsPerSecond
            self.concurrency = concurrency
            self.p90 = p90
        }
    }

    public struct Observation: Sendable, Equatable {
        public var now: Double
        /// Replicas counting toward the desired number (HPA's spec replicas).
        public var current: Int
        public var replicas: [ReplicaSample]
        /// Requests waiting for a slot, and the longest wait of the period (seconds).
        public var queueLength: Int
        public var queueWait: Double
        /// Requests that reached the service in the period (for scale to zero).
        public var requests: Int

        public init(
            now: Double, current: Int, replicas: [ReplicaSample], queueLength: Int = 0,
            queueWait: Double = 0, requests: Int = 0
        ) {
            self.now = now
            self.current = current
            self.replicas = replicas
            self.queueLength = queueLength
            self.queueWait = queueWait
            self.requests = requests
        }
    }

    /// One metric as `adm scale` shows it: its current value and target in the metric's unit, and its proposal.
    public struct MetricStatus: Sendable, Equatable, Codable {
        public var name: String
        public var type: String
        public var current: Double?
        public var target: String
        public var proposal: Int?
        public var error: String?
    }

    public struct Decision: Sendable, Equatable {
        public var desired: Int
        public var current: Int
        public var reason: String
        public var metrics: [MetricStatus]
        /// HPA's conditions; nil when the autoscaler's own zero rule decided.
        public var hpa: HorizontalAutoscaler.Decision?

        public var rescale: Bool { self.desired != self.current }
    }

    public mutating func evaluate(_ fresh: Observation) -> Decision {
        let observation = self.delay(fresh)
        let now = observation.now
        if observation.requests > 0 || observation.queueLength > 0
            || observation.replicas.contains(where: { $0.concurrency > 0 }) || self.lastBusy == nil
        {
            self.lastBusy = now
        }
        let current = observation.current
        if current == 0 {
            // HPA would stay at 0 (ScalingDisabled). A request waiting is the demand HPA cannot see.
            if observation.queueLength > 0 || self.config.minReplicas > 0 {
                let desired = max(1, self.config.minReplicas)
                return Decision(
                    desired: desired, current: 0,
                    reason: observation.queueLength > 0
                        ? "\(observation.queueLength) request(s) waiting and no replica: scale from zero"
                        : "below min_replicas", metrics: [], hpa: nil)
            }
            return Decision(desired: 0, current: 0, reason: "", metrics: [], hpa: nil)
        }
        if self.config.minReplicas == 0, let after = self.config.scaleToZeroAfter, let busy = self.lastBusy,
            now - busy >= after
        {
            return Decision(
                desired: 0, current: current, reason: "no request for \(Self.format(after)): scale to zero",
                metrics: [], hpa: nil)
        }
        var outcomes: [HorizontalAutoscaler.MetricOutcome] = []
        var statuses: [MetricStatus] = []
        for metric in self.config.metrics {
            let (result, value) = self.propose(metric, observation)
            outcomes.append(.init(metric.description, result))
            var status = MetricStatus(
                name: metric.source.rawValue, type: metric.source.hpaType, current: value,
                target: Self.describe(metric.target, metric.source))
            switch result {
            case .success(let proposal): status.proposal = proposal.replicas
            case .failure(let failure): status.error = failure.description
            }
            statuses.append(status)
        }
        let decision = self.hpa.reconcile(current: current, metrics: outcomes, now: now)
        return Decision(
            desired: decision.desired, current: current, reason: decision.reason, metrics: statuses, hpa: decision)
    }

    /// With `metricsDelay`, what the calculation sees: the samples of that long ago (none before then), with the
    /// replica count and the time of now, as HPA reads the scale now and metrics through its pipeline.
    mutating func delay(_ fresh: Observation) -> Observation {
        let delay = self.config.metricsDelay
        guard delay > 0 else { return fresh }
        self.delayed.append(fresh)
        var seen: Observation?
        while let first = self.delayed.first, first.now <= fresh.now - delay {
            seen = first
            self.delayed.removeFirst()
        }
        if let seen { self.delayed.insert(seen, at: 0) }
        var out = seen ?? Observation(now: fresh.now, current: fresh.current, replicas: [])
        out.now = fresh.now
        out.current = fresh.current
        return out
    }

    /// One metric's proposal, and its current value in the metric's unit (for display).
    func propose(
        _ metric: AutoscaleMetric, _ o: Observation
    )
        -> (Result<ReplicaCalculator.Proposal, ReplicaCalculator.Failure>, Double?)
    {
        let now = o.now
        let scale = metric.milliScale
        func replicas(
            _ value: (ReplicaSample) -> Double?, request: Int64? = nil, director: Bool
        ) -> [ReplicaCalculator
            .Replica]
        {
            o.replicas.map { sample in
                var replica = ReplicaCalculator.Replica(
                    name: sample.name, value: value(sample).map { Int64(($0 * scale).rounded()) }, sampledAt: now,
                    window: self.config.syncPeriod, request: request)
                switch sample.phase {
                case .starting(let since):
                    replica.started = since
                    replica.readiness = .init(ready: false, since: since)
                    // The director has measured nothing of a replica it sends nothing to: no sample, as a pod the
                    // metrics pipeline has not scraped yet.
                    if director { replica.value = nil }
                case .ready(let since, let started):
                    replica.started = started
                    replica.readiness = .init(ready: true, since: since)
                case .leaving:
                    replica.phase = .failed
                }
                return replica
            }
        }
        let result: Result<ReplicaCalculator.Proposal, ReplicaCalculator.Failure>
        var display: Double?
        let current = o.current
        let readyCount = o.replicas.filter {
            if case .ready = $0.phase { return true }
            return false
        }.count
        switch (metric.source, metric.target) {
        case (.cpu, .utilization(let percent)), (.memory, .utilization(let percent)):
            let cpu = metric.source == .cpu
            let list = replicas(
                { cpu ? $0.cpuMillis.map(Double.init) : $0.memoryBytes.map(Double.init) },
                request: cpu ? self.config.cpuRequest : self.config.memoryRequest, director: false)
            result = Result { () throws(ReplicaCalculator.Failure) in
                try self.calculator.resourceReplicas(
                    current: current, targetUtilization: percent, replicas: list, cpu: cpu, now: now)
            }
            display = (try? result.get()).map { Double($0.current) }
        case (.cpu, .average(let target)), (.memory, .average(let target)):
            let cpu = metric.source == .cpu
            let list = replicas(
                { cpu ? $0.cpuMillis.map(Double.init) : $0.memoryBytes.map(Double.init) }, director: false)
            result = Result { () throws(ReplicaCalculator.Failure) in
                try self.calculator.averageReplicas(
                    current: current, targetAverage: Int64((target * scale).rounded()), replicas: list, now: now)
            }
            display = (try? result.get()).map { Double($0.current) / scale }
        case (.requestsPerSecond, .average(let target)), (.concurrency, .average(let target)),
            (.responseTimeP90, .average(let target)):
            let list = replicas(
                { sample in
                    switch metric.source {
                    case .requestsPerSecond: return sample.requestsPerSecond
                    case .concurrency: return sample.concurrency
                    default: return sample.p90 ?? 0
                    }
                }, director: true)
            result = Result { () throws(ReplicaCalculator.Failure) in
                try self.calculator.averageReplicas(
                    current: current, targetAverage: Int64((target * scale).rounded()), replicas: list, now: now)
            }
            display = (try? result.get()).map { Double($0.current) / scale }
        case (.queueLength, let target), (.queueWait, let target):
            let value = metric.source == .queueLength ? Double(o.queueLength) : o.queueWait
            let milli = Int64((value * scale).rounded())
            display = value
            switch target {
            case .average(let perReplica):
                result = Result { () throws(ReplicaCalculator.Failure) in
                    try self.calculator.averageValueReplicas(
                        statusReplicas: current, value: milli, targetAverage: Int64((perReplica * scale).rounded()))
                }
            default:
                let goal: Double
                if case .value(let v) = target { goal = v } else { goal = 1 }
                result = Result { () throws(ReplicaCalculator.Failure) in
                    try self.calculator.valueReplicas(
                        current: current, value: milli, target: Int64((goal * scale).rounded()),
                        readyReplicas: readyCount)
                }
            }
        default:
            result = .failure(.badTarget)
        }
        return (result, display)
    }

    static func describe(_ target: AutoscaleMetric.Target, _ source: AutoscaleMetric.Source) -> String {
        switch target {
        case .utilization(let percent): return "\(percent)%"
        case .average(let value): return "\(Self.format(value, source)) per replica"
        case .value(let value): return Self.format(value, source)
        }
    }

    static func format(_ value: Double, _ source: AutoscaleMetric.Source) -> String {
        switch source {
        case .cpu: return "\(Int(value))m"
        case .memory: return "\(Int(value / 1_048_576))Mi"
        case .responseTimeP90, .queueWait: return Self.format(value)
        default: return value == value.rounded() ? "\(Int(value))" : "\(value)"
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds < 1
            ? "\(Int((seconds * 1000).rounded()))ms"
            : seconds == seconds.rounded()
                ? "\(Int(seconds))s"
                : "\(seconds)s"
    }
}
