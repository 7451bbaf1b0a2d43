/// A real server's response head as the director's fast path passes it on: the status, the version, and the
/// hop-by-hop lines (RFC 9110 §7.6.1) that stay on the real server's side: Connection, Keep-Alive,
/// Proxy-Connection, TE, Trailer, Upgrade, and any header that Connection names.
public struct HTTP1ResponseHead: Sendable, Equatable {
    public var status: Int
    /// The real server answered HTTP/1.0: the client gets HTTP/1.1 (the director speaks it).
    public var http10: Bool
    /// Lines to leave out (CRLF included), in order.
    public var hopLines: [Range<Int>]

    /// Scans a head that ends with its blank line; nil when it is not an HTTP/1.x response head.
    public static func scan(_ b: UnsafeRawBufferPointer) -> HTTP1ResponseHead? {
        let count = b.count
        guard count >= 16, HTTPResponseScanner.equalsExact(b, 0, "HTTP/1."), b[7] == 0x30 || b[7] == 0x31,
              b[8] == 0x20 else { return nil }
        let d0 = Int(b[9]) &- 48, d1 = Int(b[10]) &- 48, d2 = Int(b[11]) &- 48
        guard (1...5).contains(d0), (0...9).contains(d1), (0...9).contains(d2), b[12] == 0x20 || b[12] == 0x0D else {
            return nil
        }
        var head = HTTP1ResponseHead(status: d0 * 100 + d1 * 10 + d2, http10: b[7] == 0x30, hopLines: [])
        var named: [Range<Int>] = []  // tokens of Connection other than close and keep-alive
        var i = HTTPResponseScanner.nextLine(b, from: 12)
        while i < count - 2 {
            let lineStart = i
            while i < count, RequestTokens.isTokenByte(b[i]) { i += 1 }
            guard i > lineStart, i < count, b[i] == 0x3A else { return nil }
            let nameLength = i - lineStart
            let end = HTTPResponseScanner.lineEnd(b, from: i)
            i = HTTPResponseScanner.nextLine(b, from: end)
            let hop: Bool
            switch nameLength {
            case 2: hop = HTTPResponseScanner.equalsLower(b, lineStart, "te")
            case 7: hop = HTTPResponseScanner.equalsLower(b, lineStart, "trailer")
                || HTTPResponseScanner.equalsLower(b, lineStart, "upgrade")
            case 10:
                if HTTPResponseScanner.equalsLower(b, lineStart, "connection") {
                    hop = true
                    Self.otherTokens(b, from: lineStart + 11, to: end, into: &named)
                } else {
                    hop = HTTPResponseScanner.equalsLower(b, lineStart, "keep-alive")
                }
            case 16: hop = HTTPResponseScanner.equalsLower(b, lineStart, "proxy-connection")
            default: hop = false
            }
            if hop { head.hopLines.append(lineStart..<i) }
        }
        if !named.isEmpty { head.dropNamed(named, b) }
        return head
    }

    /// Connection's tokens other than `close` and `keep-alive`: more headers that stay on this hop.
    static func otherTokens(_ b: UnsafeRawBufferPointer, from start: Int, to end: Int, into tokens: inout [Range<Int>]) {
        var i = start
        while i < end {
            while i < end, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x2C { i += 1 }
            let tokenStart = i
            while i < end, RequestTokens.isTokenByte(b[i]) { i += 1 }
            let length = i - tokenStart
            if length > 0, !(length == 5 && HTTPResponseScanner.equalsLower(b, tokenStart, "close")),
               !(length == 10 && HTTPResponseScanner.equalsLower(b, tokenStart, "keep-alive")) {
                tokens.append(tokenStart..<i)
            }
            while i < end, b[i] != 0x2C { i += 1 }
        }
    }

    /// Adds the lines of the headers that Connection named.
    mutating func dropNamed(_ named: [Range<Int>], _ b: UnsafeRawBufferPointer) {
        var i = HTTPResponseScanner.nextLine(b, from: 12)
        while i < b.count - 2 {
            let lineStart = i
            while i < b.count, b[i] != 0x3A { i += 1 }
            let name = lineStart..<i
            i = HTTPResponseScanner.nextLine(b, from: i)
            if !self.hopLines.contains(where: { $0.lowerBound == lineStart }),
               named.contains(where: { Self.sameName(b, $0, name) }) {
                self.hopLines.append(lineStart..<i)
            }
        }
        self.hopLines.sort { $0.lowerBound < $1.lowerBound }
    }

    static func sameName(_ b: UnsafeRawBufferPointer, _ x: Range<Int>, _ y: Range<Int>) -> Bool {
        guard x.count == y.count else { return false }
        for k in 0..<x.count where b[x.lowerBound + k] | 0x20 != b[y.lowerBound + k] | 0x20 { return false }
        return true
    }
}
