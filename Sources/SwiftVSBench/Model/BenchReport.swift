import Foundation
import SwiftVSCore

/// Why a request counts as lost. Loss % = failed / attempted, whatever the cause.
public enum LossCause: String, Codable, CaseIterable, Sendable {
    /// The TCP connection was refused (nothing listening, or a full backlog that resets).
    case connectRefused = "connect_refused"
    /// No TCP connection within the connect timeout.
    case connectTimeout = "connect_timeout"
    /// Any other connect failure (unreachable, no route, name not resolved).
    case connectError = "connect_error"
    /// The connection was reset, or closed before the response ended.
    case reset
    /// The response did not end within the response timeout.
    case responseTimeout = "response_timeout"
    /// The response's status was not 2xx or 3xx.
    case status
    /// The bytes were not a valid HTTP/1.x response.
    case badResponse = "bad_response"
    /// Open loop only: the request waited at the client for a free connection longer than the response timeout and
    /// was never sent (the connection limit is too low for the rate, or the server is too slow).
    case notSent = "not_sent"

    public var index: Int {
        switch self {
        case .connectRefused: return 0
        case .connectTimeout: return 1
        case .connectError: return 2
        case .reset: return 3
        case .responseTimeout: return 4
        case .status: return 5
        case .badResponse: return 6
        case .notSent: return 7
        }
    }

    public var label: String {
        switch self {
        case .connectRefused: return "connect refused"
        case .connectTimeout: return "connect timeout"
        case .connectError: return "connect error"
        case .reset: return "reset/closed"
        case .responseTimeout: return "response timeout"
        case .status: return "non-2xx/3xx"
        case .badResponse: return "bad response"
        case .notSent: return "not sent (client backlog)"
        }
    }
}

/// Counts of one phase or one timeline bucket; they add up.
public struct LoadCounters: Codable, Sendable, Equatable {
    /// Requests started (a connection attempt counts as the start of its request).
    public var attempted = 0
    public var succeeded = 0
    /// Failures by cause, indexed by `LossCause.index`.
    public var failures = [Int](repeating: 0, count: LossCause.allCases.count)
    /// Responses by status class: [1xx, 2xx, 3xx, 4xx, 5xx].
    public var statusClasses = [Int](repeating: 0, count: 5)
    public var bytesIn = 0
    public var bytesOut = 0
    public var connectionsOpened = 0

    public init() {}

    public var failed: Int { self.failures.reduce(0, +) }

    public func failures(_ cause: LossCause) -> Int { self.failures[cause.index] }

    public mutating func fail(_ cause: LossCause) { self.failures[cause.index] &+= 1 }

    public mutating func add(_ other: LoadCounters) {
        self.attempted += other.attempted
        self.succeeded += other.succeeded
        for i in self.failures.indices { self.failures[i] += other.failures[i] }
        for i in self.statusClasses.indices { self.statusClasses[i] += other.statusClasses[i] }
        self.bytesIn += other.bytesIn
        self.bytesOut += other.bytesOut
        self.connectionsOpened += other.connectionsOpened
    }

    /// Loss in percent of the requests that finished one way or the other.
    public var lossPercent: Double {
        let finished = self.succeeded + self.failed
        return finished == 0 ? 0 : Double(self.failed) * 100 / Double(finished)
    }

    public var lossByCause: [String: Int] {
        var out: [String: Int] = [:]
        for cause in LossCause.allCases where self.failures[cause.index] > 0 {
            out[cause.rawValue] = self.failures[cause.index]
        }
        return out
    }
}

public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var minMs: Double
    public var meanMs: Double
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    public var maxMs: Double

    public init(
        count: Int, minMs: Double, meanMs: Double, p50Ms: Double, p90Ms: Double, p99Ms: Double,
        p999Ms: Double, maxMs: Double
    ) {
        self.count = count
        self.minMs = minMs
        self.meanMs = meanMs
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.p999Ms = p999Ms
        self.maxMs = maxMs
    }

    /// `p50 1.00  p90 2.00  p99 3.00  p99.9 4.00  max 5.00 ms`: one line of a text report.
    public var line: String {
        String(
            format: "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", self.p50Ms, self.p90Ms, self.p99Ms,
            self.p999Ms, self.maxMs)
    }

    public static let empty = LatencySummary(
        count: 0, minMs: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0,
        maxMs: 0)
}

/// One point of the latency percentile curve.
public struct PercentilePoint: Codable, Sendable, Equatable {
    public var percentile: Double
    public var ms: Double
    public init(percentile: Double, ms: Double) {
        self.percentile = percentile
        self.ms = ms
    }
}

/// One bucket of the timeline (`interval` wide), timed from the start of the phase.
public struct TimelinePoint: Codable, Sendable, Equatable {
    /// End of the bucket, seconds since the phase started.
    public var t: Double
    public var succeeded: Int
    public var failed: Int
    public var requestsPerSecond: Double
    public var megabytesPerSecond: Double
    public var p50Ms: Double
    public var p99Ms: Double
    public var maxMs: Double

    public init(
        t: Double, succeeded: Int, failed: Int, requestsPerSecond: Double, megabytesPerSecond: Double,
        p50Ms: Double, p99Ms: Double, maxMs: Double
    ) {
        self.t = t
        self.succeeded = succeeded
        self.failed = failed
        self.requestsPerSecond = requestsPerSecond
        self.megabytesPerSecond = megabytesPerSecond
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
        self.maxMs = maxMs
    }
}

/// CPU use of one watched process (or of the whole machine) over a phase.
public struct CPUSeries: Codable, Sendable, Equatable {
    public var name: String
    /// PIDs seen under this name (more than one if it was restarted).
    public var pids: [Int32]
    /// (seconds since phase start, percent). For a process, 100 = one core busy; for the machine, 100 = all cores.
    public var samples: [CPUPoint]

    public init(name: String, pids: [Int32] = [], samples: [CPUPoint] = []) {
        self.name = name
        self.pids = pids
        self.samples = samples
    }

    public var meanPercent: Double {
        self.samples.isEmpty ? 0 : self.samples.reduce(0) { $0 + $1.percent } / Double(self.samples.count)
    }

    public var maxPercent: Double { self.samples.map(\.percent).max() ?? 0 }

    /// The series of several processes added up sample by sample (they are sampled together, so their times match):
    /// a node's CPU (100 = one core) and resident memory.
    public static func sum(name: String, of members: [CPUSeries]) -> CPUSeries {
        var total: [Double: CPUPoint] = [:]
        for series in members {
            for point in series.samples {
                var sum = total[point.t] ?? CPUPoint(t: point.t, percent: 0)
                sum.percent += point.percent
                if let rss = point.rssMiB { sum.rssMiB = (sum.rssMiB ?? 0) + rss }
                total[point.t] = sum
            }
        }
        return CPUSeries(
            name: name, pids: members.flatMap(\.pids), samples: total.values.sorted { $0.t < $1.t })
    }

    /// Resident memory (a process) or used memory (the machine), MiB: the peak and the mean over the samples that
    /// have it; nil when none has.
    public var maxMiB: Double? { self.samples.compactMap(\.rssMiB).max() }
    public var meanMiB: Double? {
        let values = self.samples.compactMap(\.rssMiB)
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}

public struct CPUPoint: Codable, Sendable, Equatable {
    public var t: Double
    public var percent: Double
    /// Resident memory of the process (summed over its PIDs), or the machine's used memory, in MiB, sampled with
    /// the CPU; nil in reports written before memory was sampled.
    public var rssMiB: Double?
    public init(t: Double, percent: Double, rssMiB: Double? = nil) {
        self.t = t
        self.percent = percent
        self.rssMiB = rssMiB
    }
}

/// A fault injected during a phase, and what it cost.
public struct FaultReport: Codable, Sendable, Equatable {
    /// Seconds since the phase started.
    public var at: Double
    /// What was done (`kill rs1`, `start rs1`, `term director`, `run ...`).
    public var action: String
    /// Requests that failed from this fault until the next fault or the end of the phase.
    public var lost: Int
    /// Seconds from the fault until the last timeline bucket that fell short (errors, or under 90% of the rate
    /// before the first fault); 0 if none did.
    public var secondsToFullRate: Double

    public init(at: Double, action: String, lost: Int = 0, secondsToFullRate: Double = 0) {
        self.at = at
        self.action = action
        self.lost = lost
        self.secondsToFullRate = secondsToFullRate
    }
}

/// An autoscaled service's replicas during a phase, read from the director's admin API.
public struct ReplicaSeries: Codable, Sendable, Equatable {
    public var service: String
    public var samples: [ReplicaPoint] = []
    public var decisions: [ReplicaDecision] = []
    /// Each replica's CPU (100 = one core) and resident memory, as the director measured them, by its address.
    public var perReplica: [CPUSeries] = []

    public init(service: String, samples: [ReplicaPoint] = [], decisions: [ReplicaDecision] = []) {
        self.service = service
        self.samples = samples
        self.decisions = decisions
    }
}

public struct ReplicaPoint: Codable, Sendable, Equatable {
    /// Seconds since the phase started.
    public var t: Double
    /// Replicas counting toward the desired number, the desired number, and those in rotation.
    public var current: Int
    public var desired: Int
    public var ready: Int
    /// The autoscaler's metric values at that moment (metric name → current value, in the metric's unit).
    public var metrics: [String: Double]? = nil
}

public struct ReplicaDecision: Codable, Sendable, Equatable {
    public var t: Double
    public var from: Int
    public var to: Int
    public var reason: String
}

/// The result of one load phase.
public struct PhaseReport: Codable, Sendable, Equatable {
    public var name: String
    public var spec: LoadSpec
    /// Seconds from the first request to the end of the phase.
    public var elapsedSeconds: Double
    public var counters: LoadCounters
    /// Requests still waiting for their response when the phase ended (neither counted as success nor loss).
    public var unfinished: Int
    public var requestsPerSecond: Double
    public var megabytesPerSecond: Double
    public var lossPercent: Double
    public var lossByCause: [String: Int]
    public var latency: LatencySummary
    /// Latency by percentile (HdrHistogram iteration), for the percentile curve.
    public var percentiles: [PercentilePoint]
    public var timeline: [TimelinePoint]
    public var cpu: [CPUSeries]
    public var machineCPU: CPUSeries
    public var faults: [FaultReport]
    /// With `--replicas-from`: each autoscaled service's replicas and decisions.
    public var replicas: [ReplicaSeries] = []
    /// A scenario's nodes: the CPU and memory of their processes, summed per sample.
    public var nodes: [CPUSeries] = []
    /// A conference signaling phase: its join times, delivery latency, memory per participant, as measured.
    public var conference: ConferenceLoadReport? = nil
    /// A JMeter phase: failed samples by their response code (an HTTP status, or JMeter's "Non HTTP response code").
    public var errorsByCode: [String: Int] = [:]

    public init(
        name: String, spec: LoadSpec, elapsedSeconds: Double, counters: LoadCounters, unfinished: Int,
        latency: LatencySummary, percentiles: [PercentilePoint], timeline: [TimelinePoint], cpu: [CPUSeries],
        machineCPU: CPUSeries, faults: [FaultReport] = []
    ) {
        self.name = name
        self.spec = spec
        self.elapsedSeconds = elapsedSeconds
        self.counters = counters
        self.unfinished = unfinished
        let seconds = max(elapsedSeconds, 1e-9)
        self.requestsPerSecond = Double(counters.succeeded) / seconds
        self.megabytesPerSecond = Double(counters.bytesIn) / seconds / 1_000_000
        self.lossPercent = counters.lossPercent
        self.lossByCause = counters.lossByCause
        self.latency = latency
        self.percentiles = percentiles
        self.timeline = timeline
        self.cpu = cpu
        self.machineCPU = machineCPU
        self.faults = faults
    }
}

/// One rate tried by a sweep.
public struct SweepStep: Codable, Sendable, Equatable {
    public var offeredRate: Double
    public var achievedRate: Double
    public var lossPercent: Double
    public var p99Ms: Double
    public var sustained: Bool
    /// Mean CPU % per watched process (and `machine`) during the step.
    public var cpuPercent: [String: Double]

    public init(
        offeredRate: Double, achievedRate: Double, lossPercent: Double, p99Ms: Double, sustained: Bool,
        cpuPercent: [String: Double]
    ) {
        self.offeredRate = offeredRate
        self.achievedRate = achievedRate
        self.lossPercent = lossPercent
        self.p99Ms = p99Ms
        self.sustained = sustained
        self.cpuPercent = cpuPercent
    }
}

public struct SweepReport: Codable, Sendable, Equatable {
    public var name: String
    public var url: String
    public var maxLossPercent: Double
    public var steps: [SweepStep]
    /// The highest offered rate sustained (loss under the limit, at least 98% of it answered); nil if none was.
    public var bestRate: Double?
    /// The step at `bestRate`.
    public var best: SweepStep? { self.steps.filter(\.sustained).max(by: { $0.offeredRate < $1.offeredRate }) }

    public init(name: String, url: String, maxLossPercent: Double, steps: [SweepStep]) {
        self.name = name
        self.url = url
        self.maxLossPercent = maxLossPercent
        self.steps = steps
        self.bestRate = steps.filter(\.sustained).map(\.offeredRate).max()
    }
}

/// `candidate` against `baseline`, as the first study reported LVS-NAT against one server (+13.92%).
public struct ComparisonReport: Codable, Sendable, Equatable {
    public var name: String
    public var baseline: String
    public var candidate: String
    public var baselineRate: Double?
    public var candidateRate: Double?
    /// (candidate / baseline − 1) × 100; nil when either rate is missing.
    public var gainPercent: Double?

    public init(name: String, baseline: String, candidate: String, baselineRate: Double?, candidateRate: Double?) {
        self.name = name
        self.baseline = baseline
        self.candidate = candidate
        self.baselineRate = baselineRate
        self.candidateRate = candidateRate
        if let b = baselineRate, let c = candidateRate, b > 0 { self.gainPercent = (c / b - 1) * 100 }
    }
}

/// Everything one `swiftvs bench` run (a single load or a scenario) produced; written as JSON and HTML.
public struct BenchReport: Codable, Sendable, Equatable {
    public var tool = "swiftvs bench"
    public var formatVersion = 1
    public var title: String
    /// When the run started (ISO 8601, UTC).
    public var startedAt: String
    /// The command line that produced it.
    public var command: String
    public var cores: Int
    public var phases: [PhaseReport] = []
    public var sweeps: [SweepReport] = []
    public var comparisons: [ComparisonReport] = []
    /// Problems met while running (a process that failed to start, a fault that could not be injected).
    public var notes: [String] = []

    public init(title: String, startedAt: String, command: String, cores: Int) {
        self.title = title
        self.startedAt = startedAt
        self.command = command
        self.cores = cores
    }
}

/// Number formatting without Foundation, for tables, progress lines and SVG.
public enum BenchFormat {
    /// `12345` → "12345", `12.3456` → "12.35"; big numbers without decimals.
    public static func number(_ value: Double, decimals: Int? = nil) -> String {
        guard value.isFinite else { return "-" }
        let places = decimals ?? (abs(value) >= 100 || value == value.rounded() ? 0 : abs(value) >= 10 ? 1 : 2)
        return self.fixed(value, places)
    }

    public static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return String(value) }
        let whole = Int(scaled) / Int(scale)
        let fraction = Int(scaled) % Int(scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        if places == 0 { return sign + String(whole) }
        var digits = String(fraction)
        while digits.count < places { digits = "0" + digits }
        return sign + String(whole) + "." + digits
    }

    /// Milliseconds with sensible precision: "0.182", "12.4", "1250".
    public static func ms(_ value: Double) -> String {
        value < 1 ? self.fixed(value, 3) : value < 100 ? self.fixed(value, 2) : self.fixed(value, 0)
    }

    public static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let count = text.count
        guard count < width else { return text }
        let fill = String(repeating: " ", count: width - count)
        return right ? fill + text : text + fill
    }
}
