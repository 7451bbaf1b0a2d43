import SwiftVSConfigKit
import Yams

/// Where a channel's MPEG-TS comes from.
public enum ChannelSource: Sendable, Equatable, CustomStringConvertible {
    /// The clip built into the binary, looped in real time.
    case builtin
    /// A local TS file, looped in real time, paced by its PCR.
    case file(String)
    /// TS over UDP: `bind` is the local address and port; with a multicast `group`, the group is bound and joined on
    /// the interface that has `bind`'s address (0.0.0.0: the one the routing table picks).
    case udp(bind: Endpoint, group: String?)
    /// TS pushed over HTTP: `POST /ingest/<id>` (as `ffmpeg ... -f mpegts http://host/ingest/<id>`).
    case push

    public var description: String {
        switch self {
        case .builtin: return "builtin"
        case .file(let path): return "file:\(path)"
        case .udp(let bind, let group): return group.map { "udp://\($0):\(bind.port)" } ?? "udp://\(bind)"
        case .push: return "push"
        }
    }

    /// `builtin`, `push`, `file:PATH` (or a path ending in .ts), `udp://HOST:PORT` (unicast: the address to bind)
    /// or `udp://GROUP:PORT` with a multicast group (224.0.0.0/4), which is joined, optionally `?interface=IP`.
    public init(parsing text: String) throws(ConfigSourceError) {
        if text == "builtin" { self = .builtin; return }
        if text == "push" { self = .push; return }
        if text.hasPrefix("file:") {
            var path = String(text.dropFirst(5))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw ConfigSourceError(text: text, why: "file: needs a path") }
            self = .file(path)
            return
        }
        if text.hasPrefix("udp://") {
            var rest = String(text.dropFirst(6))
            if rest.hasPrefix("@") { rest = "0.0.0.0" + rest.dropFirst() }  // VLC's udp://@:1234
            if rest.hasPrefix(":") { rest = "0.0.0.0" + rest }
            let query = rest.firstIndex(of: "?").map { String(rest[rest.index(after: $0)...]) }
            if let q = rest.firstIndex(of: "?") { rest = String(rest[..<q]) }
            let endpoint: Endpoint
            do { endpoint = try Endpoint(parsing: rest) } catch {
                throw ConfigSourceError(
                    text: text, why: "\(error) (write udp://IP:PORT, udp://@:PORT or udp://GROUP:PORT)")
            }
            if endpoint.addressBytes.count == 4, (224...239).contains(endpoint.addressBytes[0]) {
                var bind = "0.0.0.0"
                for pair in (query ?? "").split(separator: "&") where pair.hasPrefix("interface=") {
                    bind = String(pair.dropFirst(10))
                }
                let local: Endpoint
                do { local = try Endpoint(host: bind, port: endpoint.port) } catch {
                    throw ConfigSourceError(text: text, why: "interface=\(bind) is not an IPv4 address")
                }
                self = .udp(bind: local, group: endpoint.host)
            } else {
                self = .udp(bind: endpoint, group: nil)
            }
            return
        }
        if text.hasSuffix(".ts") { self = .file(text); return }
        throw ConfigSourceError(text: text, why: "expected builtin, push, file:PATH, udp://IP:PORT or udp://GROUP:PORT")
    }
}

public struct ConfigSourceError: Error, CustomStringConvertible {
    public var text: String
    public var why: String
    public var description: String { "'\(text)': \(why)" }
}

public struct ChannelConfig: Sendable, Equatable {
    /// URL-safe id: `[A-Za-z0-9_-]`; the path `/live/<id>/index.m3u8` and the M3U `tvg-id`.
    public var id: String
    public var name: String
    public var group: String?
    public var logo: String?
    public var source: ChannelSource

    public init(id: String, name: String? = nil, group: String? = nil, logo: String? = nil, source: ChannelSource) {
        self.id = id
        self.name = name ?? id
        self.group = group
        self.logo = logo
        self.source = source
    }
}

public struct DVRConfig: Sendable, Equatable {
    public var path: String
    /// How far back the archive reaches, in seconds.
    public var window: Double = 2 * 3600
    /// Bytes on disk per channel; the oldest segments go first.
    public var maxBytes: Int64 = 2 << 30

    public init(path: String, window: Double = 2 * 3600, maxBytes: Int64 = 2 << 30) {
        self.path = path
        self.window = window
        self.maxBytes = maxBytes
    }
}

/// `swiftvs iptv --config FILE`.
public struct IPTVConfig: Sendable, Equatable {
    public var listen: Endpoint = .loopback(port: 8090)
    public var threads: Int?
    public var segmentDuration: Double = 2
    /// Entries in the live playlist.
    public var window: Int = 6
    /// Finished segments kept in memory per channel (the live window plus a margin for slow viewers).
    public var memorySegments: Int = 30
    public var dvr: DVRConfig?
    public var vod: String?
    /// Memory for recently served VOD files (0: always sendfile).
    public var vodCacheBytes: Int = 256 << 20
    public var epg: String?
    /// When set, an HTTP push must carry `Authorization: Bearer <token>` (or `?token=<token>`).
    public var ingestToken: String?
    public var channels: [ChannelConfig] = []

    public init(
        channels: [ChannelConfig] = [ChannelConfig(id: "demo", name: "SwiftVS demo", group: "Demo", source: .builtin)]
    ) {
        self.channels = channels
    }

    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64
            && id.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D
                    || c == 0x5F
            }
    }

    /// Parses and validates; throws `ConfigError` with every problem, each with its key path and line.
    public static func load(yaml: String, source: String = "config") throws(ConfigError) -> IPTVConfig {
        var reader = NodeReader()
        let root = try NodeReader.compose(
            yaml, source: source, whenEmpty: "the file is empty; it needs a 'channels' list")
        let config = reader.iptv(root)
        guard reader.problems.isEmpty, let config else { throw ConfigError(source: source, problems: reader.problems) }
        return config
    }
}

extension NodeReader {
    mutating func iptv(_ root: Node) -> IPTVConfig? {
        let allowed = [
            "listen", "threads", "segment_duration", "window", "memory_segments", "dvr", "vod", "epg",
            "ingest_token", "channels",
        ]
        guard let keys = self.mapping(root, "", allowed: allowed) else { return nil }
        var config = IPTVConfig(channels: [])
        if let n = keys["listen"], let v = self.endpoint(n, "listen") { config.listen = v }
        if let n = keys["threads"], let v = self.int(n, "threads", 1...256) { config.threads = v }
        if let n = keys["segment_duration"], let v = self.duration(n, "segment_duration", max: 60) {
            if v < 0.5 { self.report("segment_duration", n, "must be at least 0.5s, got \(v)s") }
            config.segmentDuration = v
        }
        if let n = keys["window"], let v = self.int(n, "window", 2...1000) { config.window = v }
        config.memorySegments = max(config.window * 3, 30)
        if let n = keys["memory_segments"], let v = self.int(n, "memory_segments", 2...100_000) {
            if v < config.window { self.report("memory_segments", n, "must be at least window (\(config.window))") }
            config.memorySegments = v
        }
        if let n = keys["dvr"], let m = self.mapping(n, "dvr", allowed: ["path", "window", "max_size"]) {
            if let p = m["path"], let path = self.string(p, "dvr.path") {
                var dvr = DVRConfig(path: path)
                if let w = m["window"], let v = self.duration(w, "dvr.window", max: 86400 * 366) { dvr.window = v }
                if let s = m["max_size"], let v = self.size(s, "dvr.max_size") { dvr.maxBytes = v }
                config.dvr = dvr
            } else if m["path"] == nil {
                self.report("dvr.path", n, "missing: the folder the archive is kept in")
            }
        }
        if let n = keys["vod"] {
            if case .mapping = n, let m = self.mapping(n, "vod", allowed: ["path", "cache"]) {
                if let p = m["path"] {
                    config.vod = self.string(p, "vod.path")
                } else {
                    self.report("vod.path", n, "missing")
                }
                if let c = m["cache"] {
                    if case .scalar(let s) = c, s.string == "0" || s.string == "off" {
                        config.vodCacheBytes = 0
                    } else if let v = self.size(c, "vod.cache") {
                        config.vodCacheBytes = Int(v)
                    }
                }
            } else {
                config.vod = self.string(n, "vod")
            }
        }
        if let n = keys["epg"] { config.epg = self.string(n, "epg") }
        if let n = keys["ingest_token"] { config.ingestToken = self.string(n, "ingest_token") }
        guard let list = keys["channels"] else {
            self.report("channels", root, "missing: list the channels, like [{id: news, source: udp://239.0.0.1:1234}]")
            return config
        }
        guard case .sequence(let items) = list else {
            self.report("channels", list, "expected a list, got \(Self.kind(list))")
            return config
        }
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            let path = "channels[\(index)]"
            guard let c = self.mapping(item, path, allowed: ["id", "name", "group", "logo", "source"]) else { continue }
            guard let idNode = c["id"] else { self.report("\(path).id", item, "missing"); continue }
            guard let id = self.string(idNode, "\(path).id") else { continue }
            guard IPTVConfig.isValidID(id) else {
                self.report("\(path).id", idNode, "'\(id)' must be 1-64 of A-Z a-z 0-9 - _ (it is part of URLs)")
                continue
            }
            guard seen.insert(id).inserted else { self.report("\(path).id", idNode, "'\(id)' is used twice"); continue }
            var source = ChannelSource.builtin
            if let s = c["source"], let text = self.string(s, "\(path).source") {
                do { source = try ChannelSource(parsing: text) } catch {
                    self.report("\(path).source", s, error.description)
                    continue
                }
            }
            var channel = ChannelConfig(id: id, source: source)
            if let n = c["name"], let v = self.string(n, "\(path).name") { channel.name = v }
            if let n = c["group"], let v = self.string(n, "\(path).group") { channel.group = v }
            if let n = c["logo"], let v = self.string(n, "\(path).logo") { channel.logo = v }
            config.channels.append(channel)
        }
        var ports: [Int: String] = [:]
        for (index, channel) in config.channels.enumerated() {
            guard case .udp(let bind, let group) = channel.source, group == nil else { continue }
            if let other = ports[bind.port] {
                self.report(
                    "channels[\(index)].source", items[index], "UDP port \(bind.port) is already channel '\(other)''s")
            }
            ports[bind.port] = channel.id
        }
        if items.isEmpty { self.report("channels", list, "the list is empty; give at least one channel") }
        return config
    }

    /// Bytes from `500MB`, `2GB`, `1.5G`, `1048576`.
    mutating func size(_ node: Node, _ path: String) -> Int64? {
        guard let text = self.scalar(node, path) else { return nil }
        let k = 1024.0
        let units: [(String, Double)] = [
            ("TB", k * k * k * k), ("GB", k * k * k), ("MB", k * k), ("KB", k),
            ("T", k * k * k * k), ("G", k * k * k), ("M", k * k), ("K", k), ("B", 1),
        ]
        let upper = text.uppercased()
        for (suffix, scale) in units where upper.hasSuffix(suffix) {
            if let v = Double(upper.dropLast(suffix.count).trimmingSpaces()), v > 0 { return Int64(v * scale) }
            break
        }
        if let v = Int64(text), v > 0 { return v }
        self.report(path, node, "expected a size like 500MB or 2GB, got '\(text)'")
        return nil
    }
}
