import SwiftVSConfigKit
/// What a playlist needs to know of a segment (its bytes live elsewhere).
public struct SegmentInfo: Sendable, Equatable {
    public var number: Int64
    public var duration: Double
    public var programDateTime: Double
    public var discontinuity: Bool
    public var follows: Int64?
    public var byteCount: Int
    /// Discontinuity sequence number: EXT-X-DISCONTINUITY tags at or before this segment since ingest began.
    public var discontinuitySequence: Int

    public init(
        number: Int64, duration: Double, programDateTime: Double, discontinuity: Bool, follows: Int64?,
        byteCount: Int, discontinuitySequence: Int = 0
    ) {
        self.number = number
        self.duration = duration
        self.programDateTime = programDateTime
        self.discontinuity = discontinuity
        self.follows = follows
        self.byteCount = byteCount
        self.discontinuitySequence = discontinuitySequence
    }

    public init(_ segment: TSSegment, discontinuitySequence: Int) {
        self.init(
            number: segment.number, duration: segment.duration, programDateTime: segment.programDateTime,
            discontinuity: segment.discontinuity, follows: segment.follows, byteCount: segment.bytes.count,
            discontinuitySequence: discontinuitySequence)
    }

    public var isContiguous: Bool { self.follows == self.number - 1 }
    /// Needs EXT-X-DISCONTINUITY before it when it is not the first entry of a playlist.
    public var breaksTimeline: Bool { self.discontinuity || !self.isContiguous }
    public var uri: String { "\(self.number).ts" }
}

/// Renders HLS media playlists (RFC 8216). Segment URIs are relative (`<number>.ts`), so playlists work unchanged
/// behind a director or under any prefix.
public enum HLSPlaylist {
    /// The last `window` segments, but never reaching back over a hole in the numbering: media sequence numbers in
    /// a live playlist are implicit (first + index), so every entry after the first must be its predecessor + 1.
    /// Two replicas holding the same segments pick the same window.
    public static func liveWindow(_ segments: [SegmentInfo], window: Int) -> ArraySlice<SegmentInfo> {
        guard !segments.isEmpty else { return [] }
        var start = segments.count - 1
        while start > 0, segments.count - start < window, segments[start].number == segments[start - 1].number + 1 {
            start -= 1
        }
        return segments[start...]
    }

    public static func targetDuration(_ segments: some Collection<SegmentInfo>, configured: Double) -> Int {
        segments.reduce(max(1, Int(configured.rounded(.up)))) { max($0, Int($1.duration.rounded())) }
    }

    /// A live sliding-window playlist.
    public static func live(_ segments: [SegmentInfo], window: Int, targetDuration: Double) -> String {
        let entries = self.liveWindow(segments, window: window)
        guard let first = entries.first else { return "" }
        var text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        text += "#EXT-X-TARGETDURATION:\(self.targetDuration(entries, configured: targetDuration))\n"
        text += "#EXT-X-MEDIA-SEQUENCE:\(first.number)\n"
        let dsn = first.discontinuitySequence - (first.discontinuity ? 1 : 0)
        if dsn > 0 { text += "#EXT-X-DISCONTINUITY-SEQUENCE:\(dsn)\n" }
        for (index, segment) in entries.enumerated() {
            self.entry(segment, first: index == 0, keepFirstDiscontinuity: true, into: &text)
        }
        return text
    }

    /// A catch-up playlist for a past range: VOD with EXT-X-ENDLIST when `complete`, else EVENT (still growing).
    public static func archive(_ segments: [SegmentInfo], complete: Bool, targetDuration: Double) -> String {
        var text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        text += "#EXT-X-PLAYLIST-TYPE:\(complete ? "VOD" : "EVENT")\n"
        text += "#EXT-X-TARGETDURATION:\(self.targetDuration(segments, configured: targetDuration))\n"
        text += "#EXT-X-MEDIA-SEQUENCE:\(segments.first?.number ?? 0)\n"
        for (index, segment) in segments.enumerated() {
            self.entry(segment, first: index == 0, keepFirstDiscontinuity: false, into: &text)
        }
        if complete { text += "#EXT-X-ENDLIST\n" }
        return text
    }

    private static func entry(_ s: SegmentInfo, first: Bool, keepFirstDiscontinuity: Bool, into text: inout String) {
        if first ? (keepFirstDiscontinuity && s.discontinuity) : s.breaksTimeline { text += "#EXT-X-DISCONTINUITY\n" }
        text += "#EXT-X-PROGRAM-DATE-TIME:\(ISO8601.format(s.programDateTime))\n"
        text += "#EXTINF:\(self.decimal(s.duration)),\n\(s.uri)\n"
    }

    /// Seconds with three decimals, as "2.000".
    public static func decimal(_ value: Double) -> String {
        let millis = Int64((value * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    /// Archive names as Flussonic and Nimble use them: `index-<start>-<duration>.m3u8` (seconds since 1970 and
    /// seconds), or `index-<start>-now.m3u8` (from start to the live edge). nil for other names.
    public static func parseArchiveName(_ name: String) -> (start: Int64, duration: Int64?)? {
        guard name.hasPrefix("index-"), name.hasSuffix(".m3u8") else { return nil }
        let parts = name.dropFirst(6).dropLast(5).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int64(parts[0]), start >= 0 else { return nil }
        if parts[1] == "now" { return (start, nil) }
        guard let duration = Int64(parts[1]), duration > 0 else { return nil }
        return (start, duration)
    }

    /// The segments overlapping [start, start + duration).
    public static func archiveRange(_ segments: [SegmentInfo], start: Double, end: Double) -> [SegmentInfo] {
        segments.filter { $0.programDateTime + $0.duration > start && $0.programDateTime < end }
    }
}

/// A single `Range: bytes=...` request against a representation of `length` bytes (RFC 9110 §14).
public enum ByteRangeRequest: Equatable, Sendable {
    case full
    case partial(Range<Int>)
    case unsatisfiable

    /// Multiple ranges and malformed headers are answered with the whole representation, as RFC 9110 allows.
    public static func parse(_ header: String?, length: Int) -> ByteRangeRequest {
        guard let header, header.hasPrefix("bytes=") else { return .full }
        let spec = header.dropFirst(6).trimmingSpaces()
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .full }
        let first = spec[..<dash].trimmingSpaces(), last = spec[spec.index(after: dash)...].trimmingSpaces()
        if first.isEmpty {
            guard let suffix = Int(last) else { return .full }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .partial(max(0, length - suffix)..<length)
        }
        guard let start = Int(first), start >= 0 else { return .full }
        guard start < length else { return .unsatisfiable }
        if last.isEmpty { return .partial(start..<length) }
        guard let end = Int(last), end >= start else { return .full }
        return .partial(start..<min(length, end + 1))
    }
}
