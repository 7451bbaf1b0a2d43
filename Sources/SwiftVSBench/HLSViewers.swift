import SwiftVSSystem
import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization
import SwiftVSCore

/// `swiftvs bench hls`: simulated HLS viewers. Each viewer has its own keep-alive connection and, once per period
/// (the playlist's target duration unless given), fetches the live playlist and then the newest segment it has not
/// fetched yet, as a player at the live edge does. Starts are spread over `ramp` so the viewers do not tick together.
public struct HLSViewerSpec: Sendable {
    public var host: String
    public var port: Int
    public var path: String
    public var viewers: Int
    public var duration: Double
    public var period: Double?
    public var ramp: Double?
    public var timeout: Double = 10
    public var threads: Int

    public init(url: String, viewers: Int, duration: Double, threads: Int) throws(BenchSpecError) {
        let target = try BenchTarget.parse(url)
        self.host = target.host
        self.port = target.port
        self.path = target.path
        self.viewers = viewers
        self.duration = duration
        self.threads = threads
    }
}

public struct HLSViewerReport: Codable, Sendable {
    public var url: String
    public var viewers: Int
    public var durationSeconds: Double
    public var periodSeconds: Double
    public var cycles: Int
    /// Cycles that took longer than the period: the viewer would have fallen behind the live edge.
    public var lateCycles: Int
    /// Playlists that named no segment the viewer had not fetched yet.
    public var stalePlaylists: Int
    public var playlists: Int
    public var segments: Int
    public var megabytesPerSecond: Double
    public var playlistLatency: LatencySummary
    public var segmentLatency: LatencySummary
    /// From the tick to the segment's last byte.
    public var cycleTime: LatencySummary
    public var errors: [String: Int]
    public var cpu: [CPUSeries]

    public func text() -> String {
        var out = "swiftvs bench hls \(self.url)\n"
        out += String(
            format: "Viewers        %d for %.0f s, one playlist + newest segment every %.1f s each\n",
            self.viewers, self.durationSeconds, self.periodSeconds)
        out += String(
            format: "Throughput     %.0f req/s, %.1f MB/s in\n",
            Double(self.playlists + self.segments) / max(self.durationSeconds, 1e-9), self.megabytesPerSecond)
        out += "Playlists      \(self.playlists): \(self.playlistLatency.line)\n"
        out += "Segments       \(self.segments): \(self.segmentLatency.line)\n"
        out += "Cycle          \(self.cycles): \(self.cycleTime.line)\n"
        out += "Late cycles    \(self.lateCycles) (longer than the period)   stale playlists \(self.stalePlaylists)\n"
        let errors = self.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        out += "Errors         \(errors.isEmpty ? "none" : errors)\n"
        for series in self.cpu where !series.samples.isEmpty {
            out += String(
                format: "CPU            %@: mean %.1f%%, max %.1f%% (100%% = one core)\n",
                series.name, series.meanPercent, series.maxPercent)
        }
        return out
    }
}

/// The figures of one event loop's viewers (merged at the end).
final class HLSViewerStats: @unchecked Sendable {  // confined to one event loop until the run ends
    var playlist = makeLatencyHistogram()
    var segment = makeLatencyHistogram()
    var cycle = makeLatencyHistogram()
    var cycles = 0, late = 0, stale = 0, playlists = 0, segments = 0, bytes = 0
    var errors: [String: Int] = [:]
}

public enum HLSViewerRun {
    public static func run(
        _ spec: HLSViewerSpec, watch: [WatchTarget], progress: (@Sendable (String) -> Void)?
    ) async throws -> HLSViewerReport {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: spec.threads)
        do {
            let report = try await self.run(spec, group: group, watch: watch, progress: progress)
            try? await group.shutdownGracefully()
            return report
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    static func run(
        _ spec: HLSViewerSpec, group: EventLoopGroup, watch: [WatchTarget],
        progress: (@Sendable (String) -> Void)?
    ) async throws -> HLSViewerReport {
        let period: Double
        if let given = spec.period {
            period = given
        } else {
            period = try await Self.targetDuration(spec, group: group)
        }
        let ramp = spec.ramp ?? period
        let start = Monotonic.nanoseconds() + 100_000_000
        let end = start + UInt64((spec.duration + ramp) * 1e9)
        let loops = (0..<spec.threads).map { _ in group.next() }
        var stats: [HLSViewerStats] = []
        var viewers: [HLSViewer] = []
        for (index, loop) in loops.enumerated() {
            let s = HLSViewerStats()
            stats.append(s)
            for id in stride(from: index, to: spec.viewers, by: spec.threads) {
                let offset = UInt64(ramp * 1e9 * Double(id) / Double(max(1, spec.viewers)))
                viewers.append(
                    HLSViewer(
                        spec: spec, loop: loop, stats: s, period: UInt64(period * 1e9),
                        firstTick: start + offset, end: end))
            }
        }
        for viewer in viewers { viewer.loop.execute { viewer.scheduleNext() } }
        let sampler = CPUSampler(targets: watch)
        sampler.sample(t: 0)
        var t = 0.0
        while Monotonic.nanoseconds() < end + UInt64(spec.timeout * 1e9) {
            try await Task.sleep(for: .seconds(1))
            t += 1
            sampler.sample(t: t)
            if let progress, Monotonic.nanoseconds() < end { progress(String(format: "  %.0f s", t)) }
            var running = 0
            for loop in loops {
                let mine = viewers.filter { $0.loop === loop }
                running += try await loop.submit { mine.filter { !$0.finished }.count }.get()
            }
            if running == 0 { break }
        }
        for viewer in viewers { viewer.loop.execute { viewer.stop() } }
        // Merge on each loop, then here.
        var merged = HLSViewerStats()
        for (loop, s) in zip(loops, stats) {
            let copy = try await loop.submit { () -> HLSViewerStats in s }.get()
            merged = Self.merge(merged, copy)
        }
        let seconds = spec.duration + ramp
        return HLSViewerReport(
            url: "http://\(spec.host):\(spec.port)\(spec.path)", viewers: spec.viewers, durationSeconds: seconds,
            periodSeconds: period, cycles: merged.cycles, lateCycles: merged.late, stalePlaylists: merged.stale,
            playlists: merged.playlists, segments: merged.segments,
            megabytesPerSecond: Double(merged.bytes) / seconds / 1e6,
            playlistLatency: LoadPhase.summary(merged.playlist), segmentLatency: LoadPhase.summary(merged.segment),
            cycleTime: LoadPhase.summary(merged.cycle), errors: merged.errors, cpu: sampler.series)
    }

    static func merge(_ a: HLSViewerStats, _ b: HLSViewerStats) -> HLSViewerStats {
        a.playlist.add(b.playlist)
        a.segment.add(b.segment)
        a.cycle.add(b.cycle)
        a.cycles += b.cycles; a.late += b.late; a.stale += b.stale
        a.playlists += b.playlists; a.segments += b.segments; a.bytes += b.bytes
        a.errors.merge(b.errors, uniquingKeysWith: +)
        return a
    }

    /// Fetches the playlist once (following a master playlist's first variant) for its target duration.
    static func targetDuration(_ spec: HLSViewerSpec, group: EventLoopGroup) async throws -> Double {
        let probe = HLSViewer(spec: spec, loop: group.next(), stats: HLSViewerStats(), period: 0, firstTick: 0, end: 0)
        let text = try await probe.fetchOnce()
        guard let target = HLSPlaylistSummary(text: text).targetDuration, target > 0 else {
            throw BenchSpecError("\(spec.path): no #EXT-X-TARGETDURATION in the playlist; give --period")
        }
        return target
    }
}

/// One viewer, confined to its event loop.
final class HLSViewer: @unchecked Sendable {
    let spec: HLSViewerSpec
    let loop: EventLoop
    let stats: HLSViewerStats
    let period: UInt64
    var nextTick: UInt64
    let end: UInt64
    var channel: Channel?
    var playlistPath: String
    var lastSegment: String?
    var finished = false
    // The request in flight.
    enum Step { case none, playlist, segment(String) }
    var step = Step.none
    var sentAt: UInt64 = 0
    var tickAt: UInt64 = 0
    var scanner = ResponseReader()
    var collected: [UInt8] = []
    var responseBytes = 0
    var timeoutTask: Scheduled<Void>?
    var once: EventLoopPromise<String>?

    init(spec: HLSViewerSpec, loop: EventLoop, stats: HLSViewerStats, period: UInt64, firstTick: UInt64, end: UInt64) {
        self.spec = spec
        self.loop = loop
        self.stats = stats
        self.period = period
        self.nextTick = firstTick
        self.end = end
        self.playlistPath = spec.path
    }

    func fetchOnce() async throws -> String {
        let promise = self.loop.makePromise(of: String.self)
        self.loop.execute {
            self.once = promise
            self.tickAt = Monotonic.nanoseconds()
            self.request(.playlist)
        }
        return try await promise.futureResult.get()
    }

    func scheduleNext() {
        guard !self.finished else { return }
        let now = Monotonic.nanoseconds()
        guard self.nextTick < self.end else { return self.stop() }
        let due = self.nextTick
        self.nextTick += self.period
        if due <= now {
            self.tick(due)
        } else {
            self.loop.scheduleTask(in: .nanoseconds(Int64(due - now))) { self.tick(due) }
        }
    }

    func tick(_ due: UInt64) {
        guard !self.finished else { return }
        self.tickAt = due
        self.request(.playlist)
    }

    func stop() {
        self.finished = true
        self.timeoutTask?.cancel()
        self.channel?.close(promise: nil)
        self.channel = nil
    }

    private func request(_ step: Step) {
        self.step = step
        self.scanner.reset()
        self.collected.removeAll(keepingCapacity: true)
        self.responseBytes = 0
        self.sentAt = Monotonic.nanoseconds()
        let path: String
        switch step {
        case .playlist: path = self.playlistPath
        case .segment(let p): path = p
        case .none: return
        }
        self.timeoutTask = self.loop.scheduleTask(in: .nanoseconds(Int64(self.spec.timeout * 1e9))) {
            self.fail("response_timeout")
        }
        var buffer = ByteBufferAllocator().buffer(capacity: 128 + path.utf8.count)
        buffer.writeString(
            "GET \(path) HTTP/1.1\r\nHost: \(self.spec.host):\(self.spec.port)\r\nUser-Agent: swiftvs-bench-hls\r\n\r\n"
        )
        if let channel = self.channel, channel.isActive {
            channel.writeAndFlush(buffer, promise: nil)
            return
        }
        let viewer = self
        let request = buffer
        ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HLSViewerHandler(viewer: viewer))
                }
            }
            .connect(host: self.spec.host, port: self.spec.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if viewer.finished { channel.close(promise: nil); return }
                    viewer.channel = channel
                    channel.writeAndFlush(request, promise: nil)
                case .failure(let error):
                    viewer.fail(LoadClient.connectCause(error).rawValue)
                }
            }
    }

    func received(_ buffer: ByteBuffer) {
        guard case .none = self.step else {
            self.responseBytes += buffer.readableBytes
            if case .playlist = self.step { self.collected.append(contentsOf: buffer.readableBytesView) }
            let outcome = buffer.withUnsafeReadableBytes { self.scanner.feed($0) }
            switch outcome {
            case .needMore: return
            case .invalid(let why): return self.fail("bad_response: \(why)")
            case .complete(let status, let keepAlive, _):
                if !keepAlive { self.channel?.close(promise: nil); self.channel = nil }
                self.completed(status: status)
            }
            return
        }
    }

    func closed() {
        self.channel = nil
        if case .none = self.step { return }
        if let outcome = self.scanner.endOfStream(), case .complete(let status, _, _) = outcome {
            return self.completed(status: status)
        }
        self.fail("reset_or_closed")
    }

    private func completed(status: Int) {
        self.timeoutTask?.cancel()
        let now = Monotonic.nanoseconds()
        let micros = max(1, (now &- self.sentAt) / 1000)
        let step = self.step
        self.step = .none
        guard (200..<400).contains(status) else { return self.fail("status_\(status)") }
        switch step {
        case .none: return
        case .playlist:
            self.stats.playlists += 1
            self.stats.bytes += self.responseBytes
            self.stats.playlist.record(micros)
            let text = self.body()
            if let once = self.once { self.once = nil; return once.succeed(text) }
            let summary = HLSPlaylistSummary(text: text)
            if summary.segments.isEmpty, let variant = summary.variants.first,
                let path = HLSPlaylistSummary.resolve(
                    variant, against: self.playlistPath, host: "\(self.spec.host):\(self.spec.port)")
            {
                self.playlistPath = path  // a master playlist: follow its first variant
                return self.request(.playlist)
            }
            guard let newest = summary.segments.last,
                let path = HLSPlaylistSummary.resolve(
                    newest, against: self.playlistPath, host: "\(self.spec.host):\(self.spec.port)")
            else {
                return self.fail("no_segments")
            }
            if path == self.lastSegment {
                self.stats.stale += 1
                return self.endCycle(now)
            }
            self.request(.segment(path))
        case .segment(let path):
            self.stats.segments += 1
            self.stats.bytes += self.responseBytes
            self.stats.segment.record(micros)
            self.lastSegment = path
            self.endCycle(now)
        }
    }

    private func body() -> String {
        guard let headEnd = self.collected.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A]) else { return "" }
        let head = String(decoding: self.collected[..<headEnd.lowerBound], as: UTF8.self).lowercased()
        let body = self.collected[headEnd.upperBound...]
        if head.contains("transfer-encoding: chunked") { return String(decoding: dechunk(body) ?? [], as: UTF8.self) }
        return String(decoding: body, as: UTF8.self)
    }

    private func endCycle(_ now: UInt64) {
        self.stats.cycles += 1
        let cycle = now &- self.tickAt
        self.stats.cycle.record(max(1, cycle / 1000))
        if cycle > self.period { self.stats.late += 1 }
        self.scheduleNext()
    }

    private func fail(_ cause: String) {
        self.timeoutTask?.cancel()
        if let once = self.once {
            self.once = nil; once.fail(BenchSpecError("fetching the playlist: \(cause)")); return
        }
        guard !self.finished else { return }
        self.stats.errors[cause, default: 0] += 1
        self.step = .none
        self.channel?.close(promise: nil)
        self.channel = nil
        self.stats.cycles += 1
        self.stats.late += 1
        self.scheduleNext()
    }
}

final class HLSViewerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let viewer: HLSViewer
    init(viewer: HLSViewer) { self.viewer = viewer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.viewer.received(Self.unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Only the viewer's current connection matters: one it closed itself (after a Connection: close response) is
        // already forgotten, and its late close must not fail the next request.
        if self.viewer.channel === context.channel { self.viewer.closed() }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
