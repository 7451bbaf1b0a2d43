import Foundation
import Logging
import SwiftVSCore

/// What both autoscale drivers measure of each replica from the director's own counters between two periods:
/// requests per second (and how many), requests in flight, the p90 response time.
struct DirectorSampler<Key: Hashable> {
    struct Previous {
        var total: Int
        var latency: [Int]
        var time: Double
    }

    private var previous: [Key: Previous] = [:]

    /// Fills `sample`'s director figures for `key` since its last call; returns the requests it served meanwhile.
    mutating func sample(
        _ key: Key, view: VirtualService.ServerView?, now: Double, into sample: inout Autoscaler.ReplicaSample
    ) -> Int {
        let total = view?.total ?? 0
        let latency = view?.latency ?? []
        sample.concurrency = Double(view?.active ?? 0)
        var served = 0
        if let previous = self.previous[key], now > previous.time {
            served = max(0, total - previous.total)
            sample.requestsPerSecond = Double(served) / (now - previous.time)
            if latency.count == previous.latency.count {
                sample.p90 = LatencyHistogram.quantile(0.9, newer: latency, older: previous.latency)
            }
        }
        self.previous[key] = Previous(total: total, latency: latency, time: now)
        return served
    }

    mutating func forget(_ key: Key) { self.previous[key] = nil }
}

/// The last decisions that changed the count, and the one log line each gets with its inputs.
struct DecisionHistory {
    private var entries: [(time: Double, from: Int, to: Int, reason: String)] = []

    mutating func record(
        _ decision: Autoscaler.Decision, now: Double, service: String, logger: Logger, extra: Logger.Metadata = [:]
    ) {
        let inputs = decision.metrics.map { metric in
            "\(metric.name)=\(metric.current.map(Self.number) ?? "?")/\(metric.target)"
                + (metric.proposal.map { "→\($0)" } ?? "") + (metric.error.map { " (\($0))" } ?? "")
        }.joined(separator: " ")
        var metadata: Logger.Metadata = [
            "service": "\(service)", "from": "\(decision.current)", "to": "\(decision.desired)",
            "reason": "\(decision.reason)",
        ]
        if !inputs.isEmpty { metadata["metrics"] = "\(inputs)" }
        metadata.merge(extra) { $1 }
        logger.notice("autoscale", metadata: metadata)
        self.entries.append((now, decision.current, decision.desired, decision.reason))
        if self.entries.count > 20 { self.entries.removeFirst() }
    }

    /// The newest first.
    func records(now: Double) -> [ScaleStatus.DecisionRecord] {
        self.entries.reversed().map {
            ScaleStatus.DecisionRecord(secondsAgo: now - $0.time, from: $0.from, to: $0.to, reason: $0.reason)
        }
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)
    }
}

/// `GET /api/scale/SERVICE`: one autoscaled service as `adm scale` shows it.
public struct ScaleStatus: Sendable, Codable, Equatable {
    public struct Condition: Sendable, Codable, Equatable {
        public var status: Bool
        public var reason: String
        public var message: String

        init?(_ condition: ScaleNormalizer.Condition?) {
            guard let condition else { return nil }
            self.status = condition.status
            self.reason = condition.reason
            self.message = condition.message
        }
    }

    /// One decision that changed the count, for `adm scale` and the log.
    public struct DecisionRecord: Sendable, Codable, Equatable {
        public var secondsAgo: Double
        public var from: Int
        public var to: Int
        public var reason: String
    }

    public struct Replica: Sendable, Codable, Equatable {
        public var address: String
        public var pid: Int32?
        /// starting, warming, serving, draining, stopping, killing, crashed.
        public var state: String
        public var detail: String
        public var restarts: Int
        public var lastExit: String?
        public var upSeconds: Double
        public var cpuMillis: Int64?
        public var memoryBytes: Int64?
        public var requestsPerSecond: Double?
        public var concurrency: Double?
        public var p90Ms: Double?
    }

    public var service: String
    public var current: Int
    public var desired: Int
    public var ready: Int
    public var min: Int
    public var max: Int
    public var syncPeriodSeconds: Double
    public var metrics: [Autoscaler.MetricStatus]
    public var ableToScale: Condition?
    public var scalingActive: Condition?
    public var scalingLimited: Condition?
    public var queueLength: Int
    public var decisions: [DecisionRecord]
    public var replicas: [Replica]

    /// A service's status from what both drivers keep alike.
    init(
        service: VirtualService, current: Int, desired: Int, ready: Int, config: AutoscaleConfig,
        last: Autoscaler.Decision?, decisions: [DecisionRecord], replicas: [Replica]
    ) {
        let hpa = last?.hpa
        self.service = service.name
        self.current = current
        self.desired = desired
        self.ready = ready
        self.min = config.minReplicas
        self.max = config.maxReplicas
        self.syncPeriodSeconds = config.syncPeriod
        self.metrics = last?.metrics ?? []
        self.ableToScale = Condition(hpa?.ableToScale)
        self.scalingActive = Condition(hpa?.scalingActive)
        self.scalingLimited = Condition(hpa?.scalingLimited ?? nil)
        self.queueLength = service.queue.length.load(ordering: .relaxed)
        self.decisions = decisions
        self.replicas = replicas
    }
}
