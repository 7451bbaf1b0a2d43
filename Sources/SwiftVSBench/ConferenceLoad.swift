import Foundation
import Histogram
import SwiftVSSystem
import Synchronization

/// `swiftvs bench conference`: R rooms × P participants join over WebSocket, spread over the ramp, then each sends
/// a chat message at `rate` per second (stamped with the send time) until the hold ends, and reads everything.
public struct ConferenceLoadSpec: Sendable, Equatable {
    /// The signal service or the director in front of it: `ws://HOST:PORT` (the client adds `/ws?room=`).
    public var url: String
    public var rooms: Int
    public var participants: Int
    public var ramp: Double
    public var duration: Double
    /// Chat messages per participant per second.
    public var rate: Double = 1
    /// Time allowed for connecting and joining.
    public var joinTimeout: Double = 10
    public var roomPrefix = "bench"

    public init(url: String, rooms: Int, participants: Int, ramp: Double, duration: Double) throws(BenchSpecError) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/ws") { base.removeLast(3) }
        guard base.hasPrefix("ws://") || base.hasPrefix("wss://") else {
            throw BenchSpecError("'\(url)': expected ws://HOST:PORT (the signal service or the director)")
        }
        self.url = base
        self.rooms = rooms
        self.participants = participants
        self.ramp = ramp
        self.duration = duration
    }
}

public struct ConferencePoint: Codable, Sendable, Equatable {
    public var t: Double
    public var connected: Int
    public var deliveredPerSecond: Double
    public var deliveryP99Ms: Double
}

/// A watched process's resident memory: at the start, its peak, and the peak per connected participant.
public struct MemoryFigure: Codable, Sendable, Equatable {
    public var name: String
    public var startMiB: Double
    public var peakMiB: Double
    /// (peak − start) / participants connected at the peak, in KiB.
    public var perParticipantKiB: Double?
}

public struct ConferenceLoadReport: Codable, Sendable, Equatable {
    public var url: String
    public var rooms: Int
    public var participants: Int
    public var rampSeconds: Double
    public var durationSeconds: Double
    public var rate: Double
    public var joined: Int
    public var joinFailed: Int
    public var joinTime: LatencySummary
    public var delivery: LatencySummary
    public var sent: Int
    public var delivered: Int
    /// Messages each sender's room-mates should have received: sent × (participants − 1).
    public var expected: Int
    public var messagesPerSecond: Double
    public var errors: [String: Int]
    public var cpu: [CPUSeries]
    public var machineCPU: CPUSeries
    public var memory: [MemoryFigure]
    public var timeline: [ConferencePoint]

    public func text() -> String {
        var out = "swiftvs bench conference \(self.url)\n"
        out += String(
            format: "Rooms          %d × %d participants, joining over %.0f s, then %.0f s at %.2f chat/s each\n",
            self.rooms, self.participants, self.rampSeconds, self.durationSeconds, self.rate)
        out += "Joined         \(self.joined) of \(self.rooms * self.participants)"
        out += self.joinFailed > 0 ? " (\(self.joinFailed) failed)\n" : "\n"
        out += "Join time      \(self.joinTime.line)\n"
        out += "Delivery       \(self.delivery.line)\n"
        out += String(
            format: "Messages       %d sent, %d of %d delivered (%.2f%%), %.0f delivered/s\n", self.sent,
            self.delivered,
            self.expected, self.expected > 0 ? 100 * Double(self.delivered) / Double(self.expected) : 100,
            self.messagesPerSecond)
        out +=
            "Errors         "
            + (self.errors.isEmpty
                ? "none"
                : self.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            + "\n"
        for series in self.cpu + [self.machineCPU] where !series.samples.isEmpty {
            let mean = series.samples.map(\.percent).reduce(0, +) / Double(series.samples.count)
            let peak = series.samples.map(\.percent).max() ?? 0
            out += String(
                format: "CPU %-10@ mean %.0f%%  peak %.0f%%\n", series.name as NSString, mean, peak)
        }
        for figure in self.memory {
            out += String(
                format: "Memory %-7@ %.1f MiB at start, peak %.1f MiB", figure.name as NSString, figure.startMiB,
                figure.peakMiB)
            if let per = figure.perParticipantKiB { out += String(format: " (%.1f KiB per participant)", per) }
            out += "\n"
        }
        return out
    }

    /// The run as a phase of a scenario's report: each delivered message a success, each join that failed and each
    /// message not delivered a failure; delivery latency as the response time; the signaling figures kept whole.
    public func phase(name: String) -> PhaseReport {
        var counters = LoadCounters()
        let undelivered = max(0, self.expected - self.delivered)
        counters.attempted = self.rooms * self.participants + self.expected
        counters.succeeded = self.joined + self.delivered
        for _ in 0..<(self.joinFailed + undelivered) { counters.fail(.badResponse) }
        let timeline = self.timeline.map {
            TimelinePoint(
                t: $0.t, succeeded: Int($0.deliveredPerSecond), failed: 0, requestsPerSecond: $0.deliveredPerSecond,
                megabytesPerSecond: 0, p50Ms: 0, p99Ms: $0.deliveryP99Ms, maxMs: $0.deliveryP99Ms)
        }
        let spec = LoadSpec(targets: [BenchTarget(host: "conference", port: 0, path: "/ws", url: self.url + "/ws")])
        var phase = PhaseReport(
            name: name, spec: spec, elapsedSeconds: self.rampSeconds + self.durationSeconds, counters: counters,
            unfinished: 0, latency: self.delivery, percentiles: [], timeline: timeline, cpu: self.cpu,
            machineCPU: self.machineCPU)
        phase.requestsPerSecond = self.messagesPerSecond
        var errors = self.errors
        if self.joinFailed > 0 { errors["join failed"] = self.joinFailed }
        if undelivered > 0 { errors["not delivered"] = undelivered }
        phase.errorsByCode = errors
        phase.conference = self
        return phase
    }

    public func html() -> String {
        var body = "<h1>swiftvs bench conference</h1>\n<pre>\(BenchHTML.escape(self.text()))</pre>\n<div class=charts>"
        body += BenchHTML.chart(
            id: "delivery", title: "Delivery p99 (ms)", xLabel: "s",
            series: [("p99", self.timeline.map { ($0.t, $0.deliveryP99Ms) })], markers: [(self.rampSeconds, "hold")])
        body += BenchHTML.chart(
            id: "messages", title: "Messages delivered per second", xLabel: "s",
            series: [("delivered/s", self.timeline.map { ($0.t, $0.deliveredPerSecond) })], markers: [])
        body += BenchHTML.chart(
            id: "connected", title: "Participants connected", xLabel: "s",
            series: [("connected", self.timeline.map { ($0.t, Double($0.connected)) })], markers: [])
        body += BenchHTML.chart(
            id: "cpu", title: "CPU (%; 100 = one core, machine: all cores)", xLabel: "s",
            series: (self.cpu + [self.machineCPU]).map { s in (s.name, s.samples.map { ($0.t, $0.percent) }) },
            markers: [])
        return BenchHTML.page(title: "swiftvs bench conference", body: body + "</div>\n")
    }
}

public enum ConferenceLoad {
    final class Tally: Sendable {
        struct State {
            var join = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            var delivery = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            var second = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            var secondDelivered = 0
            var joined = 0
            var joinFailed = 0
            var connected = 0
            var sent = 0
            var delivered = 0
            var errors: [String: Int] = [:]
        }
        let state = Mutex(State())
        let clients = Mutex<[SignalClient]>([])
        /// Set once the last deliveries are in (or given up on): readers stop.
        let done = Atomic<Bool>(false)
        /// When the hold ends: `duration` after the ramp, or after the last join settled if that was later (a loaded
        /// machine joins slowly, and a message sent before its room is whole would miss someone).
        let holdEndBits: Atomic<UInt64>

        init(holdEnd: Double) { self.holdEndBits = Atomic(holdEnd.bitPattern) }

        var holdEnd: Double { Double(bitPattern: self.holdEndBits.load(ordering: .relaxed)) }

        func extendHold(to end: Double) {
            var current = self.holdEndBits.load(ordering: .relaxed)
            while Double(bitPattern: current) < end {
                let (exchanged, original) = self.holdEndBits.compareExchange(
                    expected: current, desired: end.bitPattern, ordering: .relaxed)
                if exchanged { return }
                current = original
            }
        }
        func error(_ cause: String) { self.state.withLock { $0.errors[cause, default: 0] += 1 } }
    }

    static func now() -> Double { Double(Monotonic.nanoseconds()) / 1e9 }

    public static func run(
        _ spec: ConferenceLoadSpec, watch: [WatchTarget], progress: (@Sendable (String) -> Void)?
    ) async -> ConferenceLoadReport {
        let start = Self.now()
        let tally = Tally(holdEnd: start + spec.ramp + spec.duration)
        let total = spec.rooms * spec.participants
        let sampler = CPUSampler(targets: watch)
        sampler.sample(t: 0)
        let startRSS = watch.map { $0.residentBytes() }
        var timeline: [ConferencePoint] = []

        await withTaskGroup(of: Void.self) { group in
            for index in 0..<total {
                let room = "\(spec.roomPrefix)-\(index % spec.rooms)"
                let offset = spec.ramp * Double(index) / Double(max(total, 1))
                group.addTask {
                    try? await Task.sleep(for: .seconds(max(0, start + offset - Self.now())))
                    let began = Self.now()
                    guard
                        let client = try? await SignalClient.connect(
                            url: "\(spec.url)/ws?room=\(room)", timeout: spec.joinTimeout)
                    else {
                        tally.state.withLock {
                            $0.joinFailed += 1; $0.errors["connect", default: 0] += 1
                        }
                        return
                    }
                    tally.clients.withLock { $0.append(client) }
                    client.send(["type": "join", "room": room, "name": "p\(index)"])
                    var joined = false
                    var me = ""
                    while let message = await client.next(timeout: max(0.01, began + spec.joinTimeout - Self.now())) {
                        let type = message["type"] as? String
                        if type == "joined" {
                            joined = true
                            me = message["id"] as? String ?? ""
                            break
                        }
                        if type == "error" {
                            tally.error(message["code"] as? String ?? "error")
                            break
                        }
                    }
                    guard joined else {
                        tally.state.withLock { $0.joinFailed += 1 }
                        if !client.isClosed { tally.error("join-timeout") }
                        client.close()
                        return
                    }
                    let micros = UInt64(max(0, (Self.now() - began) * 1e6))
                    tally.state.withLock {
                        $0.joined += 1
                        $0.connected += 1
                        _ = $0.join.record(micros)
                    }
                    let ownEcho = "\"from\":\"\(me)\""
                    await withTaskGroup(of: Void.self) { pair in
                        pair.addTask {  // sender
                            guard spec.rate > 0 else { return }
                            let period = 1 / spec.rate
                            // Everyone chats once all have joined (the hold), so each message has its whole room:
                            // from the ramp's end, or later if joins are still settling.
                            let joinWindow = start + spec.ramp + spec.joinTimeout + 1
                            while tally.state.withLock({ $0.joined + $0.joinFailed }) < total && Self.now() < joinWindow
                            {
                                try? await Task.sleep(for: .milliseconds(50))
                            }
                            let holdStart = max(Self.now(), start + spec.ramp)
                            tally.extendHold(to: holdStart + spec.duration)
                            var next = holdStart + Double.random(in: 0..<period)
                            while next < tally.holdEnd && !client.isClosed {
                                try? await Task.sleep(for: .seconds(max(0, next - Self.now())))
                                guard Self.now() < tally.holdEnd else { break }
                                client.send(["type": "chat", "text": "m", "sent": Self.now() * 1000])
                                tally.state.withLock { $0.sent += 1 }
                                next += period
                            }
                        }
                        pair.addTask {  // reader: frames handled as they arrive, until the hold is over
                            client.consume { text in
                                let now = Self.now()
                                if text.contains("\"chat\""), let range = text.range(of: "\"sent\":") {
                                    let digits = text[range.upperBound...].prefix {
                                        $0.isNumber || $0 == "." || $0 == "e" || $0 == "-"
                                    }
                                    if let sent = Double(digits), !text.contains(ownEcho) {
                                        let micros = UInt64(max(0, now * 1e6 - sent * 1000))
                                        tally.state.withLock {
                                            $0.delivered += 1
                                            $0.secondDelivered += 1
                                            _ = $0.delivery.record(micros)
                                            _ = $0.second.record(micros)
                                        }
                                    }
                                } else if text.contains("\"error\"") {
                                    let object =
                                        try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                                    tally.error(object?["code"] as? String ?? "error")
                                }
                            }
                            while !tally.done.load(ordering: .relaxed) && !client.isClosed {
                                try? await Task.sleep(for: .milliseconds(100))
                            }
                            if client.isClosed && Self.now() < tally.holdEnd {
                                tally.error("closed by server (\(client.closeCode.map(String.init) ?? "no code"))")
                            }
                        }
                    }
                    tally.state.withLock { $0.connected -= 1 }
                }
            }
            // Once a second: CPU, memory and the timeline, until the hold (and the last deliveries) end.
            var t = 1.0
            while Self.now() < tally.holdEnd + 1 {
                try? await Task.sleep(for: .seconds(max(0, start + t - Self.now())))
                sampler.sample(t: t)
                let (connected, delivered, p99) = tally.state.withLock { s in
                    defer { s.second.reset(); s.secondDelivered = 0 }
                    return (
                        s.connected, s.secondDelivered,
                        s.second.totalCount > 0 ? Double(s.second.valueAtPercentile(99)) / 1000 : 0
                    )
                }
                timeline.append(
                    ConferencePoint(
                        t: t, connected: connected, deliveredPerSecond: Double(delivered), deliveryP99Ms: p99))
                if let progress, Int(t) % 5 == 0 {
                    progress(
                        String(
                            format: "%4.0f s  %d connected  %d delivered/s  p99 %.1f ms", t, connected, delivered, p99))
                }
                t += 1
            }
            // The last messages of the hold still on their way: wait for them (at most 5 s), then stop reading.
            while Self.now() < tally.holdEnd + 5 {
                let (delivered, sent) = tally.state.withLock { ($0.delivered, $0.sent) }
                if delivered >= sent * (spec.participants - 1) { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
            tally.done.store(true, ordering: .relaxed)
            // Leave, as a participant who hangs up does (else each waits out the server's reconnect grace).
            for client in tally.clients.withLock({ $0 }) {
                client.send(["type": "leave"])
                client.close()
            }
            await group.waitForAll()
        }

        let s = tally.state.withLock { $0 }
        // Memory from the sampler's resident figures: the peak, and who was connected then.
        let connectedAt = Dictionary(timeline.map { ($0.t, $0.connected) }, uniquingKeysWith: { a, _ in a })
        let memory = sampler.series.enumerated().map { i, series in
            let start = Double(startRSS[i]) / 1_048_576
            let peak = series.samples.filter { $0.rssMiB != nil }.max { $0.rssMiB! < $1.rssMiB! }
            let connected = peak.flatMap { connectedAt[$0.t] } ?? 0
            let peakMiB = max(start, peak?.rssMiB ?? 0)
            return MemoryFigure(
                name: series.name, startMiB: start, peakMiB: peakMiB,
                perParticipantKiB: connected > 0 ? (peakMiB - start) * 1024 / Double(connected) : nil)
        }
        return ConferenceLoadReport(
            url: spec.url, rooms: spec.rooms, participants: spec.participants, rampSeconds: spec.ramp,
            durationSeconds: spec.duration, rate: spec.rate, joined: s.joined, joinFailed: s.joinFailed,
            joinTime: LoadPhase.summary(s.join), delivery: LoadPhase.summary(s.delivery), sent: s.sent,
            delivered: s.delivered, expected: s.sent * (spec.participants - 1),
            messagesPerSecond: Double(s.delivered) / max(spec.duration, 1e-9), errors: s.errors,
            cpu: sampler.series, machineCPU: sampler.machine, memory: memory, timeline: timeline)
    }
}
