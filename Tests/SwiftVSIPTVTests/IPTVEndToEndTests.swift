import Foundation
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Director config: HTTP, round-robin, over the replicas, with /healthz as the health check.
func directorYAML(port: Int, admin: Int, replicas: [Int]) -> String {
    """
    admin: 127.0.0.1:\(admin)
    services:
      - name: iptv
        listen: 127.0.0.1:\(port)
        protocol: http
        scheduler: rr
        retries: 2
        timeouts: {connect: 1s}
        health: {check: http, path: /healthz, interval: 500ms, timeout: 400ms, rise: 2, fall: 1}
        servers:
    \(replicas.map { "      - address: 127.0.0.1:\($0)" }.joined(separator: "\n"))
    """
}

func startDirector(replicas: [Int]) throws -> (process: ChildProcess, port: Int) {
    let port = try freePort(), admin = try freePort()
    let dir = try temporaryDirectory("director")
    let path = dir + "/director.yaml"
    try directorYAML(port: port, admin: admin, replicas: replicas).write(
        toFile: path, atomically: true, encoding: .utf8)
    let process = try ChildProcess(swiftvsBinary.path, ["director", "--config", path])
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline {
        if (try? curl("http://127.0.0.1:\(port)/healthz"))?.status == 200 { return (process, port) }
        guard process.isRunning else { throw TestSupportError("director exited: \(process.stderr)") }
        usleep(200_000)
    }
    process.stop()
    throw TestSupportError("director not serving on \(port): \(process.stderr)")
}

@Suite("IPTV end to end: replicas agree entry for entry; a director keeps viewers playing", .serialized)
struct IPTVEndToEndTests {
    @Test(
        "ffmpeg feeds two replicas over UDP; playlists agree; ffmpeg plays 20 s through a director while a replica is killed"
    )
    func udpReplicasBehindDirector() throws {
        let udp1 = try freePort(), udp2 = try freePort()
        let r1 = try Replica(["--channel", "live=udp://127.0.0.1:\(udp1)", "--window", "5"])
        defer { r1.stop() }
        let encoder = try liveEncoder(
            seconds: 90,
            outputs: [
                "udp://127.0.0.1:\(udp1)?pkt_size=1316",
                "udp://127.0.0.1:\(udp2)?pkt_size=1316",
            ])
        defer { encoder.stop(); encoder.removeOutput() }
        // The second replica joins the feed once the first is live (segments published, so mid-stream and, with
        // 2 s GOPs, almost surely mid-GOP): it must still publish the same entries.
        try r1.waitLive(seconds: 40)
        let r2 = try Replica(["--channel", "live=udp://127.0.0.1:\(udp2)", "--window", "5"])
        defer { r2.stop() }
        try r2.waitLive(seconds: 40)

        var identical = false
        var compared = 0
        for _ in 0..<20 where !identical {
            let p1 = try curl("\(r1.base)/live/live/index.m3u8").body,
                p2 = try curl("\(r2.base)/live/live/index.m3u8").body
            let e1 = entries(p1), e2 = entries(p2)
            let common = Set(e1.keys).intersection(e2.keys)
            #expect(common.count >= 3, "replicas share too few entries:\n\(p1)\n---\n\(p2)")
            for uri in common {
                #expect(e1[uri]! == e2[uri]!, "entry \(uri) differs:\n\(p1)\n---\n\(p2)")
            }
            compared += common.count
            identical = p1 == p2
            if !identical { usleep(300_000) }  // one was a segment ahead; ask again
        }
        #expect(identical, "the two replicas never served the same playlist")
        // The same segment is the same bytes on both.
        let last = try curl("\(r1.base)/live/live/index.m3u8").body.split(separator: "\n").last.map(String.init) ?? ""
        let dir = try temporaryDirectory("segments")
        _ = try tool("curl", ["-s", "-o", "\(dir)/a.ts", "\(r1.base)/live/live/\(last)"])
        _ = try tool("curl", ["-s", "-o", "\(dir)/b.ts", "\(r2.base)/live/live/\(last)"])
        let a = FileManager.default.contents(atPath: "\(dir)/a.ts"),
            b = FileManager.default.contents(atPath: "\(dir)/b.ts")
        #expect(a != nil && a == b && (a?.count ?? 0) > 10_000, "segment \(last) differs between replicas")

        let (director, port) = try startDirector(replicas: [r1.port, r2.port])
        defer { director.stop(); director.removeOutput() }
        let progress = "\(dir)/progress.txt"
        let started = Date()
        let reader = try ChildProcess(
            "/usr/bin/env",
            [
                "ffmpeg",
                "-v", "error", "-progress", progress, "-live_start_index", "-1", "-t", "20",
                "-i", "http://127.0.0.1:\(port)/live/live/index.m3u8", "-f", "null", "-",
            ])
        defer { reader.removeOutput() }
        func mediaRead() -> Int {
            let report = (try? String(contentsOfFile: progress, encoding: .utf8)) ?? ""
            return report.split(separator: "\n").filter { $0.hasPrefix("out_time_us=") }.last
                .flatMap { Int($0.dropFirst("out_time_us=".count)) } ?? 0
        }
        // A replica dies while the viewer plays: once ffmpeg has read 6 s of media through the director.
        try waitUntilBlocking("ffmpeg plays through the director", seconds: 30) { mediaRead() >= 6_000_000 }
        kill(r1.process.pid, SIGKILL)
        let code = reader.wait(seconds: 60)
        let elapsed = Date().timeIntervalSince(started)
        let outTime = mediaRead()
        print(
            "iptv e2e: compared \(compared) common entries; ffmpeg rc=\(code) read \(Double(outTime) / 1e6)s of media in \(String(format: "%.1f", elapsed))s; stderr: \(reader.stderr)"
        )
        #expect(code == 0)
        #expect(
            reader.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "ffmpeg reported: \(reader.stderr)")
        #expect(outTime >= 19_000_000)
        #expect(elapsed >= 15, "ffmpeg should have played in real time from the live edge")
        #expect(r2.process.isRunning)
    }

    @Test("headless Chromium plays a live channel through the director: currentTime advances at least 8 s in 10 s")
    func chromiumPlaysThroughDirector() throws {
        let r1 = try Replica([])
        defer { r1.stop() }
        let r2 = try Replica([])
        defer { r2.stop() }
        try r1.waitLive()
        try r2.waitLive()
        let (director, port) = try startDirector(replicas: [r1.port, r2.port])
        defer { director.stop(); director.removeOutput() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("browser/hls_play_check.py").path
        let result = try tool("python3", [script, "http://127.0.0.1:\(port)/watch.html?ch=demo"], seconds: 120)
        print("chromium: \(result.out) \(result.err.suffix(2000))")
        #expect(result.code == 0, "\(result.err.suffix(3000))")
        struct Report: Decodable { var advance: Double; var wall: Double; var severe: [String] }
        let report = try JSONDecoder().decode(Report.self, from: Data(result.out.utf8))
        #expect(report.advance >= 8, "currentTime advanced \(report.advance)s in \(report.wall)s")
        #expect(report.severe.isEmpty, "console errors: \(report.severe)")

        // A browser without native HLS gets a clear message instead of a silent black box.
        let noHLS = try tool(
            "python3", [script, "--no-hls", "http://127.0.0.1:\(port)/watch.html?ch=demo"], seconds: 60)
        struct Message: Decodable { var message: String; var shown: Bool; var src: String? }
        let message = try JSONDecoder().decode(Message.self, from: Data(noHLS.out.utf8))
        #expect(
            message.shown && message.message.contains("cannot play HLS") && message.src == nil,
            "\(noHLS.out) \(noHLS.err.suffix(1000))")
    }
}
