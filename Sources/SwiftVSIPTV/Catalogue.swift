import Foundation
import SwiftVSCore

/// The channel list as M3U (for IPTV players) and JSON, and the Prometheus metrics.
enum Catalogue {
    static func m3u(_ site: IPTVSite, host: String?) -> String {
        let base = host.map { "http://\($0)/" } ?? ""
        var text = "#EXTM3U"
        if site.config.epg != nil { text += " url-tvg=\"\(base)epg.xml\"" }
        text += "\n"
        for channel in site.channels {
            let c = channel.config
            text += "#EXTINF:-1 tvg-id=\"\(attr(c.id))\" tvg-name=\"\(attr(c.name))\""
            if let logo = c.logo { text += " tvg-logo=\"\(attr(logo))\"" }
            if let group = c.group { text += " group-title=\"\(attr(group))\"" }
            if let dvr = site.config.dvr {
                text += " catchup=\"append\" catchup-days=\"\(max(1, Int((dvr.window / 86400).rounded(.up))))\""
                text += " catchup-source=\"index-{utc}-{duration}.m3u8\""
            }
            text += ",\(c.name.replacingOccurrences(of: "\n", with: " "))\n\(base)live/\(c.id)/index.m3u8\n"
        }
        return text
    }

    private static func attr(_ s: String) -> String {
        s.replacingOccurrences(of: "\"", with: "'").replacingOccurrences(of: "\n", with: " ")
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? "{}\n"
    }

    static func metrics(_ site: IPTVSite, now: Double) -> String {
        let statuses = site.channels.map { $0.status(now: now) }
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: (Channel.Status) -> Double) {
            text += "# HELP swiftvs_iptv_\(name) \(help)\n# TYPE swiftvs_iptv_\(name) \(type)\n"
            for s in statuses {
                let v = value(s)
                let formatted = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
                text += "swiftvs_iptv_\(name){channel=\"\(s.id)\"} \(formatted)\n"
            }
        }
        family("channel_live", "gauge", "1 while the channel publishes segments.") { $0.live ? 1 : 0 }
        family("viewers", "gauge", "Viewers estimated from segment fetches in the last 30 s.") { $0.viewers }
        family("ingest_bytes_total", "counter", "TS bytes received.") { Double($0.bytesIn) }
        // Prometheus's base unit is bytes: the bitrate is exported in bytes per second (bits / 8).
        family("ingest_bytes_per_second", "gauge", "Ingest rate over the last 5 s window, in bytes per second.") {
            $0.ingestBitrate / 8
        }
        family("bytes_out_total", "counter", "Segment bytes sent to viewers.") { Double($0.bytesOut) }
        family("segment_requests_total", "counter", "Segment requests.") { Double($0.segmentRequests) }
        family("playlist_requests_total", "counter", "Playlist requests.") { Double($0.playlistRequests) }
        family("cc_errors_total", "counter", "MPEG-TS continuity-counter errors (lost or reordered packets).") {
            Double($0.ccErrors)
        }
        family("sync_errors_total", "counter", "Bytes or packets skipped for a bad sync byte.") {
            Double($0.syncErrors)
        }
        family("discontinuities_total", "counter", "Timestamp jumps in the feed.") { Double($0.discontinuities) }
        family("segment_gaps_total", "counter", "Unused segment numbers (keyframes rarer than the target duration).") {
            Double($0.gaps)
        }
        family(
            "ingest_dropped_bytes_total", "counter",
            "Ingest bytes dropped: a picture or a segment past its size limit (a feed without PES starts or keyframes)."
        ) { Double($0.droppedBytes) }
        family("last_segment_age_seconds", "gauge", "Seconds since the latest segment finished.") {
            $0.lastSegmentAge ?? -1
        }
        family("archive_segments", "gauge", "Segments in the catch-up archive.") { Double($0.archiveSegments) }
        family("archive_bytes", "gauge", "Bytes in the catch-up archive.") { Double($0.archiveBytes) }
        text += "# HELP swiftvs_iptv_uptime_seconds Seconds since start.\n# TYPE swiftvs_iptv_uptime_seconds gauge\n"
        text += "swiftvs_iptv_uptime_seconds \(Int(now - site.startedAt))\n"
        return text
    }
}

/// The VOD library: a folder served as it is (HLS VOD folders, MP4 files with byte ranges).
enum VODLibrary {
    /// The file for `/vod/<parts>`, or nil when it leaves the library, names a hidden file or does not exist.
    static func resolve(root: String, parts: ArraySlice<Substring>) -> String? {
        var components: [String] = []
        for part in parts {
            guard let decoded = String(part).removingPercentEncoding, !decoded.isEmpty, !decoded.hasPrefix("."),
                !decoded.contains("/"), !decoded.contains("\0")
            else { return nil }
            components.append(decoded)
        }
        let path = ([root] + components).joined(separator: "/")
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let rootResolved = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        guard resolved == rootResolved || resolved.hasPrefix(rootResolved + "/") else { return nil }
        return resolved
    }

    struct Item: Codable {
        var name: String
        var kind: String
        var url: String
    }

    /// HLS folders (with an index.m3u8 or any .m3u8) and MP4 files, one level deep.
    static func list(_ root: String?) -> [Item] {
        guard let root, let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        var items: [Item] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = root + "/" + name
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            let escaped = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name
            if isDir.boolValue {
                let inner = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let playlist =
                    inner.contains("index.m3u8") ? "index.m3u8" : inner.sorted().first { $0.hasSuffix(".m3u8") }
                if let playlist { items.append(Item(name: name, kind: "hls", url: "vod/\(escaped)/\(playlist)")) }
            } else if name.lowercased().hasSuffix(".mp4") || name.lowercased().hasSuffix(".m3u8") {
                items.append(
                    Item(name: name, kind: name.lowercased().hasSuffix(".mp4") ? "mp4" : "hls", url: "vod/\(escaped)"))
            }
        }
        return items
    }
}
