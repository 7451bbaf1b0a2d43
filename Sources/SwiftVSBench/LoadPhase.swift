import SwiftVSSystem
import Histogram
import NIOCore
import NIOPosix
import Synchronization
import SwiftVSCore

/// One load phase: spreads the users (or the arrival rate) over event loops, collects a timeline every
/// `spec.interval`, samples CPU every second, and returns the phase's report.
public final class LoadPhase: Sendable {
    public let name: String
    public let spec: LoadSpec
    let group: EventLoopGroup
    let watch: [WatchTarget]
    /// The admin API of a director whose autoscaler to read during the phase (`host:port`), or nil.
    let replicasFrom: String?
    /// Where to write every request's outcome as a JTL CSV (JMeter's result format), if anywhere.
    let jtl: String?
    let progress: (@Sendable (String) -> Void)?
    private let start = Mutex<UInt64>(0)
    private let marks = Mutex<[(at: Double, action: String)]>([])

    public init(
        name: String, spec: LoadSpec, group: EventLoopGroup, watch: [WatchTarget] = [], replicasFrom: String? = nil,
        jtl: String? = nil, progress: (@Sendable (String) -> Void)? = nil
    ) {
        self.jtl = jtl
        self.name = name
        self.spec = spec
        self.group = group
        self.watch = watch
        self.replicasFrom = replicasFrom
        self.progress = progress
    }

    /// Records a fault (or any event) at the current time, to be shown on the charts and costed in the report.
    public func mark(_ action: String) {
        let start = self.start.withLock { $0 }
        let t = start == 0 ? 0 : Double(Monotonic.nanoseconds() &- start) / 1e9
        self.marks.withLock { $0.append((t, action)) }
    }

    /// Resolves each distinct host:port once, so connects need no resolver.
    static func resolve(_ targets: [BenchTarget]) throws -> (addresses: [SocketAddress], index: [Int]) {
        var keys: [String] = []
        var addresses: [SocketAddress] = []
        var index: [Int] = []
        for target in targets {
            let key = "\(target.host)|\(target.port)"
            if let found = keys.firstIndex(of: key) {
                index.append(found)
                continue
            }
            do {
                let host = target.host == "localhost" ? "127.0.0.1" : target.host
                addresses.append(try SocketAddress.makeAddressResolvingHost(host, port: target.port))
            } catch {
                throw BenchSpecError("\(target.url): cannot resolve '\(target.host)': \(error)")
            }
            keys.append(key)
            index.append(keys.count - 1)
        }
        return (addresses, index)
    }

    public func run() async throws -> PhaseReport {
        let problems = self.spec.problems()
        guard problems.isEmpty else { throw BenchSpecError(problems.joined(separator: "; ")) }
        let (addresses, addressIndex) = try Self.resolve(self.spec.targets)
        var loops: [EventLoop] = []
        var iterator = self.group.makeIterator()
        while let loop = iterator.next(), loops.count < self.spec.threads { loops.append(loop) }
        let budget = self.spec.requests.map { RequestBudget($0) }
        var connections = self.spec.connections
        if case .closed = self.spec.model, let requests = self.spec.requests {
            connections = min(connections, requests)
        }
        let loopCount = max(1, min(loops.count, connections))
        var drivers: [LoopDriver] = []
        for i in 0..<loopCount {
            let users = connections / loopCount + (i < connections % loopCount ? 1 : 0)
            var rate: Double? = nil
            var offset = 0.0
            if case .open(let total) = self.spec.model {
                rate = total / Double(loopCount)
                offset = Double(i) / total  // interleave the loops' arrivals evenly
            }
            let driver = LoopDriver(
                loop: loops[i], spec: self.spec, addresses: addresses, addressIndex: addressIndex,
                budget: budget, users: users, ratePerSecond: rate, arrivalOffsetSeconds: offset)
            if self.jtl != nil { driver.samples = [] }
            drivers.append(driver)
        }

        let sampler = CPUSampler(targets: self.watch)
        sampler.sample(t: 0)
        let replicas = self.replicasFrom.flatMap { ReplicaPoller(address: $0) }
        if self.replicasFrom != nil && replicas == nil {
            throw BenchSpecError("--replicas-from: '\(self.replicasFrom!)' is not the admin API's host:port")
        }
        replicas?.sample(t: 0)
        let t0 = Monotonic.nanoseconds() + 2_000_000
        self.start.withLock { $0 = t0 }
        let finished = EventLoopFuture.andAllComplete(drivers.map { $0.start(at: t0) }, on: loops[0])
        let done = Atomic<Bool>(false)
        finished.whenComplete { _ in done.store(true, ordering: .releasing) }

        var timeline: [TimelinePoint] = []
        var lastTick = t0
        var nextCPU = 1.0
        var totalsSoFar = LoadCounters()
        let interval = UInt64(self.spec.interval * 1e9)
        var tick: UInt64 = 1
        var lastProgress = 0.0
        while !done.load(ordering: .acquiring) {
            let due = t0 + tick * interval
            let now = Monotonic.nanoseconds()
            // Wake at the bucket's end, or sooner to notice the end of the run.
            let wait = min(due > now ? due - now : 0, 50_000_000)
            if wait > 0 { try? await Task.sleep(nanoseconds: wait) }
            let after = Monotonic.nanoseconds()
            let t = Double(after &- t0) / 1e9
            if t >= nextCPU {
                sampler.sample(t: t)
                replicas?.sample(t: t)
                nextCPU = t.rounded(.down) + 1
            }
            guard after >= due else { continue }
            let point = try await Self.collect(drivers, from: lastTick, to: after, t0: t0, totals: &totalsSoFar)
            timeline.append(point)
            lastTick = after
            tick += 1
            if let progress = self.progress, t - lastProgress >= 0.999 {
                lastProgress = t
                progress(self.progressLine(point, totals: totalsSoFar, cpu: sampler))
            }
        }
        try await finished.get()
        // The last, partial bucket.
        let end = Monotonic.nanoseconds()
        let tail = try await Self.collect(drivers, from: lastTick, to: end, t0: t0, totals: &totalsSoFar)
        // The faults are costed on whole buckets only: the tail holds the last stragglers, not a rate.
        let wholeBuckets = timeline
        if tail.succeeded + tail.failed > 0 { timeline.append(tail) }

        var counters = LoadCounters()
        var histogram = makeLatencyHistogram()
        var unfinished = 0
        var lastCompletion = t0
        for driver in drivers {
            let (c, h, u, last) = try await driver.loop.submit {
                (driver.counters, driver.histogram, driver.unfinished, driver.lastCompletionNs)
            }.get()
            counters.add(c)
            histogram.add(h)
            unfinished += u
            lastCompletion = max(lastCompletion, last)
        }
        if let path = self.jtl {
            var samples: [JTL.Sample] = []
            for driver in drivers {
                samples += try await driver.loop.submit { driver.samples ?? [] }.get()
            }
            samples.sort { $0.timeStamp < $1.timeStamp }
            do {
                try JTL.write(samples).write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw BenchSpecError("--jtl \(path): \(error)")
            }
        }
        let elapsed = Double(lastCompletion &- t0) / 1e9
        let marks = self.marks.withLock { $0 }
        var faults = FaultAnalysis.analyze(timeline: wholeBuckets, interval: self.spec.interval, faults: marks)
        // Failures in the tail still count against the last fault.
        if !faults.isEmpty && timeline.count > wholeBuckets.count { faults[faults.count - 1].lost += tail.failed }
        var report = PhaseReport(
            name: self.name, spec: self.spec, elapsedSeconds: max(elapsed, 0.001), counters: counters,
            unfinished: unfinished, latency: Self.summary(histogram),
            percentiles: Self.curve(histogram), timeline: timeline, cpu: sampler.series,
            machineCPU: sampler.machine, faults: faults)
        report.replicas = replicas?.all ?? []
        return report
    }

    static func collect(
        _ drivers: [LoopDriver], from: UInt64, to: UInt64, t0: UInt64, totals: inout LoadCounters
    )
        async throws -> TimelinePoint
    {
        var counters = LoadCounters()
        var histogram = makeLatencyHistogram()
        for driver in drivers {
            let snapshot = try await driver.loop.submit { driver.takeInterval() }.get()
            counters.add(snapshot.counters)
            histogram.add(snapshot.histogram)
        }
        totals.add(counters)
        let seconds = max(Double(to &- from) / 1e9, 1e-6)
        let empty = histogram.totalCount == 0
        return TimelinePoint(
            t: Double(to &- t0) / 1e9, succeeded: counters.succeeded, failed: counters.failed,
            requestsPerSecond: Double(counters.succeeded) / seconds,
            megabytesPerSecond: Double(counters.bytesIn) / seconds / 1e6,
            p50Ms: empty ? 0 : Double(histogram.valueAtPercentile(50)) / 1000,
            p99Ms: empty ? 0 : Double(histogram.valueAtPercentile(99)) / 1000,
            maxMs: empty ? 0 : Double(histogram.max) / 1000)
    }

    static func summary(_ h: Histogram<UInt64>) -> LatencySummary {
        guard h.totalCount > 0 else { return .empty }
        func ms(_ v: UInt64) -> Double { Double(v) / 1000 }
        return LatencySummary(
            count: Int(h.totalCount), minMs: ms(h.min), meanMs: h.mean / 1000,
            p50Ms: ms(h.valueAtPercentile(50)), p90Ms: ms(h.valueAtPercentile(90)),
            p99Ms: ms(h.valueAtPercentile(99)), p999Ms: ms(h.valueAtPercentile(99.9)),
            maxMs: ms(h.max))
    }

    /// The percentile curve, at most about 120 points.
    static func curve(_ h: Histogram<UInt64>) -> [PercentilePoint] {
        guard h.totalCount > 0 else { return [] }
        var points: [PercentilePoint] = []
        for value in h.percentiles(ticksPerHalfDistance: 5) {
            points.append(PercentilePoint(percentile: value.percentileLevelIteratedTo, ms: Double(value.value) / 1000))
            if points.count >= 120 { break }
        }
        return points
    }

    func progressLine(_ point: TimelinePoint, totals: LoadCounters, cpu: CPUSampler) -> String {
        var line = "[\(BenchFormat.pad(BenchFormat.fixed(point.t, 1), 5, right: true))s] "
        line += "\(BenchFormat.pad(BenchFormat.number(point.requestsPerSecond, decimals: 0), 7, right: true)) req/s  "
        line += "errors \(totals.failed) (\(BenchFormat.fixed(totals.lossPercent, 2))%)  "
        line += "p99 \(BenchFormat.ms(point.p99Ms)) ms"
        var parts: [String] = []
        for series in cpu.series {
            if let last = series.samples.last {
                parts.append("\(series.name) \(BenchFormat.fixed(last.percent, 0))%")
            }
        }
        if let last = cpu.machine.samples.last { parts.append("machine \(BenchFormat.fixed(last.percent, 0))%") }
        if !parts.isEmpty { line += "  cpu " + parts.joined(separator: " ") }
        return line
    }
}
