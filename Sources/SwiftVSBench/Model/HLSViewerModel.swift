import SwiftVSCore
/// What a simulated HLS viewer reads from a playlist: the media segment URIs, the target duration, and, in a master
/// playlist, the variants. Pure; the viewer driver does the I/O.
public struct HLSPlaylistSummary: Sendable, Equatable {
    public var targetDuration: Double?
    public var segments: [String] = []
    public var variants: [String] = []
    public var ended = false

    public init(text: String) {
        var nextIsVariant = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingSpaces()
            if line.isEmpty { continue }
            if line.hasPrefix("#EXT-X-TARGETDURATION:") {
                self.targetDuration = Double(line.dropFirst("#EXT-X-TARGETDURATION:".count))
            } else if line.hasPrefix("#EXT-X-STREAM-INF") {
                nextIsVariant = true
            } else if line == "#EXT-X-ENDLIST" {
                self.ended = true
            } else if !line.hasPrefix("#") {
                if nextIsVariant { self.variants.append(String(line)) } else { self.segments.append(String(line)) }
                nextIsVariant = false
            }
        }
    }

    /// The request path for `uri` found in the playlist at `playlistPath` (both origin-relative, like
    /// "/live/demo/index.m3u8"); nil for an absolute URL on another host.
    public static func resolve(_ uri: String, against playlistPath: String, host: String) -> String? {
        if uri.hasPrefix("http://") || uri.hasPrefix("https://") {
            let rest = uri.drop(while: { $0 != "/" }).dropFirst(2)
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            return rest[..<slash] == host ? String(rest[slash...]) : nil
        }
        if uri.hasPrefix("/") { return uri }
        let directory =
            playlistPath.split(separator: "?", maxSplits: 1).first.map {
                $0[...($0.lastIndex(of: "/") ?? $0.startIndex)]
            } ?? "/"
        var parts = directory.split(separator: "/").map(String.init)
        for piece in uri.split(separator: "/", omittingEmptySubsequences: false).map(String.init) {
            if piece == ".." { _ = parts.popLast() } else if piece != "." { parts.append(piece) }
        }
        return "/" + parts.joined(separator: "/")
    }
}

/// The body of a chunked HTTP/1.1 message (transfer coding removed); nil when the framing is broken.
public func dechunk(_ body: ArraySlice<UInt8>) -> [UInt8]? {
    var out: [UInt8] = []
    var i = body.startIndex
    while i < body.endIndex {
        var size = 0, digits = 0
        while i < body.endIndex, let v = hexValue(body[i]) { size = size * 16 + v; digits += 1; i += 1 }
        guard digits > 0 else { return nil }
        while i < body.endIndex, body[i] != 0x0A { i += 1 }  // extensions and CR
        i += 1
        if size == 0 { return out }
        guard i + size <= body.endIndex else { return nil }
        out.append(contentsOf: body[i..<(i + size)])
        i += size + 2  // CRLF after the data
    }
    return nil
}

private func hexValue(_ c: UInt8) -> Int? {
    switch c {
    case 0x30...0x39: return Int(c - 0x30)
    case 0x41...0x46: return Int(c - 0x41 + 10)
    case 0x61...0x66: return Int(c - 0x61 + 10)
    default: return nil
    }
}
