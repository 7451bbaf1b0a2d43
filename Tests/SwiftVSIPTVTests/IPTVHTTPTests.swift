import Foundation
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One replica with every feature on: the built-in channel, a channel pushed over HTTP, a DVR, a VOD library, an EPG.
/// Checked from the outside with curl, ffprobe and ffmpeg, as users would.
@Suite("swiftvs iptv over HTTP: catalogue, live and catch-up HLS, VOD, push ingest, errors")
struct IPTVHTTPTests {
    struct Setup {
        var replica: Replica
        var dir: String
        var config: String
        var pusher: ChildProcess
    }

    static func makeVOD(_ dir: String) throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/vod/clip", withIntermediateDirectories: true)
        let src = [
            "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-f", "lavfi", "-i",
            "sine=frequency=440:sample_rate=48000", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-g", "50", "-c:a", "aac",
        ]
        var r = try tool(
            "ffmpeg",
            src + [
                "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
                "-hls_segment_filename", "\(dir)/vod/clip/seg_%03d.ts", "\(dir)/vod/clip/index.m3u8",
            ])
        guard r.code == 0 else { throw TestSupportError("ffmpeg HLS VOD: \(r.err)") }
        r = try tool("ffmpeg", src + ["-movflags", "+faststart", "\(dir)/vod/movie.mp4"])
        guard r.code == 0 else { throw TestSupportError("ffmpeg MP4: \(r.err)") }
        try "secret".write(toFile: "\(dir)/outside.txt", atomically: true, encoding: .utf8)
        try """
        <?xml version="1.0" encoding="UTF-8"?>
        <tv><channel id="demo"><display-name>Demo One</display-name></channel></tv>
        """.write(toFile: "\(dir)/epg.xml", atomically: true, encoding: .utf8)
    }

    func start() throws -> Setup {
        let dir = try temporaryDirectory("iptv-http")
        try Self.makeVOD(dir)
        let port = try freePort()
        let config = "\(dir)/iptv.yaml"
        try """
        listen: 127.0.0.1:\(port)
        segment_duration: 2s
        window: 4
        dvr: {path: \(dir)/dvr, window: 10m, max_size: 50MB}
        vod: \(dir)/vod
        epg: \(dir)/epg.xml
        channels:
          - {id: demo, name: Demo One, group: News, source: builtin}
          - {id: pushed, name: Pushed, group: Sport, source: push}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let replica = try Replica(["--config", config], port: port)
        try replica.waitServing()
        // The encoder pushes TS with POST (chunked) to /ingest/pushed, as ffmpeg users do.
        let pusher = try liveEncoder(seconds: 40, outputs: ["http://127.0.0.1:\(port)/ingest/pushed"])
        do {
            try replica.waitLive(seconds: 40)
        } catch {
            pusher.stop(); replica.stop()
            throw TestSupportError("\(error); pusher: \(pusher.stderr)")
        }
        return Setup(replica: replica, dir: dir, config: config, pusher: pusher)
    }

    @Test("catalogue, playlists, segments, ranges, HEAD, cache headers, VOD, archive, restart keeps the archive")
    func everything() throws {
        var setup = try self.start()
        defer { setup.pusher.stop(); setup.pusher.removeOutput(); setup.replica.stop() }
        let base = setup.replica.base

        // Catalogue.
        let m3u = try curl("\(base)/channels.m3u")
        #expect(m3u.status == 200)
        #expect(m3u.body.hasPrefix("#EXTM3U url-tvg=\"http://127.0.0.1:\(setup.replica.port)/epg.xml\""))
        #expect(m3u.body.contains("#EXTINF:-1 tvg-id=\"demo\" tvg-name=\"Demo One\" group-title=\"News\""))
        #expect(m3u.body.contains("http://127.0.0.1:\(setup.replica.port)/live/pushed/index.m3u8"))
        struct ChannelJSON: Decodable {
            var id: String; var live: Bool; var group: String?; var url: String; var ccErrors: Int
        }
        let list = try JSONDecoder().decode([ChannelJSON].self, from: Data(try curl("\(base)/api/channels").body.utf8))
        #expect(list.map(\.id) == ["demo", "pushed"] && list.allSatisfy(\.live))
        #expect(list[0].url == "live/demo/index.m3u8" && list[0].ccErrors == 0)
        #expect(try curl("\(base)/epg.xml").body.contains("<display-name>Demo One</display-name>"))

        // Live playlist and segments.
        let playlistHeaders = try curlHeaders("\(base)/live/pushed/index.m3u8")
        #expect(playlistHeaders.headers["content-type"] == "application/vnd.apple.mpegurl")
        #expect(playlistHeaders.headers["cache-control"] == "max-age=1")
        let playlist = try curl("\(base)/live/demo/index.m3u8").body
        #expect(playlist.contains("#EXT-X-TARGETDURATION:2\n") && playlist.contains("#EXT-X-PROGRAM-DATE-TIME:"))
        #expect(entries(playlist).count == 4)
        let segment = playlist.split(separator: "\n").last.map(String.init)!
        let get = try curlHeaders("\(base)/live/demo/\(segment)")
        #expect(get.status == 200 && get.headers["content-type"] == "video/mp2t")
        #expect(get.headers["cache-control"] == "public, max-age=31536000, immutable")
        let size = Int(get.headers["content-length"] ?? "") ?? -1
        #expect(get.bodyBytes == size && size > 0)
        let head = try curlHeaders("\(base)/live/demo/\(segment)", ["-I"])
        #expect(head.status == 200 && head.headers["content-length"] == String(size) && head.bodyBytes == 0)
        let range = try curlHeaders("\(base)/live/demo/\(segment)", ["-r", "188-375"])
        #expect(
            range.status == 206 && range.bodyBytes == 188 && range.headers["content-range"] == "bytes 188-375/\(size)")
        #expect(try curlHeaders("\(base)/live/demo/\(segment)", ["-r", "\(size)-"]).status == 416)
        #expect(try curl("\(base)/live/demo/1.ts").status == 404)
        #expect(try curl("\(base)/live/nope/index.m3u8").status == 404)
        let probe = try tool(
            "ffprobe",
            [
                "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                "\(base)/live/pushed/index.m3u8",
            ])
        #expect(
            probe.code == 0 && Set(probe.out.split(separator: "\n").map(String.init)) == ["h264", "aac"], "\(probe.err)"
        )

        // Metrics.
        let metrics = try curl("\(base)/metrics").body
        for name in [
            "swiftvs_iptv_viewers{channel=\"demo\"}", "swiftvs_iptv_bytes_out_total{channel=\"demo\"}",
            "swiftvs_iptv_ingest_bytes_per_second{channel=\"pushed\"}",
            "swiftvs_iptv_cc_errors_total{channel=\"pushed\"} 0",
            "swiftvs_iptv_channel_live{channel=\"pushed\"} 1",
        ] {
            #expect(metrics.contains(name), "metrics lack \(name)")
        }
        // In Prometheus's own format and naming rules (base units: bytes, seconds).
        let file = "\(NSTemporaryDirectory())swiftvs-iptv-metrics-\(UUID().uuidString.prefix(8)).txt"
        defer { unlink(file) }
        try metrics.write(toFile: file, atomically: true, encoding: .utf8)
        let promtool = try tool("sh", ["-c", "promtool check metrics < \(file)"])
        #expect(promtool.code == 0, "promtool: \(promtool.out) \(promtool.err)")

        // VOD: an HLS folder as it is, an MP4 with ranges, nothing outside the library.
        let vod = try tool(
            "ffprobe",
            ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "\(base)/vod/clip/index.m3u8"])
        #expect(
            vod.code == 0 && abs((Double(vod.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) - 6) < 0.5,
            "\(vod.err)")
        let mp4 = try curlHeaders("\(base)/vod/movie.mp4", ["-r", "0-99"])
        #expect(mp4.status == 206 && mp4.bodyBytes == 100 && mp4.headers["content-type"] == "video/mp4")
        #expect(try curl("\(base)/vod/../outside.txt", ["--path-as-is"]).status == 404)
        #expect(try curl("\(base)/vod/%2e%2e/outside.txt", ["--path-as-is"]).status == 404)
        #expect(try curl("\(base)/api/vod").body.contains("\"url\" : \"vod/clip/index.m3u8\""))

        // Web UI: relative URLs only.
        let index = try curl("\(base)/").body
        #expect(index.contains("fetch('api/channels'") && !index.contains("http://"))
        #expect(try curl("\(base)/watch.html").body.contains("canPlayType('application/vnd.apple.mpegurl')"))

        // Push ingest goes only to push channels; other methods are refused with a reason.
        let refused = try curl("\(base)/ingest/demo", ["-X", "POST", "--data-binary", "x"])
        #expect(refused.status == 409 && refused.body.contains("set its source to push"))
        let second = try curl("\(base)/ingest/pushed", ["-X", "POST", "--data-binary", "x"])
        #expect(second.status == 409 && second.body.contains("one push at a time"), "\(second)")
        #expect(try curl("\(base)/live/demo/index.m3u8", ["-X", "DELETE"]).status == 405)

        // Catch-up: a finished range is a VOD playlist that ffmpeg reads to the end.
        var archive = (status: 0, body: "")
        let pdts = entries(playlist).values.map(\.pdt).sorted()
        let firstTime = Self.epoch(pdts.first!)
        let deadline = Date().addingTimeInterval(20)
        let name = "index-\(Int(firstTime))-5.m3u8"
        repeat {
            archive = try curl("\(base)/live/demo/\(name)")
            if archive.body.hasSuffix("#EXT-X-ENDLIST\n") { break }
            usleep(500_000)
        } while Date() < deadline
        #expect(
            archive.status == 200 && archive.body.contains("#EXT-X-PLAYLIST-TYPE:VOD")
                && archive.body.hasSuffix("#EXT-X-ENDLIST\n"), "\(archive)")
        let read = try tool("ffmpeg", ["-v", "error", "-i", "\(base)/live/demo/\(name)", "-f", "null", "-"])
        #expect(read.code == 0 && read.err.isEmpty, "\(read.err)")
        #expect(try curl("\(base)/live/demo/index-1000-10.m3u8").status == 404)

        // A restart keeps the archive: the same range gives the same playlist, from disk. (The pusher's connection
        // ends with the old process, so only the built-in channel comes back live.)
        setup.replica.stop()
        setup.replica = try Replica(["--config", setup.config], port: setup.replica.port)
        try setup.replica.waitServing()
        let again = try curl("\(base)/live/demo/\(name)")
        #expect(again.status == 200 && entries(again.body).keys.sorted() == entries(archive.body).keys.sorted())
        let old = entries(archive.body).keys.sorted().first!
        #expect(try curlHeaders("\(base)/live/demo/\(old)").status == 200)
    }

    static func epoch(_ pdtLine: String) -> Double {
        // #EXT-X-PROGRAM-DATE-TIME:2026-11-22T18:24:27.700Z
        let text = String(pdtLine.dropFirst("#EXT-X-PROGRAM-DATE-TIME:".count))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)?.timeIntervalSince1970 ?? 0
    }

    @Test("the archive keeps to its size bound: oldest segments go first, on disk and in the index")
    func archiveSizeBound() throws {
        let dir = try temporaryDirectory("iptv-dvr")
        let port = try freePort()
        try """
        listen: 127.0.0.1:\(port)
        window: 3
        dvr: {path: \(dir)/dvr, window: 1h, max_size: 200KB}
        channels: [{id: demo}]
        """.write(toFile: "\(dir)/iptv.yaml", atomically: true, encoding: .utf8)
        let replica = try Replica(["--config", "\(dir)/iptv.yaml"], port: port)
        defer { replica.stop() }
        try replica.waitLive()
        struct ChannelJSON: Decodable { var archiveSegments: Int; var archiveBytes: Int64 }
        func channel() throws -> ChannelJSON {
            try JSONDecoder().decode(
                [ChannelJSON].self, from: Data(try curl("\(replica.base)/api/channels").body.utf8))[0]
        }
        // Enough archive to be pruned: more segments written than 200 KB holds.
        try waitUntilBlocking("the archive holds 2 segments", seconds: 30) { try channel().archiveSegments >= 2 }
        var status = ChannelJSON(archiveSegments: 0, archiveBytes: 0)
        var files: [String] = []
        for _ in 0..<10 {  // a segment may be between its write and the pruning of the oldest: look again
            status = try channel()
            files = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/dvr/demo").filter {
                $0.hasSuffix(".ts")
            }
            if files.count == status.archiveSegments { break }
            usleep(200_000)
        }
        // The built-in channel's segments are about 57 KB: three fit in 200 KB.
        #expect(status.archiveSegments >= 2 && status.archiveBytes <= 200 * 1024, "\(status)")
        #expect(files.count == status.archiveSegments, "\(files)")
        let sizes = try files.map {
            try FileManager.default.attributesOfItem(atPath: "\(dir)/dvr/demo/\($0)")[.size] as! Int
        }
        #expect(sizes.reduce(0, +) <= 200 * 1024)
    }

    @Test("swiftvs bench hls: simulated viewers follow the live edge of a replica")
    func benchViewers() throws {
        let replica = try Replica([])
        defer { replica.stop() }
        try replica.waitLive()
        let dir = try temporaryDirectory("bench-hls")
        let r = try tool(
            swiftvsBinary.path,
            [
                "bench", "hls", "\(replica.base)/live/demo/index.m3u8", "--viewers", "40",
                "-d", "4s", "--quiet", "--json", "\(dir)/v.json",
            ], seconds: 60)
        #expect(r.code == 0, "\(r.err)")
        struct Report: Decodable {
            var periodSeconds: Double; var playlists: Int; var segments: Int; var lateCycles: Int;
            var errors: [String: Int]
        }
        let report = try JSONDecoder().decode(
            Report.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/v.json")))
        #expect(report.periodSeconds == 2 && report.errors.isEmpty && report.lateCycles == 0, "\(r.out)")
        // 40 viewers × (4 s + 2 s ramp) / 2 s: about 120 cycles, each a playlist and (unless stale) a segment.
        #expect(report.playlists >= 100 && report.segments >= 80, "\(r.out)")
        #expect(r.out.contains("Cycle") && r.out.contains("Late cycles    0"))
    }

    @Test("with an ingest token, pushes without it get 401; with it (header or query) they are taken")
    func ingestToken() throws {
        let replica = try Replica(["--channel", "p=push", "--ingest-token", "s3cret"])
        defer { replica.stop() }
        try replica.waitServing()
        let clip = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Sources/SwiftVSIPTV/Resources/sample.ts").path
        let url = "\(replica.base)/ingest/p"
        let none = try curl(url, ["--data-binary", "@\(clip)"])
        #expect(none.status == 401 && none.body.contains("ingest token"))
        #expect(try curl(url, ["--data-binary", "@\(clip)", "-H", "Authorization: Bearer wrong"]).status == 401)
        let header = try curl(url, ["--data-binary", "@\(clip)", "-H", "Authorization: Bearer s3cret"])
        #expect(header.status == 200 && header.body.contains("received 458720 bytes"), "\(header)")
        #expect(try curl("\(url)?token=s3cret", ["--data-binary", "@\(clip)"]).status == 200)
        struct ChannelJSON: Decodable { var bytesIn: Int; var segments: Int }
        let status = try JSONDecoder().decode(
            [ChannelJSON].self, from: Data(try curl("\(replica.base)/api/channels").body.utf8))[0]
        #expect(status.bytesIn == 2 * 458_720 && status.segments >= 6, "\(status)")
    }

    @Test("config problems are reported with key paths and lines, and nothing starts")
    func configErrors() throws {
        let dir = try temporaryDirectory("iptv-config")
        try """
        listen: 127.0.0.1:99999
        windw: 5
        channels:
          - {id: "bad id", source: builtin}
          - {id: ok, source: "udp://300.1.1.1:5000"}
          - {id: ok, source: builtin}
          - {id: cam, source: rtsp://x}
        """.write(toFile: "\(dir)/bad.yaml", atomically: true, encoding: .utf8)
        let r = try tool(swiftvsBinary.path, ["iptv", "--check-config", "\(dir)/bad.yaml"])
        #expect(r.code == 2)
        for expected in [
            "listen", "windw", "did you mean 'window'", "channels[0].id", "channels[1].source",
            "channels[2].id", "used twice", "channels[3].source", "line",
        ] {
            #expect(r.err.contains(expected), "missing '\(expected)' in: \(r.err)")
        }
        let good = try tool(swiftvsBinary.path, ["iptv", "--check-config", "\(setupExample())"])
        #expect(good.code == 0 && good.out.contains("valid"), "\(good.err)")
        let flag = try tool(swiftvsBinary.path, ["iptv", "--channel", "x=ftp://nope"])
        #expect(flag.code != 0 && flag.err.contains("--channel"))
    }

    func setupExample() -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("examples/iptv.yaml").path
    }
}
