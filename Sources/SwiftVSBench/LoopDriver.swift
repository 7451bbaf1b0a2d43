import Foundation
import SwiftVSSystem
import Histogram
import NIOCore
import NIOPosix
import Synchronization
import SwiftVSCore

#if canImport(Glibc)
import Glibc
#endif

/// Requests left to send when a run is bounded by count; shared by every event loop.
final class RequestBudget: Sendable {
    let remaining: Atomic<Int>
    init(_ count: Int) { self.remaining = Atomic(count) }
    /// Takes one request from the budget; false when none is left.
    func claim() -> Bool { self.remaining.subtract(1, ordering: .relaxed).newValue >= 0 }
}

/// What one event loop measured since the last look.
struct IntervalSnapshot: Sendable {
    var counters: LoadCounters
    var histogram: Histogram<UInt64>
}

func makeLatencyHistogram() -> Histogram<UInt64> {
    // Microseconds, 1 µs to 1 hour, 3 significant digits.
    Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
}

/// Drives one event loop's share of a load phase: its users (closed loop) or its share of the arrivals (open loop),
/// their connections, timeouts and figures. Everything in it runs on `loop`, so it needs no locks.
final class LoopDriver: @unchecked Sendable {
    let loop: EventLoop
    let spec: LoadSpec
    /// Per target: index into `addresses`.
    let addressIndex: [Int]
    let addresses: [SocketAddress]
    let requests: [ByteBuffer]
    let isHead: Bool
    let budget: RequestBudget?
    let users: Int
    /// Open loop: nanoseconds between this loop's arrivals; nil in a closed loop.
    let period: UInt64?
    let firstArrivalOffset: UInt64
    let maxConnections: Int

    var mix: TargetMix
    var counters = LoadCounters()
    var interval = LoadCounters()
    var histogram = makeLatencyHistogram()
    var intervalHistogram = makeLatencyHistogram()

    var clients: [LoadClient] = []
    var idle: [LoadClient] = []
    var busy = 0
    /// Open loop: intended send times (ns) of arrivals waiting for a connection.
    var queue = TimeQueue()
    var nextArrival: UInt64 = 0
    var startNs: UInt64 = 0
    var stopNs: UInt64 = .max
    var stopping = false
    var finished = false
    var lastCompletionNs: UInt64 = 0
    /// With `--jtl`: every request's outcome, for the JTL file (nil otherwise: nothing kept per request).
    var samples: [JTL.Sample]?
    /// Wall-clock milliseconds at monotonic zero, for the samples' time stamps.
    let wallBaseMs = Date().timeIntervalSince1970 * 1000 - Double(Monotonic.nanoseconds()) / 1e6
    var unfinished = 0
    var tasks: [RepeatedTask] = []
    var stopTask: Scheduled<Void>?
    var arrivalTimer: Scheduled<Void>?
    let done: EventLoopPromise<Void>

    init(
        loop: EventLoop, spec: LoadSpec, addresses: [SocketAddress], addressIndex: [Int], budget: RequestBudget?,
        users: Int, ratePerSecond: Double?, arrivalOffsetSeconds: Double
    ) {
        self.loop = loop
        self.spec = spec
        self.addresses = addresses
        self.addressIndex = addressIndex
        self.requests = spec.targets.map { ByteBuffer(bytes: spec.requestBytes(for: $0)) }
        self.isHead = spec.method == "HEAD"
        self.budget = budget
        self.users = users
        self.period = ratePerSecond.map { UInt64(max(1, 1e9 / $0)) }
        self.firstArrivalOffset = UInt64(max(0, arrivalOffsetSeconds * 1e9))
        self.maxConnections = users
        self.mix = TargetMix(weights: spec.targets.map(\.weight))
        self.done = loop.makePromise()
    }

    /// Starts at `startNs` (monotonic); returns when every request has ended or the grace time ran out.
    func start(at startNs: UInt64) -> EventLoopFuture<Void> {
        self.loop.execute {
            self.startNs = startNs
            if let duration = self.spec.duration { self.stopNs = startNs + UInt64(duration * 1e9) }
            let stopIn = Int64(
                self.stopNs == .max ? Int64.max / 2 : Int64(self.stopNs) - Int64(Monotonic.nanoseconds()))
            if self.stopNs != .max {
                self.stopTask = self.loop.scheduleTask(in: .nanoseconds(max(0, stopIn))) { self.stop() }
            }
            // Timeouts are checked in sweeps rather than with one timer per request: a timer per request would cost
            // more than the request itself at high rates.
            self.tasks.append(
                self.loop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { _ in
                    self.sweep()
                })
            if self.period != nil {
                self.nextArrival = startNs + self.firstArrivalOffset
                self.arrivals()
            } else {
                for _ in 0..<self.users {
                    let client = LoadClient(driver: self)
                    self.clients.append(client)
                    if !self.issue(client, intended: Monotonic.nanoseconds()) { break }
                }
                self.checkFinished()
            }
        }
        return self.done.futureResult
    }

    /// Hands out the figures since the last call and starts new ones.
    func takeInterval() -> IntervalSnapshot {
        let snapshot = IntervalSnapshot(counters: self.interval, histogram: self.intervalHistogram)
        self.interval = LoadCounters()
        self.intervalHistogram.reset()
        return snapshot
    }

    // MARK: issuing

    /// Sends the next request on `client`, if the run goes on. Returns false if the run is over.
    @discardableResult
    func issue(_ client: LoadClient, intended: UInt64) -> Bool {
        guard !self.stopping else { return false }
        if let budget = self.budget, !budget.claim() {
            self.stop()
            return false
        }
        let target = self.mix.next()
        self.counters.attempted += 1
        self.interval.attempted += 1
        self.busy += 1
        client.send(target: target, address: self.addressIndex[target], intended: intended)
        return true
    }

    /// Open loop: turns the clock into arrivals, hands them to free connections, and sets a timer for the next
    /// arrival. The timer aims at the arrival itself (not a fixed tick) so requests leave on time, which matters
    /// because each is timed from when it was due; at high rates one wake-up sends a batch.
    func arrivals() {
        guard !self.stopping, let period = self.period else { return }
        let now = Monotonic.nanoseconds()
        while self.nextArrival <= now {
            if self.nextArrival >= self.stopNs { break }
            if let budget = self.budget, budget.remaining.load(ordering: .relaxed) - self.queue.count <= 0 { break }
            self.queue.push(self.nextArrival)
            self.nextArrival += period
        }
        self.dispatch(now: now)
        guard self.nextArrival < self.stopNs else { return }
        let wait = self.nextArrival > now ? self.nextArrival - now : 0
        self.arrivalTimer = self.loop.scheduleTask(in: .nanoseconds(Int64(max(wait, 20_000)))) { self.arrivals() }
    }

    func dispatch(now: UInt64) {
        while let intended = self.queue.peek() {
            if now > intended && now - intended > UInt64(self.spec.responseTimeout * 1e9) {
                // Waited too long for a connection: it would only add a stale sample, so count it and drop it.
                _ = self.queue.pop()
                self.counters.attempted += 1
                self.interval.attempted += 1
                self.counters.fail(.notSent)
                self.interval.fail(.notSent)
                continue
            }
            let client: LoadClient
            if let free = self.idle.popLast() {
                client = free
            } else if self.clients.count < self.maxConnections {
                client = LoadClient(driver: self)
                self.clients.append(client)
            } else {
                return
            }
            _ = self.queue.pop()
            if !self.issue(client, intended: intended) {
                self.idle.append(client)
                return
            }
        }
    }

    // MARK: results (called by clients)

    func completed(_ client: LoadClient, status: Int, latencyNs: UInt64) {
        let micros = max(1, latencyNs / 1000)
        if self.samples != nil {
            self.sample(client, code: String(status), ok: (200..<400).contains(status), latencyNs)
        }
        _ = self.histogram.record(micros)
        _ = self.intervalHistogram.record(micros)
        let klass = status / 100
        if (1...5).contains(klass) {
            self.counters.statusClasses[klass - 1] += 1
            self.interval.statusClasses[klass - 1] += 1
        }
        if klass == 2 || klass == 3 {
            self.counters.succeeded += 1
            self.interval.succeeded += 1
        } else {
            self.counters.fail(.status)
            self.interval.fail(.status)
        }
        self.lastCompletionNs = Monotonic.nanoseconds()
        self.free(client)
    }

    func failed(_ client: LoadClient, cause: LossCause) {
        if self.samples != nil { self.sample(client, code: "Non HTTP response code: \(cause.rawValue)", ok: false, 0) }
        self.counters.fail(cause)
        self.interval.fail(cause)
        self.lastCompletionNs = Monotonic.nanoseconds()
        self.free(client)
    }

    private func sample(_ client: LoadClient, code: String, ok: Bool, _ latencyNs: UInt64) {
        let now = Monotonic.nanoseconds()
        let target = self.spec.targets[client.target]
        self.samples!.append(
            JTL.Sample(
                timeStamp: Int64(self.wallBaseMs + Double(now &- latencyNs) / 1e6), elapsed: Int(latencyNs / 1_000_000),
                label: target.path, responseCode: code, success: ok, bytes: 0))
    }

    func countBytes(in count: Int) {
        self.counters.bytesIn &+= count
        self.interval.bytesIn &+= count
    }

    func countBytes(out count: Int) {
        self.counters.bytesOut &+= count
        self.interval.bytesOut &+= count
    }

    func countConnection() {
        self.counters.connectionsOpened += 1
        self.interval.connectionsOpened += 1
    }

    private func free(_ client: LoadClient) {
        self.busy -= 1
        if self.stopping {
            client.closeIfIdle()
            self.checkFinished()
            return
        }
        if self.period != nil {
            self.idle.append(client)
            self.dispatch(now: Monotonic.nanoseconds())
        } else {
            self.issue(client, intended: Monotonic.nanoseconds())
            self.checkFinished()
        }
    }

    // MARK: ending

    func sweep() {
        let now = Monotonic.nanoseconds()
        let timeout = UInt64(self.spec.responseTimeout * 1e9)
        for client in self.clients { client.checkTimeout(now: now, timeout: timeout) }
        if self.period != nil && !self.stopping { self.dispatch(now: now) }
    }

    /// No new requests; the ones in flight get a grace time to finish.
    func stop() {
        guard !self.stopping else { return }
        self.stopping = true
        self.unfinished += self.queue.count
        self.queue.removeAll()
        for client in self.idle { client.closeIfIdle() }
        let grace = min(self.spec.responseTimeout, 2.0)
        self.loop.scheduleTask(in: .nanoseconds(Int64(grace * 1e9))) { self.finish() }
        self.checkFinished()
    }

    func checkFinished() {
        if self.busy == 0 && (self.stopping || (self.period == nil && self.budgetSpent)) { self.finish() }
    }

    var budgetSpent: Bool { self.budget.map { $0.remaining.load(ordering: .relaxed) <= 0 } ?? false }

    func finish() {
        guard !self.finished else { return }
        self.stopping = true
        self.finished = true
        for client in self.clients where client.isBusy { self.unfinished += 1 }
        for client in self.clients { client.abandon() }
        for task in self.tasks { task.cancel() }
        self.stopTask?.cancel()
        self.arrivalTimer?.cancel()
        self.done.succeed(())
    }
}

/// Intended send times waiting for a connection, oldest first.
struct TimeQueue {
    var items: [UInt64] = []
    var head = 0

    var count: Int { self.items.count - self.head }

    mutating func push(_ value: UInt64) { self.items.append(value) }

    func peek() -> UInt64? { self.head < self.items.count ? self.items[self.head] : nil }

    mutating func pop() -> UInt64? {
        guard self.head < self.items.count else { return nil }
        let value = self.items[self.head]
        self.head += 1
        if self.head > 4096 && self.head * 2 > self.items.count {
            self.items.removeFirst(self.head)
            self.head = 0
        }
        return value
    }

    mutating func removeAll() {
        self.items.removeAll()
        self.head = 0
    }
}
