/// One finished HLS media segment.
public struct TSSegment: Sendable, Equatable {
    /// Media sequence number, derived from the stream's own timestamps (see `TSSegmenter`).
    public var number: Int64
    /// The first keyframe's PTS, unwrapped past 33 bits, in 90 kHz ticks.
    public var startPTS: Int64
    /// Seconds, from this segment's first keyframe to the next segment's.
    public var duration: Double
    /// EXT-X-PROGRAM-DATE-TIME, seconds since 1970.
    public var programDateTime: Double
    /// The stream's timestamps jumped before this segment (EXT-X-DISCONTINUITY).
    public var discontinuity: Bool
    /// The segment before this one in the feed is not `number - 1` (numbers skipped or started fresh).
    public var follows: Int64?
    public var bytes: [UInt8]

    public init(
        number: Int64, startPTS: Int64, duration: Double, programDateTime: Double, discontinuity: Bool,
        follows: Int64?, bytes: [UInt8]
    ) {
        self.number = number
        self.startPTS = startPTS
        self.duration = duration
        self.programDateTime = programDateTime
        self.discontinuity = discontinuity
        self.follows = follows
        self.bytes = bytes
    }

    /// Whether it directly follows segment `number - 1` of the same feed.
    public var isContiguous: Bool { self.follows == self.number - 1 }
}

/// Cuts an MPEG-TS feed into HLS segments at keyframes, the same way on every replica.
///
/// Segment boundaries lie on a grid of the target duration in the stream's own PTS timeline: a segment starts at a
/// keyframe whose grid cell (`PTS / target`) is later than the open segment's, and is numbered by that cell. Two
/// replicas that ingest the same feed, whenever each started, therefore cut at the same keyframes and give the same
/// numbers, names and bytes; a viewer bounced between them sees one stream. The first segment starts only at a
/// keyframe that begins a new cell after another keyframe was seen, so a replica that joins mid-feed does not
/// publish a partial first segment under a number the others use for a longer one.
///
/// The 33-bit PTS is unwrapped with the wall clock: the wrap count is the one that puts the PTS nearest to the
/// current time, then follows each wrap. A jump of the PTS (a new encoder, a spliced source) is a discontinuity:
/// the open segment ends, the next one carries EXT-X-DISCONTINUITY, and numbers stay increasing. Replicas agree
/// across a discontinuity if both were running before it.
///
/// Each segment begins with the latest PAT and PMT so that it decodes on its own. Needs the video stream to have
/// keyframes at least as often as the target duration; rarer keyframes leave numbers unused (`gaps`).
public struct TSSegmenter: Sendable {
    public private(set) var demuxer = TSDemuxer()
    public let targetTicks: Int64
    /// Packets whose sync byte or adaptation field was wrong, and bytes skipped to find the next sync byte.
    public private(set) var syncErrors = 0
    public private(set) var discontinuities = 0
    public private(set) var gaps = 0
    public private(set) var keyframes = 0
    public private(set) var bytesIn = 0
    /// Bytes dropped because an access unit or a segment grew past its limit (`maxAccessUnitBytes`,
    /// `maxSegmentBytes`): a feed that never starts another picture, or never sends a keyframe.
    public private(set) var droppedBytes = 0

    private var carry: [UInt8] = []
    // Timeline.
    private var wraps: Int64?
    private var lastRawPTS: Int64 = 0
    private var lastVideoPTS: Int64?
    private var frameTicks: Int64 = 3600
    private var pdtOffset: Int64 = 0
    private var numberOffset: Int64 = 0
    private var lastNumber: Int64?
    private var lastKeyCell: Int64?
    private var jumped = false
    // Segment under construction.
    private var open: (number: Int64, start: Int64, discontinuity: Bool, follows: Int64?)?
    private var openBytes: [UInt8] = []
    /// Packets since the latest video PES start: whether it is a keyframe is known when the next one starts.
    private var pending: [UInt8] = []
    /// The access unit in `pending` grew past `maxAccessUnitBytes`: its packets are dropped until the next starts.
    private var droppingUnit = false
    private var pat: [UInt8] = []
    private var pmt: [UInt8] = []
    /// An open segment larger than this is dropped (a feed without keyframes must not grow memory without bound).
    public static let maxSegmentBytes = 64 << 20
    /// One video access unit (the packets from one PES start to the next) larger than this is dropped, with the
    /// segment it was in (which would not decode without it): a feed that never starts another PES must not grow
    /// memory without bound. A 4K HEVC keyframe at a high bitrate is a few MB.
    public static let maxAccessUnitBytes = 16 << 20
    /// Buffers that grew past this are given back to the allocator when emptied, not kept for reuse.
    static let keptCapacity = 4 << 20

    /// The newest segment of an archive kept from an earlier run. A feed that comes back on the same timeline (the
    /// same stream, or the wall-clock-aligned loop) keeps its numbers: the archive already has those segments. A feed
    /// whose timestamps repeat old numbers at a later time (an encoder restarted from zero) is numbered above the
    /// archive, so nothing in it is overwritten.
    private let archived: (number: Int64, programDateTime: Double)?

    public init(targetDuration: Double, numbersAbove archived: (number: Int64, programDateTime: Double)? = nil) {
        self.targetTicks = max(9000, Int64((targetDuration * 90_000).rounded()))
        self.archived = archived
    }

    /// Feeds bytes as they arrive (any split: a partial packet waits for the rest); `wallClock` is seconds since
    /// 1970 at arrival. Returns the segments this input finished.
    public mutating func feed(_ data: UnsafeRawBufferPointer, wallClock: Double) -> [TSSegment] {
        self.bytesIn += data.count
        var out: [TSSegment] = []
        if self.carry.isEmpty {
            let used = self.process(data, wallClock: wallClock, into: &out)
            if used < data.count { self.carry = Array(UnsafeRawBufferPointer(rebasing: data[used...])) }
        } else {
            self.carry.append(contentsOf: data)
            let buffer = self.carry
            let used = buffer.withUnsafeBytes { self.process($0, wallClock: wallClock, into: &out) }
            self.carry.removeFirst(used)
        }
        return out
    }

    public mutating func feed(_ bytes: [UInt8], wallClock: Double) -> [TSSegment] {
        bytes.withUnsafeBytes { self.feed($0, wallClock: wallClock) }
    }

    /// Processes whole packets; returns how many bytes were used (the rest is an incomplete packet).
    private mutating func process(_ b: UnsafeRawBufferPointer, wallClock: Double, into out: inout [TSSegment]) -> Int {
        var p = 0
        let size = TSPacketHeader.size
        while p + size <= b.count {
            guard b[p] == TSPacketHeader.syncByte, let h = TSPacketHeader(b, at: p) else {
                self.syncErrors += 1
                p += 1
                while p < b.count, b[p] != TSPacketHeader.syncByte { p += 1 }
                continue
            }
            defer { p += size }
            if h.pid == 0x1FFF { continue }
            let event = self.demuxer.consume(b, at: p, header: h)
            let packet = UnsafeRawBufferPointer(rebasing: b[p..<(p + size)])
            if h.unitStart, h.pid == 0 { self.pat = Array(packet) }
            if h.unitStart, h.pid == self.demuxer.pmtPID { self.pmt = Array(packet) }
            if case .videoStart(let previous) = event {
                if let previous, !self.droppingUnit { self.accessUnitEnded(previous, wallClock: wallClock, into: &out) }
                self.droppingUnit = false
                Self.empty(&self.pending)
                self.pending.append(contentsOf: packet)
            } else if self.droppingUnit, h.pid == self.demuxer.videoPID {
                self.droppedBytes += size
            } else if !self.pending.isEmpty {
                guard self.pending.count + size <= Self.maxAccessUnitBytes else {
                    self.dropAccessUnit(plus: size)
                    continue
                }
                self.pending.append(contentsOf: packet)
            } else if self.open != nil {
                self.openBytes.append(contentsOf: packet)
            }
        }
        return p
    }

    private mutating func unwrap(_ raw: Int64, wallClock: Double, reanchor: Bool) -> Int64 {
        let m = TSTimestamp.modulus
        if reanchor || self.wraps == nil {
            let now = Int64(wallClock * 90_000)
            self.wraps = Int64((Double(now - raw) / Double(m)).rounded())
        } else if raw < self.lastRawPTS - m / 2 {
            self.wraps! += 1
        } else if raw > self.lastRawPTS + m / 2 {
            self.wraps! -= 1
        }
        self.lastRawPTS = raw
        return raw + self.wraps! * m
    }

    private mutating func anchorDateTime(_ pts: Int64, wallClock: Double) {
        let seconds = (wallClock - Double(pts) / 90_000).rounded()
        self.pdtOffset = Int64(seconds) * 90_000
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    private mutating func accessUnitEnded(_ unit: VideoAccessUnit, wallClock: Double, into out: inout [TSSegment]) {
        guard let raw = unit.pts else { return self.keepPending() }
        let firstTime = self.wraps == nil
        var pts = self.unwrap(raw, wallClock: wallClock, reanchor: false)
        if firstTime { self.anchorDateTime(pts, wallClock: wallClock) }
        if let last = self.lastVideoPTS {
            let delta = pts - last
            if delta < -90_000 || delta > 10 * 90_000 {
                // The timeline jumped: end the open segment where its own timeline ends, start afresh.
                self.discontinuities += 1
                if let open = self.open {
                    self.emit(open, end: last + self.frameTicks, wallClock: wallClock, into: &out)
                }
                self.open = nil
                self.openBytes.removeAll()
                self.lastKeyCell = nil
                self.jumped = true
                pts = self.unwrap(raw, wallClock: wallClock, reanchor: true)
                self.anchorDateTime(pts, wallClock: wallClock)
            } else if delta > 0, delta < 45_000 {
                self.frameTicks = delta
            }
        }
        self.lastVideoPTS = pts
        guard unit.keyframe else { return self.keepPending() }
        self.keyframes += 1
        let cell = Self.floorDiv(pts, self.targetTicks)
        defer { self.lastKeyCell = cell }
        let cut: Bool
        if let open = self.open {
            cut = cell > Self.floorDiv(open.start, self.targetTicks)
        } else {
            cut = self.lastKeyCell.map { $0 != cell } ?? false
        }
        guard cut else { return self.keepPending() }
        if let open = self.open { self.emit(open, end: pts, wallClock: wallClock, into: &out) }
        var number = cell + self.numberOffset
        if self.lastNumber == nil, let archived = self.archived, number <= archived.number,
            Double(pts + self.pdtOffset) / 90_000 > archived.programDateTime + Double(self.targetTicks) / 90_000
        {
            self.numberOffset += archived.number + 1 - number
            number = archived.number + 1
        }
        if let last = self.lastNumber, number <= last {
            self.numberOffset += last + 1 - number
            number = last + 1
        }
        if let last = self.lastNumber, number > last + 1, !self.jumped { self.gaps += 1 }
        self.open = (number, pts, self.jumped, self.lastNumber)
        self.jumped = false
        self.lastNumber = number
        self.openBytes.removeAll(keepingCapacity: true)
        self.openBytes.append(contentsOf: self.pat)
        self.openBytes.append(contentsOf: self.pmt)
        self.openBytes.append(contentsOf: self.pending)
        self.pending.removeAll(keepingCapacity: true)
    }

    private mutating func keepPending() {
        if self.open != nil {
            self.openBytes.append(contentsOf: self.pending)
            if self.openBytes.count > Self.maxSegmentBytes {
                self.droppedBytes += self.openBytes.count
                self.open = nil
                self.openBytes = []
            }
        }
        Self.empty(&self.pending)
    }

    /// The access unit under assembly grew past its limit: it and the open segment are dropped and counted, and
    /// the unit's further packets are dropped until the next unit starts.
    private mutating func dropAccessUnit(plus packet: Int) {
        self.droppedBytes += self.pending.count + self.openBytes.count + packet
        self.pending = []
        self.openBytes = []
        self.open = nil
        self.droppingUnit = true
    }

    /// Empties `buffer`, keeping its storage for reuse unless an outsized unit made it large.
    private static func empty(_ buffer: inout [UInt8]) {
        if buffer.capacity > Self.keptCapacity {
            buffer = []
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
    }

    private mutating func emit(
        _ open: (number: Int64, start: Int64, discontinuity: Bool, follows: Int64?), end: Int64,
        wallClock: Double, into out: inout [TSSegment]
    ) {
        let duration = Double(max(0, end - open.start)) / 90_000
        out.append(
            TSSegment(
                number: open.number, startPTS: open.start, duration: duration,
                programDateTime: Double(open.start + self.pdtOffset) / 90_000,
                discontinuity: open.discontinuity, follows: open.follows, bytes: self.openBytes
            ))
        self.openBytes = []
    }
}
