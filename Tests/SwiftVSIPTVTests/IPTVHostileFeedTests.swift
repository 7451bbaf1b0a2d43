import Foundation
import SwiftVSMedia
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A feed that starts one picture and never another must not grow the server's memory: the picture is cut at its
/// limit, dropped and counted, and the channel recovers once a real feed returns.
@Suite("IPTV ingest against a hostile feed", .serialized)
struct IPTVHostileFeedTests {
    /// The first PAT, PMT and video PES-start packets of an ffmpeg-made TS, and the video PID.
    static func realStart() throws -> (packets: [[UInt8]], videoPID: Int) {
        let dir = try temporaryDirectory("hostile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = "\(dir)/start.ts"
        let made = try tool(
            "ffmpeg",
            [
                "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-t", "1", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts", file,
            ])
        guard made.code == 0 else { throw TestSupportError("ffmpeg: \(made.err)") }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        var demuxer = TSDemuxer()
        var pat: [UInt8]?
        var pmt: [UInt8]?
        return try bytes.withUnsafeBytes { raw in
            var at = 0
            while at + TSPacketHeader.size <= raw.count {
                defer { at += TSPacketHeader.size }
                guard let header = TSPacketHeader(raw, at: at) else { continue }
                let packet = Array(raw[at..<(at + TSPacketHeader.size)])
                _ = demuxer.consume(raw, at: at, header: header)
                if header.unitStart && header.pid == 0 && pat == nil { pat = packet }
                if header.unitStart && header.pid == demuxer.pmtPID && pmt == nil { pmt = packet }
                if header.unitStart, let video = demuxer.videoPID, header.pid == video, let pat, let pmt {
                    return ([pat, pmt, packet], video)
                }
            }
            throw TestSupportError("no PAT, PMT and video PES start in ffmpeg's TS")
        }
    }

    static func rssKB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    static func metric(_ base: String, _ name: String) -> Double {
        let text = (try? curl("\(base)/metrics").body) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("swiftvs_iptv_\(name){") } ?? ""
        return Double(line.split(separator: " ").last ?? "") ?? -1
    }

    @Test("48 MB of one endless picture: RSS grows under 32 MB, the drop is counted, the channel recovers")
    func endlessPicture() throws {
        let (start, video) = try Self.realStart()
        let udp = try freePort()
        let replica = try Replica(["--channel", "fz=udp://127.0.0.1:\(udp)", "--window", "3"])
        defer { replica.stop() }
        try replica.waitServing()
        let before = Self.rssKB(replica.process.pid)

        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(udp).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        func send(_ datagram: [UInt8]) {
            _ = datagram.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
        let head = start.flatMap { $0 }
        send(head)
        // Seven packets on the video PID, payload only, never a payload-unit start: one picture that never ends.
        // Sent in bursts the socket buffer can hold, each read (or dropped by UDP) before the next, until the
        // server has read three times the picture limit: a busy machine reads slower, it does not read less.
        var datagram = [UInt8](repeating: 0xFF, count: 7 * TSPacketHeader.size)
        var cc = 0
        var sent = head.count
        var received = 0.0
        let enough = Double(3 * TSSegmenter.maxAccessUnitBytes)
        var bursts = 0
        while received < enough && bursts < 4000 {
            bursts += 1
            for _ in 0..<96 {
                for packet in 0..<7 {
                    let at = packet * TSPacketHeader.size
                    datagram[at] = TSPacketHeader.syncByte
                    datagram[at + 1] = UInt8((video >> 8) & 0x1F)
                    datagram[at + 2] = UInt8(video & 0xFF)
                    datagram[at + 3] = 0x10 | UInt8(cc)
                    cc = (cc + 1) & 0x0F
                }
                send(datagram)
                sent += datagram.count
            }
            // Read when the counter has all of it, or stops moving (UDP dropped the rest).
            var last = -1.0
            try waitUntilBlocking("the server has read the burst", seconds: 30) {
                let now = Self.metric(replica.base, "ingest_bytes_total")
                defer { last = now }
                return now >= Double(sent) || now == last
            }
            received = Self.metric(replica.base, "ingest_bytes_total")
        }
        try waitUntilBlocking("the dropped picture is counted", seconds: 10) {
            Self.metric(replica.base, "ingest_dropped_bytes_total") > 0
        }
        let grown = Self.rssKB(replica.process.pid) - before
        #expect(
            received > Double(2 * TSSegmenter.maxAccessUnitBytes),
            "the server read too little of the feed to test its bound: \(received) of \(sent) bytes")
        #expect(grown < 32 << 10, "RSS grew \(grown) kB on a feed of \(received) bytes")

        // A real feed again: the channel goes live and its segments decode.
        let encoder = try liveEncoder(seconds: 60, outputs: ["udp://127.0.0.1:\(udp)?pkt_size=1316"])
        defer { encoder.stop(); encoder.removeOutput() }
        try replica.waitLive(seconds: 40)
        let playlist = try curl("\(replica.base)/live/fz/index.m3u8").body
        let segment = try #require(playlist.split(separator: "\n").last { !$0.hasPrefix("#") })
        let probe = try tool(
            "ffprobe",
            [
                "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                "\(replica.base)/live/fz/\(segment)",
            ])
        #expect(probe.out.contains("h264"), "segment after recovery: \(probe.out) \(probe.err)")
    }
}
