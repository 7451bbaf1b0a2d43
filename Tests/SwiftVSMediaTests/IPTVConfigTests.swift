import SwiftVSConfigKit
import Testing
@testable import SwiftVSMedia

@Suite("IPTV config and channel sources")
struct IPTVConfigTests {
    @Test("sources: builtin, push, file, unicast and multicast UDP")
    func sources() throws {
        #expect(try ChannelSource(parsing: "builtin") == .builtin)
        #expect(try ChannelSource(parsing: "push") == .push)
        #expect(try ChannelSource(parsing: "file:/srv/a.ts") == .file("/srv/a.ts"))
        #expect(try ChannelSource(parsing: "file:///srv/a.ts") == .file("/srv/a.ts"))
        #expect(try ChannelSource(parsing: "clips/a.ts") == .file("clips/a.ts"))
        #expect(
            try ChannelSource(parsing: "udp://@:1234") == .udp(bind: Endpoint(host: "0.0.0.0", port: 1234), group: nil))
        #expect(
            try ChannelSource(parsing: "udp://127.0.0.1:5000")
                == .udp(bind: Endpoint(host: "127.0.0.1", port: 5000), group: nil))
        #expect(
            try ChannelSource(parsing: "udp://239.0.0.1:1234")
                == .udp(bind: Endpoint(host: "0.0.0.0", port: 1234), group: "239.0.0.1"))
        #expect(
            try ChannelSource(parsing: "udp://239.0.0.1:1234?interface=10.0.0.5")
                == .udp(bind: Endpoint(host: "10.0.0.5", port: 1234), group: "239.0.0.1"))
        #expect(throws: ConfigSourceError.self) { try ChannelSource(parsing: "rtsp://cam/1") }
        #expect(throws: ConfigSourceError.self) { try ChannelSource(parsing: "udp://nohost") }
    }

    @Test("a full file, defaults, and every problem with its path")
    func load() throws {
        let config = try IPTVConfig.load(
            yaml: """
                listen: 0.0.0.0:8090
                segment_duration: 4s
                window: 5
                dvr: {path: /var/dvr, window: 3h, max_size: 500MB}
                vod: {path: /srv/vod, cache: 64MB}
                epg: /srv/epg.xml
                channels:
                  - {id: news, name: News 24, group: News, logo: "http://x/n.png", source: "udp://239.1.1.1:1234"}
                  - {id: loop}
                """)
        #expect(config.listen == (try Endpoint(parsing: "0.0.0.0:8090")))
        #expect(config.segmentDuration == 4 && config.window == 5 && config.memorySegments == 30)
        #expect(config.dvr == DVRConfig(path: "/var/dvr", window: 10800, maxBytes: 500 << 20))
        #expect(config.vod == "/srv/vod" && config.vodCacheBytes == 64 << 20 && config.epg == "/srv/epg.xml")
        #expect(config.channels.map(\.id) == ["news", "loop"] && config.channels[1].source == .builtin)
        #expect(config.channels[0].name == "News 24" && config.channels[1].name == "loop")

        do {
            _ = try IPTVConfig.load(
                yaml: """
                    segment_duration: 0.1s
                    dvr: {window: 1h}
                    channels:
                      - {id: a, source: "udp://@:5000"}
                      - {id: b, source: "udp://@:5000"}
                      - {name: c}
                    """)
            Issue.record("expected problems")
        } catch {
            let paths = error.problems.map(\.path)
            #expect(
                paths.contains("segment_duration") && paths.contains("dvr.path") && paths.contains("channels[1].source")
                    && paths.contains("channels[2].id"), "\(error.problems)")
        }
    }
}
