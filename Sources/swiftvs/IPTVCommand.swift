import SwiftVSMedia
import SwiftVSConfigKit
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwiftVSCore
import SwiftVSIPTV
import SwiftVSSystem

struct IPTVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iptv",
        abstract:
            "Run the IPTV real server: MPEG-TS in (UDP, HTTP push, looped file), HLS live and catch-up out, VOD, web player.",
        discussion: """
            With no options it plays the built-in clip as channel 'demo' on http://127.0.0.1:8090/ (open it in a browser, or play http://127.0.0.1:8090/live/demo/index.m3u8).

            Sources (--channel ID=SOURCE, or 'source' in the config):
              builtin              the clip shipped with swiftvs, looped in real time
              file:PATH            a local TS file, looped in real time, paced by its PCR
              udp://@:1234         TS over UDP on port 1234 (unicast, any local address)
              udp://239.0.0.1:1234 a multicast group, joined (add ?interface=IP to pick the interface)
              push                 TS pushed over HTTP: ffmpeg ... -f mpegts http://HOST:PORT/ingest/ID
                                   (with --ingest-token T: ffmpeg -headers 'Authorization: Bearer T' ...)

            Replicas that ingest the same feed publish the same playlists and segments (numbers come from the stream's timestamps), so a director may spread viewers over them round-robin.

            Endpoints: / (channels), /watch.html?ch=ID (player), /live/ID/index.m3u8, /live/ID/index-START-DURATION.m3u8 (catch-up, needs --dvr), /vod/... (library), /channels.m3u, /api/channels, /epg.xml, /healthz (200 when every channel is live), /metrics.

            Examples:
              swiftvs iptv
              swiftvs iptv --listen 0.0.0.0:8090 --channel news=udp://239.0.0.1:1234 --dvr /var/lib/swiftvs/dvr
              ffmpeg -re -i in.ts -c copy -f mpegts 'udp://127.0.0.1:1234?pkt_size=1316' &
                swiftvs iptv --channel cam=udp://@:1234
              swiftvs iptv --config examples/iptv.yaml
              swiftvs iptv --check-config examples/iptv.yaml
            """
    )

    @Option(help: "A YAML config (see docs/iptv.md); flags given as well override it.")
    var config: String?

    @Option(help: "Validate a config file, print every problem with its key path and line, and exit.")
    var checkConfig: String?

    @Option(help: "Address and port to serve HTTP on (default 127.0.0.1:8090).")
    var listen: String?

    @Option(
        name: .customLong("channel"),
        help: "A channel as ID=SOURCE (repeat for more). Without any, channel 'demo' plays the built-in clip.")
    var channels: [String] = []

    @Option(help: "Serve this folder under /vod/ (HLS VOD folders as they are, MP4 with byte ranges).")
    var vod: String?

    @Option(help: "Keep a catch-up archive in this folder.")
    var dvr: String?

    @Option(help: "How far back the archive reaches, like 2h (default) or 7d... in seconds, m or h.")
    var dvrWindow: String?

    @Option(help: "Serve this XMLTV file as /epg.xml.")
    var epg: String?

    @Option(help: "Require this token on HTTP pushes (Authorization: Bearer TOKEN, or ?token=TOKEN).")
    var ingestToken: String?

    @Option(help: "Target segment duration, like 2 or 4s (cut at the first keyframe after it).")
    var segmentDuration: String?

    @Option(help: "Segments in the live playlist.")
    var window: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if self.config != nil && self.checkConfig != nil {
            throw ValidationError("give --config or --check-config, not both")
        }
    }

    func makeConfig() throws -> IPTVConfig {
        var config: IPTVConfig
        if let path = self.config ?? self.checkConfig {
            config = try loadOrExit(path) { (yaml, source) throws(ConfigError) in
                try IPTVConfig.load(yaml: yaml, source: source)
            }
        } else {
            config = IPTVConfig(channels: [])
        }
        do {
            if let listen = self.listen { config.listen = try Endpoint(parsing: listen) }
        } catch { throw ValidationError("--listen: \(error)") }
        for spec in self.channels {
            guard let eq = spec.firstIndex(of: "=") else {
                throw ValidationError("--channel '\(spec)': write ID=SOURCE, like news=udp://@:1234")
            }
            let id = String(spec[..<eq])
            guard IPTVConfig.isValidID(id) else {
                throw ValidationError("--channel '\(spec)': the id must be 1-64 of A-Z a-z 0-9 - _")
            }
            guard !config.channels.contains(where: { $0.id == id }) else {
                throw ValidationError("--channel '\(spec)': '\(id)' is used twice")
            }
            do {
                config.channels.append(
                    ChannelConfig(id: id, source: try ChannelSource(parsing: String(spec[spec.index(after: eq)...]))))
            } catch { throw ValidationError("--channel \(error)") }
        }
        if config.channels.isEmpty {
            config.channels = [ChannelConfig(id: "demo", name: "SwiftVS demo", group: "Demo", source: .builtin)]
        }
        if let vod = self.vod { config.vod = vod }
        if let epg = self.epg { config.epg = epg }
        if let token = self.ingestToken { config.ingestToken = token }
        if let dvr = self.dvr {
            config.dvr = DVRConfig(
                path: dvr, window: config.dvr?.window ?? 7200, maxBytes: config.dvr?.maxBytes ?? 2 << 30)
        }
        if let text = self.dvrWindow {
            guard config.dvr != nil else {
                throw ValidationError("--dvr-window needs --dvr DIR (or dvr.path in the config)")
            }
            guard let seconds = Self.seconds(text) else {
                throw ValidationError("--dvr-window '\(text)': expected a duration like 2h or 90m")
            }
            config.dvr?.window = seconds
        }
        if let text = self.segmentDuration {
            guard let seconds = Self.seconds(text), (0.5...60).contains(seconds) else {
                throw ValidationError("--segment-duration '\(text)': expected 0.5 to 60 seconds, like 2 or 4s")
            }
            config.segmentDuration = seconds
        }
        if let window = self.window {
            guard (2...1000).contains(window) else { throw ValidationError("--window must be 2...1000") }
            config.window = window
            config.memorySegments = max(config.memorySegments, window * 3)
        }
        return config
    }

    static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("d"), let days = Double(text.dropLast()) { return days * 86400 }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).map { $0 * scale }
        }
        return Double(text)
    }

    func run() async throws {
        let config = try self.makeConfig()
        if let path = self.checkConfig {
            print("\(path): valid (\(config.channels.count) channel\(config.channels.count == 1 ? "" : "s"))")
            return
        }
        let logger = makeLogger(label: "swiftvs.iptv", level: self.logLevel)
        let base = "http://\(config.listen)/"
        let banner = """
            SwiftVS IPTV on \(base)
            \(config.channels.map { "  \($0.id) (\($0.source)):  \(base)live/\($0.id)/index.m3u8" }.joined(separator: "\n"))
              web player:  \(base)   channel list: \(base)channels.m3u
            Stop: Ctrl-C
            """
        let server: IPTVServer
        do {
            // The banner once the listener is bound: a port in use is said instead.
            server = try IPTVServer(config: config, logger: logger) {
                print(banner)
                SystemdNotify.ready(status: "serving \(config.channels.count) channels")
            }
        } catch {
            FileHandle.standardError.write(Data("swiftvs iptv: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: server.services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        do {
            try await group.run()
            server.flushArchives()
        } catch let error as IPTVError {
            server.flushArchives()
            FileHandle.standardError.write(Data("swiftvs iptv: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
