import Testing

@testable import SwiftVSBench

@Suite("What a simulated HLS viewer reads")
struct HLSViewerModelTests {
    @Test("media and master playlists, relative and absolute URIs")
    func playlists() {
        let media = HLSPlaylistSummary(
            text: "#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXTINF:4.0,\r\n10.ts\r\n#EXTINF:4.0,\r\n11.ts\r\n")
        #expect(
            media.targetDuration == 4 && media.segments == ["10.ts", "11.ts"] && media.variants.isEmpty && !media.ended)
        let master = HLSPlaylistSummary(text: "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n")
        #expect(master.variants == ["low/index.m3u8"] && master.segments.isEmpty)
        #expect(
            HLSPlaylistSummary.resolve("11.ts", against: "/live/demo/index.m3u8?x=1", host: "h:1") == "/live/demo/11.ts"
        )
        #expect(
            HLSPlaylistSummary.resolve("../vod/a.ts", against: "/live/demo/index.m3u8", host: "h:1") == "/live/vod/a.ts"
        )
        #expect(HLSPlaylistSummary.resolve("/abs/a.ts", against: "/live/demo/index.m3u8", host: "h:1") == "/abs/a.ts")
        #expect(HLSPlaylistSummary.resolve("http://h:1/x/a.ts", against: "/p.m3u8", host: "h:1") == "/x/a.ts")
        #expect(HLSPlaylistSummary.resolve("http://other:1/x/a.ts", against: "/p.m3u8", host: "h:1") == nil)
    }

    @Test("chunked bodies")
    func chunked() {
        let body = Array("4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n".utf8)
        #expect(dechunk(body[...]) == Array("Wikipedia".utf8))
        #expect(dechunk(Array("zz\r\n".utf8)[...]) == nil)
    }
}
