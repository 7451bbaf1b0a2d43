import SwiftVSMedia
import Foundation
import Logging
import NIOCore
import Synchronization
import SwiftVSCore

/// One live channel: its segmenter, the recent segments in memory, the archive on disk, and its counters.
/// Ingest drivers call `ingest`; the HTTP handler reads playlists and segments. Thread-safe.
public final class Channel: Sendable {
    public let config: ChannelConfig
    let settings: IPTVConfig
    let dvr: DVRStore?
    private let logger: Logger
    private let state: Mutex<State>

    struct Stored {
        var info: SegmentInfo
        var bytes: ByteBuffer
    }

    struct State {
        var segmenter: TSSegmenter
        var memory: [Stored] = []
        var discontinuitySequence = 0
        /// Wall-clock time of the latest finished segment.
        var lastSegmentAt: Double?
        var bytesIn: Int64 = 0
        var bytesOut: Int64 = 0
        var segmentRequests: Int64 = 0
        var playlistRequests: Int64 = 0
        /// Times of recent segment requests, for the viewer estimate.
        var recentFetches: [Double] = []
        /// Ingest bitrate: bytes in the current and previous 5 s windows.
        var rateWindowStart: Double = 0
        var rateWindowBytes: Int64 = 0
        var bitrate: Double = 0
        /// An HTTP push is feeding the channel (only one at a time: two feeds into one segmenter would interleave).
        var pushing = false
    }

    public init(config: ChannelConfig, settings: IPTVConfig, logger: Logger) throws {
        self.config = config
        self.settings = settings
        self.logger = logger
        self.dvr = try settings.dvr.map { try DVRStore(config: $0, channel: config.id, logger: logger) }
        var state = State(
            segmenter: TSSegmenter(
                targetDuration: settings.segmentDuration,
                numbersAbove: self.dvr?.lastInfo.map { ($0.number, $0.programDateTime) }))
        if let last = self.dvr?.lastInfo { state.discontinuitySequence = last.discontinuitySequence }
        self.state = Mutex(state)
    }

    /// Feeds TS bytes that arrived at `wallClock` (seconds since 1970).
    public func ingest(_ bytes: UnsafeRawBufferPointer, wallClock: Double) {
        let finished: [Stored] = self.state.withLock { s in
            s.bytesIn += Int64(bytes.count)
            if wallClock - s.rateWindowStart >= 5 {
                s.bitrate = s.rateWindowStart > 0 ? Double(s.rateWindowBytes) * 8 / (wallClock - s.rateWindowStart) : 0
                s.rateWindowStart = wallClock
                s.rateWindowBytes = 0
            }
            s.rateWindowBytes += Int64(bytes.count)
            let segments = s.segmenter.feed(bytes, wallClock: wallClock)
            guard !segments.isEmpty else { return [] }
            var out: [Stored] = []
            for segment in segments {
                if segment.discontinuity { s.discontinuitySequence += 1 }
                let info = SegmentInfo(segment, discontinuitySequence: s.discontinuitySequence)
                let stored = Stored(info: info, bytes: ByteBuffer(bytes: segment.bytes))
                s.memory.append(stored)
                out.append(stored)
            }
            if s.memory.count > self.settings.memorySegments {
                s.memory.removeFirst(s.memory.count - self.settings.memorySegments)
            }
            s.lastSegmentAt = wallClock
            return out
        }
        for segment in finished {
            self.logger.debug(
                "segment",
                metadata: [
                    "channel": "\(self.config.id)", "number": "\(segment.info.number)",
                    "duration": "\(segment.info.duration)",
                ])
            self.dvr?.store(segment.info, segment.bytes)
        }
    }

    /// Claims the channel for one HTTP push; false while another push is running.
    func claimPush() -> Bool {
        self.state.withLock { s in
            guard !s.pushing else { return false }
            s.pushing = true
            return true
        }
    }

    func releasePush() { self.state.withLock { $0.pushing = false } }

    public func ingest(_ buffer: ByteBuffer, wallClock: Double) {
        buffer.withUnsafeReadableBytes { self.ingest($0, wallClock: wallClock) }
    }

    /// Live when a segment finished within three target durations and enough segments are held for a player to
    /// start. (Counted over all held segments, not the live window: a hole in the numbering shortens the window of
    /// every replica at once, and must not take them all out of a director's pool together.)
    public func isLive(now: Double) -> Bool {
        self.state.withLock { s in
            guard let last = s.lastSegmentAt else { return false }
            return now - last < max(3 * self.settings.segmentDuration, 6)
                && s.memory.count >= min(3, self.settings.window)
        }
    }

    /// The live playlist; nil until the first segment is out.
    public func livePlaylist() -> String? {
        self.state.withLock { s in
            s.playlistRequests += 1
            guard !s.memory.isEmpty else { return nil }
            return HLSPlaylist.live(
                s.memory.map(\.info), window: self.settings.window,
                targetDuration: self.settings.segmentDuration)
        }
    }

    /// A catch-up playlist for [start, start + duration), or to the live edge when `duration` is nil.
    public func archivePlaylist(start: Int64, duration: Int64?, now: Double) -> String? {
        let memory = self.state.withLock { s in
            s.playlistRequests += 1
            return s.memory.map(\.info)
        }
        var all = self.dvr?.infos() ?? []
        if let last = all.last?.number { all += memory.filter { $0.number > last } } else { all = memory }
        let from = Double(start)
        let end = duration.map { from + Double($0) } ?? .infinity
        let picked = HLSPlaylist.archiveRange(all, start: from, end: end)
        guard !picked.isEmpty else { return nil }
        let complete =
            duration != nil
            && (picked.last!.programDateTime + picked.last!.duration >= end
                || (memory.last.map { $0.programDateTime >= end } ?? false))
        return HLSPlaylist.archive(picked, complete: complete, targetDuration: self.settings.segmentDuration)
    }

    enum SegmentBody {
        case memory(ByteBuffer)
        case file(String, size: Int)
    }

    /// Segment `number` from memory, else from the archive. Counts the fetch for the viewer estimate.
    func segment(_ number: Int64, now: Double) -> SegmentBody? {
        let hit: ByteBuffer? = self.state.withLock { s in
            s.segmentRequests += 1
            s.recentFetches.append(now)
            if s.recentFetches.count > 100_000 || (s.recentFetches.first.map { now - $0 > 30 } ?? false) {
                s.recentFetches.removeAll { now - $0 > 30 }
            }
            // Binary search: numbers increase.
            var lo = 0, hi = s.memory.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if s.memory[mid].info.number < number { lo = mid + 1 } else { hi = mid }
            }
            return lo < s.memory.count && s.memory[lo].info.number == number ? s.memory[lo].bytes : nil
        }
        if let hit { return .memory(hit) }
        if let file = self.dvr?.file(number) { return .file(file.path, size: file.size) }
        return nil
    }

    func countBytesOut(_ n: Int) { self.state.withLock { $0.bytesOut += Int64(n) } }

    public struct Status: Codable, Sendable {
        public var id: String
        public var name: String
        public var group: String?
        public var logo: String?
        public var source: String
        public var live: Bool
        public var url: String
        public var segments: Int
        public var lastSegment: Int64?
        public var lastSegmentAge: Double?
        public var viewers: Double
        public var ingestBitrate: Double
        public var bytesIn: Int64
        public var bytesOut: Int64
        public var ccErrors: Int
        public var syncErrors: Int
        public var discontinuities: Int
        public var gaps: Int
        /// Ingest bytes dropped for an access unit or segment past its limit (a hostile or broken feed).
        public var droppedBytes: Int
        public var segmentRequests: Int64
        public var playlistRequests: Int64
        public var archiveSegments: Int
        public var archiveBytes: Int64
    }

    public func status(now: Double) -> Status {
        let live = self.isLive(now: now)
        let archive = self.dvr?.usage() ?? (0, 0)
        return self.state.withLock { s in
            // Each viewer fetches one segment per target duration: fetches in the last 30 s × duration / 30.
            let recent = s.recentFetches.reduce(0) { now - $1 <= 30 ? $0 + 1 : $0 }
            let window = min(30, max(self.settings.segmentDuration, now - (s.recentFetches.first ?? now)))
            return Status(
                id: self.config.id, name: self.config.name, group: self.config.group, logo: self.config.logo,
                source: self.config.source.description, live: live, url: "live/\(self.config.id)/index.m3u8",
                segments: s.memory.count, lastSegment: s.memory.last?.info.number,
                lastSegmentAge: s.lastSegmentAt.map { max(0, now - $0) },
                viewers: (Double(recent) * self.settings.segmentDuration / max(window, 1) * 10).rounded() / 10,
                ingestBitrate: s.bitrate, bytesIn: s.bytesIn, bytesOut: s.bytesOut,
                ccErrors: s.segmenter.demuxer.ccErrors, syncErrors: s.segmenter.syncErrors,
                discontinuities: s.segmenter.discontinuities, gaps: s.segmenter.gaps,
                droppedBytes: s.segmenter.droppedBytes, segmentRequests: s.segmentRequests,
                playlistRequests: s.playlistRequests,
                archiveSegments: archive.0, archiveBytes: archive.1
            )
        }
    }
}
