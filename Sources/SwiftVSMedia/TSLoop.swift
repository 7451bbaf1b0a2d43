/// A TS file played as an endless live channel, aligned to the wall clock.
///
/// Loop `L` of the file covers `[L·D, (L+1)·D)` on a 90 kHz clock that counts from 1970, where `D` is the video's
/// duration. Every PTS, DTS and PCR is shifted so the stream's timeline continues across loops without a jump, and
/// continuity counters continue too. Because the position in the file is a function of the time of day, replicas
/// started at different times play the same bytes at the same moment, and their segmenters agree.
public struct TSLoop: Sendable {
    public let packets: [UInt8]
    public let packetCount: Int
    /// Loop length in 90 kHz ticks: from the first video frame to one frame past the last.
    public let duration: Int64
    /// Each packet's send time within a loop, 90 kHz ticks from the loop's start (from the latest PCR at or before it).
    public let offsets: [Int64]
    private let firstPCR90: Int64
    /// Per PID: how much the continuity counter advances per loop (to continue seamlessly).
    private let ccStep: [Int: Int]
    /// Packets left out of every loop: the tail of a non-video stream that runs past the video's end (an AAC track
    /// is often one frame longer), which would repeat timestamps at the start of the next loop.
    private let skipped: [Bool]

    public enum LoadError: Error, CustomStringConvertible, Equatable {
        case notTransportStream(String)
        case noTimestamps(String)

        public var description: String {
            switch self {
            case .notTransportStream(let why): return "not an MPEG-TS file: \(why)"
            case .noTimestamps(let why): return "cannot loop it: \(why)"
            }
        }
    }

    public init(file bytes: [UInt8]) throws(LoadError) {
        guard bytes.count >= 188 * 10 else { throw .notTransportStream("only \(bytes.count) bytes") }
        guard bytes.count % 188 == 0 else {
            throw .notTransportStream("size \(bytes.count) is not a multiple of 188 (a .ts file of whole packets)")
        }
        var demuxer = TSDemuxer()
        var pcrs: [(index: Int, pcr90: Int64)] = []
        var videoPTS: [Int64] = []
        var firstCC: [Int: Int] = [:]
        var pesStarts: [(index: Int, pid: Int, pts: Int64)] = []
        let count = bytes.count / 188
        let result: Result<Void, LoadError> = bytes.withUnsafeBytes { b in
            for i in 0..<count {
                guard let h = TSPacketHeader(b, at: i * 188) else {
                    return .failure(.notTransportStream("packet \(i) has no sync byte"))
                }
                if let pcr = h.pcr { pcrs.append((i, pcr / 300)) }
                if h.hasPayload, firstCC[h.pid] == nil { firstCC[h.pid] = h.continuityCounter }
                if h.unitStart, h.hasPayload, h.pid != 0, h.pid != demuxer.pmtPID, h.pid != demuxer.videoPID,
                    let field = TSTimestamp.pesTimestampOffsets(b, pes: i * 188 + h.payloadOffset, end: i * 188 + 188)
                        .pts,
                    let pts = TSTimestamp.read(b, at: field)
                {
                    pesStarts.append((i, h.pid, pts))
                }
                if case .videoStart(let previous) = demuxer.consume(b, at: i * 188, header: h), let pts = previous?.pts
                {
                    videoPTS.append(pts)
                }
            }
            if let last = demuxer.finishPES()?.pts { videoPTS.append(last) }
            return .success(())
        }
        try result.get()
        guard let firstPCR = pcrs.first else { throw .noTimestamps("the file has no PCR") }
        guard videoPTS.count >= 2 else { throw .noTimestamps("the file has fewer than 2 video frames with a PTS") }
        let sorted = videoPTS.sorted()
        var frame = Int64.max
        for (a, b) in zip(sorted, sorted.dropFirst()) where b > a { frame = min(frame, b - a) }
        self.duration = sorted.last! - sorted.first! + frame
        self.firstPCR90 = firstPCR.pcr90
        var offsets = [Int64](repeating: 0, count: count)
        var next = 0, current = firstPCR.pcr90
        for i in 0..<count {
            while next < pcrs.count, pcrs[next].index <= i { current = pcrs[next].pcr90; next += 1 }
            offsets[i] = max(0, current - firstPCR.pcr90)
        }
        self.offsets = offsets
        // A PES of another stream that starts a loop's length after that stream's first PES would collide with the
        // next loop's first one: leave it (to the end of its stream in the file) out.
        var skipped = [Bool](repeating: false, count: count)
        // A PES ends where the next one of its stream starts; the last one, a typical PES length after its start.
        var cutFrom: [Int: Int] = [:]
        for pid in Set(pesStarts.map(\.pid)) {
            let starts = pesStarts.filter { $0.pid == pid }
            let first = starts[0].pts
            let lengths = zip(starts, starts.dropFirst()).map { $1.pts - $0.pts }.sorted()
            let typical = lengths.isEmpty ? 0 : lengths[lengths.count / 2]
            for (k, start) in starts.enumerated() {
                let end = k + 1 < starts.count ? starts[k + 1].pts : start.pts + typical
                if end - first > self.duration + 90 { cutFrom[pid] = start.index; break }
            }
        }
        var lastCC: [Int: Int] = [:]
        bytes.withUnsafeBytes { b in
            for i in 0..<count {
                guard let h = TSPacketHeader(b, at: i * 188) else { continue }
                if let cut = cutFrom[h.pid], i >= cut { skipped[i] = true; continue }
                if h.hasPayload { lastCC[h.pid] = h.continuityCounter }
            }
        }
        var steps: [Int: Int] = [:]
        for (pid, first) in firstCC { steps[pid] = ((lastCC[pid, default: first - 1] + 1 - first) % 16 + 16) % 16 }
        self.ccStep = steps
        self.skipped = skipped
        self.packets = bytes
        self.packetCount = count
    }

    /// The loop and packet due at or after `ticks` (90 kHz since 1970).
    public func position(at ticks: Int64) -> (loop: Int64, index: Int) {
        let loop = ticks / self.duration
        let within = ticks - loop * self.duration
        var lo = 0, hi = self.packetCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if self.offsets[mid] < within { lo = mid + 1 } else { hi = mid }
        }
        return lo == self.packetCount ? (loop + 1, 0) : (loop, lo)
    }

    /// When packet `index` of loop `loop` is due, in 90 kHz ticks since 1970.
    public func due(loop: Int64, index: Int) -> Int64 { loop * self.duration + self.offsets[index] }

    /// Packet `index` of loop `loop`, with timestamps and continuity counter rewritten, appended to `out`.
    public func packet(loop: Int64, index: Int, into out: inout [UInt8]) {
        guard !self.skipped[index] else { return }
        let start = out.count
        out.append(contentsOf: self.packets[(index * 188)..<(index * 188 + 188)])
        let shift = loop * self.duration - self.firstPCR90
        out.withUnsafeMutableBytes { m in
            let b = UnsafeRawBufferPointer(m)
            guard let h = TSPacketHeader(b, at: start) else { return }
            if h.hasPayload, let step = self.ccStep[h.pid] {
                let cc = (h.continuityCounter + Int((loop % 16) * Int64(step))) % 16
                m[start + 3] = (m[start + 3] & 0xF0) | UInt8(cc)
            }
            if let pcr = h.pcr { TSTimestamp.writePCR(pcr + shift * 300, into: m, at: start + 6) }
            guard h.unitStart, h.hasPayload, h.pid != 0 else { return }
            let offsets = TSTimestamp.pesTimestampOffsets(b, pes: start + h.payloadOffset, end: start + 188)
            for field in [offsets.pts, offsets.dts].compactMap({ $0 }) {
                if let value = TSTimestamp.read(b, at: field) { TSTimestamp.write(value + shift, into: m, at: field) }
            }
        }
    }
}
