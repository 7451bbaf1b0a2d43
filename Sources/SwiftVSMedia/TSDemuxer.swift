/// The elementary-stream codecs the segmenter can find keyframes in.
public enum VideoCodec: String, Sendable {
    case h264, hevc, mpeg2, mpeg4

    /// PMT stream_type → codec, for video streams.
    public init?(streamType: Int) {
        switch streamType {
        case 0x1B: self = .h264
        case 0x24: self = .hevc
        case 0x01, 0x02: self = .mpeg2
        case 0x10: self = .mpeg4
        default: return nil
        }
    }
}

/// One elementary stream announced in the PMT.
public struct TSStream: Sendable, Equatable {
    public var pid: Int
    public var streamType: Int
}

/// A video PES that has ended (the next one started on its PID).
public struct VideoAccessUnit: Sendable, Equatable {
    /// The PES header's PTS (33-bit, 90 kHz), when present.
    public var pts: Int64?
    /// random_access_indicator was set on the PES's first packet.
    public var randomAccess: Bool
    /// An IDR/IRAP picture: random_access_indicator, or, when that is absent, a keyframe NAL found in the PES.
    public var keyframe: Bool
}

/// Follows PAT → PMT → the video PID, counts continuity-counter errors on every PID, and reassembles video PES
/// to tell keyframes. Pure: bytes in, facts out.
public struct TSDemuxer: Sendable {
    public private(set) var pmtPID: Int?
    public private(set) var streams: [TSStream] = []
    public private(set) var videoPID: Int?
    public private(set) var videoCodec: VideoCodec?
    public private(set) var pcrPID: Int?
    /// Continuity-counter errors: a packet with payload whose counter is neither the next one nor a single repeat.
    public private(set) var ccErrors = 0
    public private(set) var packets = 0
    /// Sections (PAT/PMT) under assembly by PID.
    private var sections: [Int: [UInt8]] = [:]
    private var lastCC: [Int: (cc: Int, repeated: Bool)] = [:]
    /// The video PES under assembly.
    private var pes: (pts: Int64?, randomAccess: Bool, payload: [UInt8], headerSkipped: Bool)?
    /// Largest PES payload kept for NAL scanning; beyond it the PES counts as keyframe only by its flag.
    public static let maxScannedPES = 4 << 20

    public init() {}

    public enum Event: Sendable, Equatable {
        /// A video PES started; `previous` is the one it ended, if any.
        case videoStart(previous: VideoAccessUnit?)
    }

    /// Feeds one packet; returns an event when the packet starts a video PES.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, at start: Int, header h: TSPacketHeader) -> Event? {
        self.packets += 1
        self.checkContinuity(h)
        guard h.hasPayload, h.payloadOffset < TSPacketHeader.size else { return nil }
        let payloadStart = start + h.payloadOffset, end = start + TSPacketHeader.size
        if h.pid == 0 || h.pid == self.pmtPID {
            self.consumeSection(bytes, pid: h.pid, from: payloadStart, to: end, unitStart: h.unitStart)
            return nil
        }
        guard h.pid == self.videoPID else { return nil }
        if h.unitStart {
            let previous = self.finishPES()
            let offsets = TSTimestamp.pesTimestampOffsets(bytes, pes: payloadStart, end: end)
            let pts = offsets.pts.flatMap { TSTimestamp.read(bytes, at: $0) }
            var payload: [UInt8] = []
            var skipped = false
            if !h.randomAccess, payloadStart + 9 <= end {
                let esStart = payloadStart + 9 + Int(bytes[payloadStart + 8])
                if esStart <= end {
                    payload.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[esStart..<end]))
                    skipped = true
                }
            }
            self.pes = (pts, h.randomAccess, payload, skipped)
            return .videoStart(previous: previous)
        }
        if var current = self.pes, !current.randomAccess, current.headerSkipped,
            current.payload.count < Self.maxScannedPES
        {
            self.pes = nil
            current.payload.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<end]))
            self.pes = current
        }
        return nil
    }

    /// Ends the PES under assembly (at end of input); nil when none.
    public mutating func finishPES() -> VideoAccessUnit? {
        guard let current = self.pes else { return nil }
        self.pes = nil
        let keyframe =
            current.randomAccess
            || (self.videoCodec.map { KeyframeFinder.containsKeyframe(current.payload, codec: $0) } ?? false)
        return VideoAccessUnit(pts: current.pts, randomAccess: current.randomAccess, keyframe: keyframe)
    }

    private mutating func checkContinuity(_ h: TSPacketHeader) {
        guard h.pid != 0x1FFF else { return }
        guard h.hasPayload else { return }
        guard let last = self.lastCC[h.pid], !h.discontinuity else {
            self.lastCC[h.pid] = (h.continuityCounter, false)
            return
        }
        if h.continuityCounter == last.cc, !last.repeated {
            self.lastCC[h.pid] = (h.continuityCounter, true)  // one duplicate packet is allowed
            return
        }
        if h.continuityCounter != (last.cc + 1) & 0x0F { self.ccErrors += 1 }
        self.lastCC[h.pid] = (h.continuityCounter, false)
    }

    private mutating func consumeSection(
        _ bytes: UnsafeRawBufferPointer, pid: Int, from: Int, to end: Int, unitStart: Bool
    ) {
        var buffer: [UInt8]
        if unitStart {
            let pointer = Int(bytes[from])
            guard from + 1 + pointer < end else { return }
            buffer = Array(UnsafeRawBufferPointer(rebasing: bytes[(from + 1 + pointer)..<end]))
        } else {
            guard let partial = self.sections[pid] else { return }
            buffer = partial
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[from..<end]))
        }
        guard buffer.count >= 3 else { self.sections[pid] = buffer; return }
        let length = Int(buffer[1] & 0x0F) << 8 | Int(buffer[2])
        guard buffer.count >= 3 + length else {
            self.sections[pid] = buffer.count < 4096 ? buffer : nil
            return
        }
        self.sections[pid] = nil
        let section = Array(buffer[0..<(3 + length)])
        if pid == 0 { self.parsePAT(section) } else { self.parsePMT(section) }
    }

    private mutating func parsePAT(_ s: [UInt8]) {
        guard s[0] == 0x00, s.count >= 12 else { return }
        var i = 8
        while i + 4 <= s.count - 4 {
            let program = Int(s[i]) << 8 | Int(s[i + 1])
            let pid = Int(s[i + 2] & 0x1F) << 8 | Int(s[i + 3])
            if program != 0 {
                if self.pmtPID != pid { self.pmtPID = pid; self.sections[pid] = nil }
                return
            }
            i += 4
        }
    }

    private mutating func parsePMT(_ s: [UInt8]) {
        guard s[0] == 0x02, s.count >= 16 else { return }
        self.pcrPID = Int(s[8] & 0x1F) << 8 | Int(s[9])
        let infoLength = Int(s[10] & 0x0F) << 8 | Int(s[11])
        var i = 12 + infoLength
        var streams: [TSStream] = []
        while i + 5 <= s.count - 4 {
            let type = Int(s[i])
            let pid = Int(s[i + 1] & 0x1F) << 8 | Int(s[i + 2])
            let esInfo = Int(s[i + 3] & 0x0F) << 8 | Int(s[i + 4])
            streams.append(TSStream(pid: pid, streamType: type))
            i += 5 + esInfo
        }
        self.streams = streams
        if let video = streams.first(where: { VideoCodec(streamType: $0.streamType) != nil }) {
            if self.videoPID != video.pid { self.pes = nil }
            self.videoPID = video.pid
            self.videoCodec = VideoCodec(streamType: video.streamType)
        }
    }
}
