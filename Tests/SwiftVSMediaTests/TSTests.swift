import Foundation
import SwiftVSConfigKit
import Testing
@testable import SwiftVSMedia

/// Runs a whole stream through a demuxer; the video access units in order.
private func accessUnits(_ bytes: [UInt8]) -> (units: [VideoAccessUnit], demuxer: TSDemuxer) {
    var demuxer = TSDemuxer()
    var units: [VideoAccessUnit] = []
    bytes.withUnsafeBytes { b in
        for i in 0..<(b.count / 188) {
            guard let h = TSPacketHeader(b, at: i * 188) else { continue }
            if case .videoStart(let previous?) = demuxer.consume(b, at: i * 188, header: h) { units.append(previous) }
        }
    }
    if let last = demuxer.finishPES() { units.append(last) }
    return (units, demuxer)
}

/// Clears random_access_indicator everywhere, as encoders that do not set it would send.
private func withoutRandomAccess(_ bytes: [UInt8]) -> [UInt8] {
    var copy = bytes
    for i in stride(from: 0, to: copy.count, by: 188) where copy[i + 3] & 0x20 != 0 && copy[i + 4] > 0 {
        copy[i + 5] &= ~0x40
    }
    return copy
}

/// Feeds `bytes` in chunks of `chunk`, each arriving in real time: at `wall` plus its latest PCR (a live feed paced
/// by its clock, as a replica receives it).
private func segment(
    _ bytes: ArraySlice<UInt8>, target: Double = 2, chunk: Int = 1316, wall: Double = 1_800_000_000
)
    -> (segments: [TSSegment], segmenter: TSSegmenter)
{
    var segmenter = TSSegmenter(targetDuration: target)
    var out: [TSSegment] = []
    var at = bytes.startIndex, pcr: Int64 = 0
    while at < bytes.endIndex {
        let end = min(bytes.endIndex, at + chunk)
        let piece = Array(bytes[at..<end])
        piece.withUnsafeBytes { b in
            for p in stride(from: 0, to: b.count - 187, by: 188) {
                if let v = TSPacketHeader(b, at: p)?.pcr { pcr = v }
            }
        }
        out += segmenter.feed(piece, wallClock: wall + Double(pcr % (TSTimestamp.modulus * 300)) / 27_000_000)
        at = end
    }
    return (out, segmenter)
}

@Suite("MPEG-TS parsing (streams made with ffmpeg)")
struct TSParserTests {
    @Test("PAT, PMT, streams, PCR and PTS of an H.264 + AAC stream")
    func programTables() throws {
        let bytes = try FFmpegStreams.make(seconds: 10)
        let (units, demuxer) = accessUnits(bytes)
        #expect(demuxer.pmtPID == 0x1000)
        #expect(demuxer.streams == [TSStream(pid: 0x100, streamType: 0x1B), TSStream(pid: 0x101, streamType: 0x0F)])
        #expect(demuxer.videoPID == 0x100 && demuxer.videoCodec == .h264)
        #expect(demuxer.pcrPID == 0x100)
        #expect(demuxer.ccErrors == 0)
        #expect(units.count == 250)
        let pts = units.compactMap(\.pts)
        #expect(pts.count == 250)
        #expect(pts.last! - pts.first! == 249 * 3600)  // 25 fps
        var sawPCR = false
        bytes.withUnsafeBytes { b in
            for i in 0..<(b.count / 188) { if TSPacketHeader(b, at: i * 188)?.pcr != nil { sawPCR = true } }
        }
        #expect(sawPCR)
    }

    @Test("keyframes by random_access_indicator, one per 2 s GOP")
    func keyframesByFlag() throws {
        let (units, _) = accessUnits(try FFmpegStreams.make(seconds: 10))
        let keys = units.enumerated().filter { $0.element.keyframe }.map(\.offset)
        #expect(keys == [0, 50, 100, 150, 200])
        #expect(units.filter(\.randomAccess).count == 5)
    }

    @Test("without the flag, keyframes are found by IDR NAL type across the whole PES (the first is after a big SEI)")
    func keyframesByNAL() throws {
        let (units, _) = accessUnits(withoutRandomAccess(try FFmpegStreams.make(seconds: 10)))
        #expect(units.allSatisfy { !$0.randomAccess })
        #expect(units.enumerated().filter { $0.element.keyframe }.map(\.offset) == [0, 50, 100, 150, 200])
    }

    @Test("HEVC: IRAP NAL types 16...21 are keyframes")
    func hevcKeyframes() throws {
        let bytes = withoutRandomAccess(try FFmpegStreams.make(seconds: 4, gop: 25, codec: "libx265", audio: false))
        let (units, demuxer) = accessUnits(bytes)
        #expect(demuxer.videoCodec == .hevc)
        #expect(units.enumerated().filter { $0.element.keyframe }.map(\.offset) == [0, 25, 50, 75])
    }

    @Test("a lost packet and a repeated packet: one continuity error, the duplicate is allowed")
    func continuityErrors() throws {
        var bytes = try FFmpegStreams.make(seconds: 4)
        // Drop the 300th packet of the video PID, then repeat a later video packet once.
        var videoPackets = stride(from: 0, to: bytes.count, by: 188).filter {
            (Int(bytes[$0 + 1] & 0x1F) << 8 | Int(bytes[$0 + 2])) == 0x100
        }
        let dropped = videoPackets[300]
        bytes.removeSubrange(dropped..<(dropped + 188))
        videoPackets = stride(from: 0, to: bytes.count, by: 188).filter {
            (Int(bytes[$0 + 1] & 0x1F) << 8 | Int(bytes[$0 + 2])) == 0x100
        }
        let repeated = videoPackets[500]
        bytes.insert(contentsOf: bytes[repeated..<(repeated + 188)], at: repeated + 188)
        #expect(accessUnits(bytes).demuxer.ccErrors == 1)
    }
}

@Suite("Segmenter: keyframe cuts, deterministic numbering, wrap-around, discontinuities")
struct TSSegmenterTests {
    @Test("cuts at keyframes every target duration; each segment starts PAT, PMT, keyframe and decodes alone")
    func cutsAtKeyframes() throws {
        let bytes = try FFmpegStreams.make(seconds: 12)
        let (segments, segmenter) = segment(bytes[...])
        // First keyframe only arms the segmenter (no earlier cell seen); the last GOP stays open.
        #expect(segments.count == 4)
        #expect(segments.allSatisfy { abs($0.duration - 2.0) < 0.001 })
        #expect(zip(segments, segments.dropFirst()).allSatisfy { $1.number == $0.number + 1 && $1.isContiguous })
        #expect(segmenter.discontinuities == 0 && segmenter.gaps == 0 && segmenter.syncErrors == 0)
        for s in segments {
            let pids = stride(from: 0, to: 3 * 188, by: 188).map {
                Int(s.bytes[$0 + 1] & 0x1F) << 8 | Int(s.bytes[$0 + 2])
            }
            #expect(pids == [0, 0x1000, 0x100])
            #expect(s.bytes[2 * 188 + 5] & 0x40 != 0)  // random_access_indicator on the first video packet
            #expect(
                abs(
                    s.programDateTime
                        - (Double(s.startPTS) / 90_000 + (s.programDateTime - Double(s.startPTS) / 90_000).rounded()))
                    < 0.001)
        }
        let codecs = try FFmpegStreams.probeCodecs(segments[1].bytes)
        #expect(Set(codecs) == ["h264", "aac"])
    }

    @Test("segment numbers are PTS / target: two replicas joining at different times publish identical segments")
    func deterministicAcrossReplicas() throws {
        let bytes = try FFmpegStreams.make(seconds: 20)
        let early = segment(bytes[...], chunk: 1316).segments
        // The late one starts 7.3 s into the feed (packet-aligned), with another chunking and a later clock.
        let late = segment(bytes[(bytes.count * 73 / 200 / 188 * 188)...], chunk: 188 * 3).segments
        #expect(late.count >= 3)
        let tail = early.suffix(late.count)
        #expect(tail.map(\.number) == late.map(\.number))
        #expect(tail.map(\.bytes) == late.map(\.bytes))
        #expect(tail.map(\.duration) == late.map(\.duration))
        #expect(tail.map(\.programDateTime) == late.map(\.programDateTime))
    }

    @Test("1 s GOP with a 2 s target: 2 s segments, not one per keyframe")
    func gopShorterThanTarget() throws {
        let (segments, segmenter) = segment(try FFmpegStreams.make(seconds: 12, gop: 25)[...])
        #expect(segments.count >= 4)
        #expect(segments.allSatisfy { abs($0.duration - 2.0) < 0.001 })
        #expect(segmenter.keyframes == 12)
    }

    @Test("33-bit PTS wrap-around: numbers and times continue, no discontinuity")
    func ptsWrap() throws {
        // PTS starts 5.7 s before 2^33 / 90 kHz (95443.7 s) and wraps in the middle.
        let bytes = try FFmpegStreams.make(seconds: 12, extra: ["-output_ts_offset", "95438"])
        let (segments, segmenter) = segment(bytes[...])
        var sawWrap = false
        bytes.withUnsafeBytes { b in
            var demuxer = TSDemuxer(), last: Int64 = 0
            for i in 0..<(b.count / 188) {
                guard let h = TSPacketHeader(b, at: i * 188) else { continue }
                if case .videoStart(let p?) = demuxer.consume(b, at: i * 188, header: h), let pts = p.pts {
                    if pts < last { sawWrap = true }
                    last = pts
                }
            }
        }
        #expect(sawWrap)
        #expect(segments.count == 4)
        #expect(segmenter.discontinuities == 0)
        #expect(
            zip(segments, segments.dropFirst()).allSatisfy {
                $1.number == $0.number + 1 && $1.startPTS - $0.startPTS == 180_000
            })
        #expect(
            zip(segments, segments.dropFirst()).allSatisfy { abs($1.programDateTime - $0.programDateTime - 2) < 0.001 })
    }

    @Test("a spliced feed (timestamps restart): EXT-X-DISCONTINUITY, numbers keep increasing")
    func discontinuity() throws {
        let a = try FFmpegStreams.make(seconds: 10, extra: ["-output_ts_offset", "500"])
        let b = try FFmpegStreams.make(seconds: 10)
        let (segments, segmenter) = segment((a + b)[...])
        #expect(segmenter.discontinuities == 1)
        let flagged = segments.filter(\.discontinuity)
        #expect(flagged.count == 1)
        #expect(zip(segments, segments.dropFirst()).allSatisfy { $1.number > $0.number })
        let infos = segments.enumerated().map {
            SegmentInfo($0.element, discontinuitySequence: $0.element.discontinuity ? 1 : 0)
        }
        let playlist = HLSPlaylist.archive(infos, complete: true, targetDuration: 2)
        #expect(playlist.components(separatedBy: "#EXT-X-DISCONTINUITY\n").count == 2)
        // The segment that ends at the splice ends with its own last frame.
        let beforeSplice = segments[segments.firstIndex(where: \.discontinuity)! - 1]
        #expect(abs(beforeSplice.duration - 2.0) < 0.05)
    }

    @Test("numbers stay above an archive's: a restarted encoder does not overwrite old segments")
    func numbersAboveArchive() throws {
        let bytes = try FFmpegStreams.make(seconds: 8)
        let plain = segment(bytes[...]).segments
        // The same PTS arriving an hour later: an encoder that restarted. Numbered above the archive.
        var segmenter = TSSegmenter(
            targetDuration: 2, numbersAbove: (plain.last!.number + 100, plain.last!.programDateTime))
        let above = segmenter.feed(bytes, wallClock: 1_800_003_600)
        #expect(above.first?.number == plain.last!.number + 101 && above.first?.follows == nil)
        #expect(zip(above, above.dropFirst()).allSatisfy { $1.number == $0.number + 1 })
        // The same stream at the same time (a replica restarted on its feed, or the aligned loop): numbers kept.
        var again = TSSegmenter(targetDuration: 2, numbersAbove: (plain.last!.number, plain.last!.programDateTime))
        let same = again.feed(bytes, wallClock: 1_800_000_000)
        #expect(same.map(\.number) == plain.map(\.number))
    }

    @Test("bytes that are not TS are skipped and counted; the stream resynchronises")
    func resync() throws {
        let bytes = try FFmpegStreams.make(seconds: 8)
        let garbage = [UInt8](repeating: 0xAB, count: 777)
        let spliced = Array(bytes[0..<(188 * 500)]) + garbage + Array(bytes[(188 * 500)...])
        let (segments, segmenter) = segment(spliced[...])
        #expect(segmenter.syncErrors >= 1)
        #expect(segments.count == 2)
    }
}

@Suite("Looped TS file paced by the wall clock")
struct TSLoopTests {
    /// The built-in channel's clip, as shipped.
    static func sampleClip() throws -> [UInt8] {
        // Tests/SwiftVSMediaTests/TSTests.swift → the repository.
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/SwiftVSIPTV/Resources/sample.ts")
        return [UInt8](try Data(contentsOf: path))
    }

    @Test(
        "the shipped clip loops seamlessly: no CC errors, no discontinuities, contiguous numbers, audio never repeats")
    func seamless() throws {
        let loop = try TSLoop(file: Self.sampleClip())
        #expect(loop.duration == 16 * 90_000)
        // Fed as the channel's driver does: each packet at its due time.
        var segmenter = TSSegmenter(targetDuration: 2)
        var segments: [TSSegment] = []
        var (l, i) = loop.position(at: Int64(1_800_000_000) * 90_000)
        var packet: [UInt8] = []
        var audioPTS: [Int64] = []
        for _ in 0..<(loop.packetCount * 5 / 2) {
            packet.removeAll(keepingCapacity: true)
            loop.packet(loop: l, index: i, into: &packet)
            packet.withUnsafeBytes { b in
                guard let h = TSPacketHeader(b), h.pid == 0x101, h.unitStart,
                    let at = TSTimestamp.pesTimestampOffsets(b, pes: h.payloadOffset, end: 188).pts
                else { return }
                audioPTS.append(TSTimestamp.read(b, at: at)!)
            }
            segments += segmenter.feed(packet, wallClock: Double(loop.due(loop: l, index: i)) / 90_000)
            i += 1
            if i == loop.packetCount { i = 0; l += 1 }
        }
        #expect(segmenter.demuxer.ccErrors == 0)
        #expect(segmenter.discontinuities == 0 && segmenter.gaps == 0)
        #expect(segments.count >= 18)
        // AAC runs a frame past the video; that frame is left out so audio timestamps never repeat across loops.
        // Each audio PES holds several frames; the one after the loop point must not start inside the one before.
        let steps = zip(audioPTS, audioPTS.dropFirst()).map { $1 - $0 }
        let typical = steps.sorted()[steps.count / 2]
        #expect(
            audioPTS.count > 10 && steps.allSatisfy { $0 >= typical * 9 / 10 },
            "audio PES steps: \(Set(steps).sorted())")
        #expect(
            zip(segments, segments.dropFirst()).allSatisfy {
                $1.number == $0.number + 1 && abs($0.duration - 2) < 0.001
            })
        // Aligned to the wall clock: segment times are the loop's own, near 1.8e9 s.
        #expect(abs(segments[0].programDateTime - 1_800_000_000) < 20)
    }

    @Test("the position in the file is a function of the time of day")
    func position() throws {
        let loop = try TSLoop(file: FFmpegStreams.make(seconds: 8))
        let t = Int64(1_800_000_005) * 90_000
        let (l, i) = loop.position(at: t)
        #expect(loop.due(loop: l, index: i) >= t)
        if i > 0 { #expect(loop.due(loop: l, index: i - 1) < t) }
        #expect(throws: TSLoop.LoadError.self) { try TSLoop(file: [UInt8](repeating: 0x47, count: 1000)) }
    }
}

@Suite("HLS playlists, archive names, byte ranges")
struct HLSPlaylistTests {
    func infos(_ numbers: [Int64], discontinuityAt: Int64? = nil) -> [SegmentInfo] {
        var previous: Int64? = nil
        var dsn = 0
        return numbers.map { n in
            defer { previous = n }
            if n == discontinuityAt { dsn += 1 }
            return SegmentInfo(
                number: n, duration: 2.002, programDateTime: 1_800_000_000 + Double(n) * 2,
                discontinuity: n == discontinuityAt, follows: previous, byteCount: 1000,
                discontinuitySequence: dsn)
        }
    }

    @Test("live window: last N entries, media sequence, target duration, program date time")
    func live() {
        let text = HLSPlaylist.live(infos(Array(100...109)), window: 3, targetDuration: 2)
        #expect(
            text == """
                #EXTM3U
                #EXT-X-VERSION:3
                #EXT-X-INDEPENDENT-SEGMENTS
                #EXT-X-TARGETDURATION:2
                #EXT-X-MEDIA-SEQUENCE:107
                #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:03:34.000Z
                #EXTINF:2.002,
                107.ts
                #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:03:36.000Z
                #EXTINF:2.002,
                108.ts
                #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:03:38.000Z
                #EXTINF:2.002,
                109.ts

                """)
    }

    @Test("a hole in the numbering ends the window: implicit sequence numbers must stay true")
    func holes() {
        let window = HLSPlaylist.liveWindow(infos([1, 2, 3, 5, 6]), window: 5)
        #expect(window.map(\.number) == [5, 6])
        #expect(
            HLSPlaylist.targetDuration(
                infos([1]).map {
                    var s = $0; s.duration = 2.6; return s
                }, configured: 2) == 3)
    }

    @Test("discontinuity tag and discontinuity sequence")
    func discontinuitySequence() {
        let all = infos(Array(1...6), discontinuityAt: 4)
        let withTag = HLSPlaylist.live(all, window: 4, targetDuration: 2)
        #expect(withTag.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:08.000Z"))
        #expect(!withTag.contains("DISCONTINUITY-SEQUENCE"))
        let after = HLSPlaylist.live(all, window: 2, targetDuration: 2)
        #expect(after.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"))
        #expect(!after.contains("#EXT-X-DISCONTINUITY\n"))
    }

    @Test("archive playlists by start and duration, VOD or EVENT")
    func archive() {
        #expect(HLSPlaylist.parseArchiveName("index-1800000000-3600.m3u8")! == (1_800_000_000, 3600))
        #expect(HLSPlaylist.parseArchiveName("index-1800000000-now.m3u8")! == (1_800_000_000, nil))
        #expect(HLSPlaylist.parseArchiveName("index-x-10.m3u8") == nil)
        #expect(HLSPlaylist.parseArchiveName("index-5-0.m3u8") == nil)
        let range = HLSPlaylist.archiveRange(infos(Array(0...20)), start: 1_800_000_005, end: 1_800_000_011)
        #expect(range.map(\.number) == [2, 3, 4, 5])
        let vod = HLSPlaylist.archive(range, complete: true, targetDuration: 2)
        #expect(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && vod.hasSuffix("#EXT-X-ENDLIST\n"))
        #expect(vod.contains("#EXT-X-MEDIA-SEQUENCE:2\n"))
        #expect(!HLSPlaylist.archive(range, complete: false, targetDuration: 2).contains("ENDLIST"))
    }

    @Test("Range headers")
    func ranges() {
        #expect(ByteRangeRequest.parse(nil, length: 100) == .full)
        #expect(ByteRangeRequest.parse("bytes=0-9", length: 100) == .partial(0..<10))
        #expect(ByteRangeRequest.parse("bytes=90-", length: 100) == .partial(90..<100))
        #expect(ByteRangeRequest.parse("bytes=-10", length: 100) == .partial(90..<100))
        #expect(ByteRangeRequest.parse("bytes=50-500", length: 100) == .partial(50..<100))
        #expect(ByteRangeRequest.parse("bytes=100-", length: 100) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=0-1,5-6", length: 100) == .full)
        #expect(ByteRangeRequest.parse("items=0-1", length: 100) == .full)
    }

    @Test("dates and decimals")
    func formatting() {
        #expect(ISO8601.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(ISO8601.format(1_795_000_000.25) == "2026-11-18T11:06:40.250Z")
        #expect(
            HLSPlaylist.decimal(2) == "2.000" && HLSPlaylist.decimal(1.9995) == "2.000"
                && HLSPlaylist.decimal(0.04) == "0.040")
    }
}
