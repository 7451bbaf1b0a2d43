import Foundation
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The classic IPTV head end: one multicast feed, joined by every replica. Runs in a network namespace of its own
/// (only `lo`, with a multicast route), so nothing leaves this test.
@Suite(
    "IPTV multicast ingest (network namespace, root)", .serialized,
    .enabled(if: getuid() == 0, "needs root to create a network namespace"))
struct IPTVMulticastTests {
    @Test("two replicas join one multicast group and publish the same playlist")
    func multicastReplicas() throws {
        let ns = "svs-iptv-mc-\(getpid())"
        for args in [
            ["netns", "add", ns], ["-n", ns, "link", "set", "lo", "up"],
            ["-n", ns, "link", "set", "lo", "multicast", "on"],
            ["-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo"],
        ] {
            let r = try tool("ip", args)
            try #require(r.code == 0, "ip \(args.joined(separator: " ")): \(r.err)")
        }
        defer { _ = try? tool("ip", ["netns", "del", ns]) }
        let inNS = ["netns", "exec", ns]
        let a = try ChildProcess(
            "/usr/bin/env",
            ["ip"] + inNS + [
                swiftvsBinary.path, "iptv", "--listen", "127.0.0.1:8001",
                "--channel", "tv=udp://239.7.7.7:5004", "--window", "3",
            ])
        defer { a.stop(); a.removeOutput() }
        let b = try ChildProcess(
            "/usr/bin/env",
            ["ip"] + inNS + [
                swiftvsBinary.path, "iptv", "--listen", "127.0.0.1:8002",
                "--channel", "tv=udp://239.7.7.7:5004?interface=127.0.0.1", "--window", "3",
            ])
        defer { b.stop(); b.removeOutput() }
        usleep(500_000)
        let encoder = try ChildProcess(
            "/usr/bin/env",
            ["ip"] + inNS + [
                "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-t", "30",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "mpegts",
                "udp://239.7.7.7:5004?pkt_size=1316&ttl=1",
            ])
        defer { encoder.stop(); encoder.removeOutput() }
        var same = false
        var last = ("", "")
        let deadline = Date().addingTimeInterval(25)
        while Date() < deadline, !same {
            usleep(500_000)
            let pa = try tool("ip", inNS + ["curl", "-s", "http://127.0.0.1:8001/live/tv/index.m3u8"]).out
            let pb = try tool("ip", inNS + ["curl", "-s", "http://127.0.0.1:8002/live/tv/index.m3u8"]).out
            last = (pa, pb)
            same = entries(pa).count == 3 && pa == pb
        }
        #expect(same, "playlists:\n\(last.0)\n---\n\(last.1)\n\(a.stderr)\n\(b.stderr)\n\(encoder.stderr)")
    }
}
