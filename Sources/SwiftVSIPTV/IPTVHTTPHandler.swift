import SwiftVSMedia
import Foundation
import NIOCore
import NIOHTTP1
import SwiftVSCore

/// What one IPTV server serves: its channels, the VOD library, the catalogue. Shared by every connection.
public final class IPTVSite: Sendable {
    public let config: IPTVConfig
    public let channels: [Channel]
    let byID: [String: Channel]
    let vodRoot: String?
    let startedAt = wallClock()
    let pages: WebPages
    let fileCache: FileCache

    init(config: IPTVConfig, channels: [Channel]) {
        self.config = config
        self.channels = channels
        self.byID = Dictionary(uniqueKeysWithValues: channels.map { ($0.config.id, $0) })
        self.vodRoot = config.vod.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        self.pages = WebPages()
        self.fileCache = FileCache(capacity: config.vod == nil ? 0 : config.vodCacheBytes)
    }
}

/// One HTTP/1.1 connection to the IPTV server. Answers from memory or with sendfile, on the event loop, without
/// hopping to async code: segments are written as the ByteBuffer the segmenter made (no copy per viewer).
final class IPTVHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let site: IPTVSite
    private var head: HTTPRequestHead?
    private var ingest: Channel?
    private var ingestBytes = 0
    /// The push was refused because another one feeds the channel.
    private var pushBusy = false
    /// The push was refused for a missing or wrong ingest token.
    private var pushUnauthorized = false

    init(site: IPTVSite) { self.site = site }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.releaseIngest()
            self.ingestBytes = 0
            self.pushBusy = false
            self.pushUnauthorized = false
            if head.method == .POST || head.method == .PUT, let channel = self.pushTarget(head) {
                if !Self.authorized(head, token: self.site.config.ingestToken) {
                    self.pushUnauthorized = true
                } else if channel.claimPush() {
                    self.ingest = channel
                } else {
                    self.pushBusy = true
                }
            }
        case .body(let buffer):
            if let channel = self.ingest {
                self.ingestBytes += buffer.readableBytes
                channel.ingest(buffer, wallClock: wallClock())
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(context: context, head: head)
        }
    }

    private func releaseIngest() {
        self.ingest?.releasePush()
        self.ingest = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.releaseIngest()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func pushTarget(_ head: HTTPRequestHead) -> Channel? {
        let parts = Self.pathParts(head.uri)
        guard parts.count == 2, parts[0] == "ingest", let channel = self.site.byID[String(parts[1])],
            channel.config.source == .push
        else { return nil }
        return channel
    }

    /// True when no token is configured, or the request carries it as a bearer token or a `token` query parameter.
    static func authorized(_ head: HTTPRequestHead, token: String?) -> Bool {
        guard let token else { return true }
        if let value = head.headers.first(name: "authorization"), value == "Bearer \(token)" { return true }
        guard let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return false }
        return query.split(separator: "&").contains { $0 == "token=\(token)" }
    }

    static func pathParts(_ uri: String) -> [Substring] {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return path.split(separator: "/")
    }

    // MARK: routing

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let parts = Self.pathParts(head.uri)
        let isRead = head.method == .GET || head.method == .HEAD
        let now = wallClock()
        if parts.first == "ingest" {
            return self.ingestEnded(context: context, head: head, parts: parts)
        }
        guard isRead else {
            return self.send(
                context, head, .methodNotAllowed, text: "use GET or HEAD (POST only for /ingest/<channel>)\n",
                extra: [("Allow", "GET, HEAD")])
        }
        switch parts.first {
        case nil, "index.html":
            self.send(
                context, head, .ok, body: self.site.pages.index, type: "text/html; charset=utf-8", cache: "no-cache")
        case "watch.html":
            self.send(
                context, head, .ok, body: self.site.pages.watch, type: "text/html; charset=utf-8", cache: "no-cache")
        case "channels.m3u" where parts.count == 1:
            self.send(
                context, head, .ok, text: Catalogue.m3u(self.site, host: head.headers.first(name: "host")),
                type: "audio/x-mpegurl; charset=utf-8", cache: "max-age=10")
        case "api" where parts.count == 2 && parts[1] == "channels":
            self.send(
                context, head, .ok, text: Catalogue.json(self.site.channels.map { $0.status(now: now) }),
                type: "application/json", cache: "no-cache")
        case "api" where parts.count == 2 && parts[1] == "vod":
            self.send(
                context, head, .ok, text: Catalogue.json(VODLibrary.list(self.site.vodRoot)),
                type: "application/json", cache: "no-cache")
        case "epg.xml" where parts.count == 1:
            guard let epg = self.site.config.epg else {
                return self.send(context, head, .notFound, text: "no EPG: set 'epg' to an XMLTV file in the config\n")
            }
            self.file(context, head, path: epg, type: "application/xml", cache: "max-age=60")
        case "healthz" where parts.count == 1:
            let down = self.site.channels.filter { !$0.isLive(now: now) }.map(\.config.id)
            if down.isEmpty {
                self.send(
                    context, head, .ok, text: "ok: \(self.site.channels.count) channel(s) live\n", cache: "no-store")
            } else {
                self.send(
                    context, head, .serviceUnavailable, text: "not live: \(down.joined(separator: ", "))\n",
                    cache: "no-store")
            }
        case "metrics" where parts.count == 1:
            self.send(
                context, head, .ok, text: Catalogue.metrics(self.site, now: now),
                type: "text/plain; version=0.0.4", cache: "no-store")
        case "live" where parts.count == 3:
            self.live(context, head, channelID: String(parts[1]), name: String(parts[2]), now: now)
        case "vod" where parts.count >= 2:
            guard let root = self.site.vodRoot else {
                return self.send(
                    context, head, .notFound, text: "no VOD library: set 'vod' in the config or --vod DIR\n")
            }
            guard let path = VODLibrary.resolve(root: root, parts: parts.dropFirst()) else {
                return self.send(context, head, .notFound, text: "not in the VOD library\n")
            }
            self.file(
                context, head, path: path, type: MediaType.of(path), cache: "public, max-age=3600",
                memory: self.site.fileCache)
        default:
            self.send(context, head, .notFound, text: "not found: \(head.uri)\n")
        }
    }

    private func live(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, channelID: String, name: String, now: Double
    ) {
        guard let channel = self.site.byID[channelID] else {
            return self.send(context, head, .notFound, text: "no channel '\(channelID)'; see /api/channels\n")
        }
        if name == "index.m3u8" {
            guard let playlist = channel.livePlaylist() else {
                return self.send(
                    context, head, .serviceUnavailable, text: "channel '\(channelID)' has no segments yet\n",
                    cache: "no-store", extra: [("Retry-After", "2")])
            }
            return self.send(context, head, .ok, text: playlist, type: MediaType.playlist, cache: "max-age=1")
        }
        if let (start, duration) = HLSPlaylist.parseArchiveName(name) {
            guard let playlist = channel.archivePlaylist(start: start, duration: duration, now: now) else {
                return self.send(
                    context, head, .notFound, text: "the archive of '\(channelID)' has nothing in that range\n")
            }
            let done = playlist.hasSuffix("#EXT-X-ENDLIST\n")
            return self.send(
                context, head, .ok, text: playlist, type: MediaType.playlist, cache: done ? "max-age=3600" : "max-age=1"
            )
        }
        guard name.hasSuffix(".ts"), let number = Int64(name.dropLast(3)) else {
            return self.send(
                context, head, .notFound, text: "expected index.m3u8, index-START-DURATION.m3u8 or NUMBER.ts\n")
        }
        switch channel.segment(number, now: now) {
        case .memory(let buffer):
            channel.countBytesOut(buffer.readableBytes)
            self.send(
                context, head, .ok, body: buffer, type: MediaType.segment, cache: MediaType.immutable, ranges: true)
        case .file(let path, _):
            self.file(context, head, path: path, type: MediaType.segment, cache: MediaType.immutable, counter: channel)
        case nil:
            self.send(
                context, head, .notFound, text: "segment \(number) of '\(channelID)' is not (or no longer) here\n")
        }
    }

    private func ingestEnded(context: ChannelHandlerContext, head: HTTPRequestHead, parts: [Substring]) {
        guard head.method == .POST || head.method == .PUT else {
            return self.send(
                context, head, .methodNotAllowed, text: "push TS with POST /ingest/<channel>\n",
                extra: [("Allow", "POST, PUT")])
        }
        guard parts.count == 2, let channel = self.site.byID[String(parts[1])] else {
            return self.send(
                context, head, .notFound, text: "no channel '\(parts.dropFirst().joined(separator: "/"))'\n")
        }
        if self.pushUnauthorized {
            return self.send(
                context, head, .unauthorized,
                text:
                    "pushing needs the ingest token: Authorization: Bearer TOKEN, or ?token=TOKEN (config ingest_token)\n",
                extra: [("WWW-Authenticate", "Bearer realm=\"swiftvs-ingest\"")])
        }
        if self.pushBusy {
            return self.send(
                context, head, .conflict,
                text: "channel '\(channel.config.id)' is already being pushed to; one push at a time\n")
        }
        guard self.ingest != nil else {
            return self.send(
                context, head, .conflict,
                text:
                    "channel '\(channel.config.id)' takes its TS from \(channel.config.source); set its source to push to accept POST /ingest/\(channel.config.id)\n"
            )
        }
        self.releaseIngest()
        self.send(context, head, .ok, text: "received \(self.ingestBytes) bytes\n")
    }

    // MARK: writing

    private func send(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, text: String,
        type: String = "text/plain; charset=utf-8", cache: String = "no-cache", extra: [(String, String)] = []
    ) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        self.send(context, head, status, body: buffer, type: type, cache: cache, extra: extra)
    }

    private func send(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, body: ByteBuffer,
        type: String, cache: String, ranges: Bool = false, extra: [(String, String)] = []
    ) {
        var status = status
        var body = body
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Cache-Control", value: cache)
        headers.add(name: "Access-Control-Allow-Origin", value: "*")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if ranges {
            headers.add(name: "Accept-Ranges", value: "bytes")
            let length = body.readableBytes
            switch ByteRangeRequest.parse(head.headers.first(name: "range"), length: length) {
            case .full: break
            case .partial(let r):
                status = .partialContent
                body = body.getSlice(at: body.readerIndex + r.lowerBound, length: r.count)!
                headers.add(name: "Content-Range", value: "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(length)")
            case .unsatisfiable:
                status = .rangeNotSatisfiable
                headers.add(name: "Content-Range", value: "bytes */\(length)")
                body = ByteBuffer()
            }
        }
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = self.head(context, head, status, &headers)
        if head.method != .HEAD, body.readableBytes > 0 {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        self.end(context, keepAlive: keepAlive)
    }

    /// Serves a file from `memory` when it is cached there, else with sendfile; honours Range.
    private func file(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, path: String, type: String, cache: String,
        counter: Channel? = nil, memory: FileCache? = nil
    ) {
        if let memory {
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
                let buffer = memory.lookup(path: path, info: info)
            {
                return self.send(context, head, .ok, body: buffer, type: type, cache: cache, ranges: true)
            }
        }
        let handle: NIOFileHandle
        let size: Int
        do {
            handle = try NIOFileHandle(_deprecatedPath: path)
            var info = stat()
            guard try handle.withUnsafeFileDescriptor({ fstat($0, &info) }) == 0, info.st_mode & S_IFMT == S_IFREG
            else {
                try? handle.close()
                return self.send(context, head, .notFound, text: "not a file\n")
            }
            size = Int(info.st_size)
        } catch {
            return self.send(context, head, .notFound, text: "not found\n")
        }
        var status = HTTPResponseStatus.ok
        var range = 0..<size
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Cache-Control", value: cache)
        headers.add(name: "Access-Control-Allow-Origin", value: "*")
        headers.add(name: "Accept-Ranges", value: "bytes")
        switch ByteRangeRequest.parse(head.headers.first(name: "range"), length: size) {
        case .full: break
        case .partial(let r):
            status = .partialContent
            range = r
            headers.add(name: "Content-Range", value: "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(size)")
        case .unsatisfiable:
            try? handle.close()
            var empty = HTTPHeaders()
            empty.add(name: "Content-Range", value: "bytes */\(size)")
            empty.add(name: "Content-Length", value: "0")
            let keepAlive = self.head(context, head, .rangeNotSatisfiable, &empty)
            return self.end(context, keepAlive: keepAlive)
        }
        headers.add(name: "Content-Length", value: String(range.count))
        let keepAlive = self.head(context, head, status, &headers)
        counter?.countBytesOut(range.count)
        if head.method == .HEAD || range.isEmpty {
            try? handle.close()
        } else {
            let region = FileRegion(fileHandle: handle, readerIndex: range.lowerBound, endIndex: range.upperBound)
            context.write(Self.wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { _ in try? handle.close() }
        }
        self.end(context, keepAlive: keepAlive)
    }

    private func head(
        _ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus,
        _ headers: inout HTTPHeaders
    ) -> Bool {
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let response = HTTPResponseHead(version: request.version, status: status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(response)), promise: nil)
        return keepAlive
    }

    private func end(_ context: ChannelHandlerContext, keepAlive: Bool) {
        if keepAlive {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.releaseIngest()
        context.close(promise: nil)
    }
}

enum MediaType {
    static let playlist = "application/vnd.apple.mpegurl"
    static let segment = "video/mp2t"
    static let immutable = "public, max-age=31536000, immutable"

    static func of(_ path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "m3u8": return playlist
        case "ts": return segment
        case "mp4", "m4v": return "video/mp4"
        case "m4s": return "video/iso.segment"
        case "m4a": return "audio/mp4"
        case "aac": return "audio/aac"
        case "vtt": return "text/vtt"
        case "mpd": return "application/dash+xml"
        case "jpg", "jpeg": return "image/jpeg"
        case "png": return "image/png"
        case "xml": return "application/xml"
        case "json": return "application/json"
        case "html": return "text/html; charset=utf-8"
        default: return "application/octet-stream"
        }
    }
}
