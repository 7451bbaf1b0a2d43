/// Finds where one HTTP/1.x response ends in a byte stream, reading only what a load tester needs: the status,
/// whether the connection stays open, and the body's framing (Content-Length, chunked, or until close).
///
/// It works on the bytes as they arrive, without copying them, except a response head split across reads, which it
/// keeps until the head is whole. One scanner serves one connection; `reset` readies it for the next response.
public struct HTTPResponseScanner: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// The response is not finished; feed more bytes.
        case needMore
        /// The response ended after `consumed` bytes of this read.
        case complete(status: Int, keepAlive: Bool, consumed: Int)
        /// The bytes are not an HTTP/1.x response.
        case invalid(String)
    }

    enum Phase: Sendable {
        case head
        case fixed(remaining: Int)
        /// A chunked body, walked by the one `ChunkedBody` (the HTTP/2 path unchunks with it too).
        case chunked(ChunkedBody)
        case untilClose
    }

    /// Heads longer than this are refused (the director's own limit is 32 KiB).
    public static let maxHeadBytes = 65_536

    var phase: Phase = .head
    var partialHead: [UInt8] = []
    /// Set when the request was HEAD: the response has no body whatever its headers say.
    public var requestHadNoBody = false
    public private(set) var status = 0
    var keepAlive = true
    /// Set for a proxy: note, in each head, the lines it leaves out (`hopLines`), and read the head strictly: header
    /// names as RFC 9110 tokens, every line ending in CRLF, no CR, NUL or other control byte but HTAB in a value
    /// (a response that would split into two at the client is a 502, as HAProxy answers).
    public var collectsHopLines = false
    /// The last head said HTTP/1.0.
    public private(set) var http10 = false
    /// With `collectsHopLines`: the last head's hop-by-hop lines (RFC 9110 §7.6.1), CRLF included, in order:
    /// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and any header that Connection names; and
    /// Content-Length when Transfer-Encoding is there too (RFC 9112 §6.3: an intermediary removes it).
    public private(set) var hopLines: [Range<Int>] = []

    public init() {}

    public mutating func reset(headRequest: Bool = false) {
        self.phase = .head
        self.partialHead.removeAll(keepingCapacity: true)
        self.requestHadNoBody = headRequest
        self.status = 0
        self.keepAlive = true
    }

    /// True while reading a body that ends only when the server closes the connection.
    public var readsUntilClose: Bool {
        if case .untilClose = self.phase { return true }
        return false
    }

    /// True when no byte of the current response has been seen.
    public var atStart: Bool {
        if case .head = self.phase { return self.partialHead.isEmpty }
        return false
    }

    /// Feeds one read. The caller stops feeding after `.complete` and calls `reset` before the next response.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var offset = 0
        if case .head = self.phase {
            let headEnd: Int
            if self.partialHead.isEmpty, let end = Self.findHeadEnd(bytes, from: 0) {
                headEnd = end
                if let problem = self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<end])) {
                    return .invalid(problem)
                }
            } else {
                // The head spans reads: look for its end across what we kept and what just came.
                let keptCount = self.partialHead.count
                self.partialHead.append(contentsOf: bytes)
                let start = max(0, keptCount - 3)
                let found = self.partialHead.withUnsafeBytes { Self.findHeadEnd($0, from: start) }
                guard let end = found else {
                    if self.partialHead.count > Self.maxHeadBytes { return .invalid("response head over 64 KiB") }
                    return .needMore
                }
                headEnd = end - keptCount
                let problem = self.partialHead.withUnsafeBytes {
                    self.parseHead(UnsafeRawBufferPointer(rebasing: $0[0..<end]))
                }
                self.partialHead.removeAll(keepingCapacity: true)
                if let problem { return .invalid(problem) }
            }
            offset = headEnd
        }
        return self.scanBody(bytes, from: offset)
    }

    /// The stream ended (the server closed). Returns the outcome if that ends a body read until close.
    public mutating func endOfStream() -> Outcome? {
        if case .untilClose = self.phase {
            return .complete(status: self.status, keepAlive: false, consumed: 0)
        }
        return nil
    }

    public static func findHeadEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let count = bytes.count
        var i = start
        while i + 3 < count {
            // Look for LF first: it is rarer than any other byte in a head's last stretch.
            if bytes[i + 3] == 0x0A {
                if bytes[i] == 0x0D && bytes[i + 1] == 0x0A && bytes[i + 2] == 0x0D { return i + 4 }
                i += 1
            } else if bytes[i + 3] == 0x0D {
                i += 1
            } else {
                i += 4
            }
        }
        return nil
    }

    /// Reads the status line and the framing headers. Returns a problem, or nil.
    mutating func parseHead(_ head: UnsafeRawBufferPointer) -> String? {
        // "HTTP/1.1 200 ..."
        guard head.count >= 16, head[0] == 0x48, head[1] == 0x54, head[2] == 0x54, head[3] == 0x50, head[4] == 0x2F,
            head[5] == 0x31, head[6] == 0x2E
        else {
            return "not an HTTP/1.x status line"
        }
        let minor = head[7]
        let d0 = Int(head[9]) - 48, d1 = Int(head[10]) - 48, d2 = Int(head[11]) - 48
        guard head[8] == 0x20, (0...9).contains(d0), (0...9).contains(d1), (0...9).contains(d2) else {
            return "bad status code"
        }
        guard head[12] == 0x20 || head[12] == 0x0D else { return "bad status line" }
        self.status = d0 * 100 + d1 * 10 + d2
        self.http10 = minor == 0x30
        self.keepAlive = minor != 0x30  // HTTP/1.0 closes unless it says keep-alive
        self.hopLines.removeAll(keepingCapacity: true)
        var named: [Range<Int>] = []  // tokens of Connection other than close and keep-alive
        var contentLength: Int? = nil
        var contentLengthLines: [Range<Int>] = []
        var chunked = false
        if self.collectsHopLines {
            let statusEnd = Self.lineEnd(head, from: 12)
            guard Self.endsWithCRLF(head, statusEnd) else { return "status line not ended by CRLF" }
        }
        // Walk header lines; compare names case-insensitively by their length first.
        var lineStart = Self.nextLine(head, from: 12)
        while lineStart < head.count - 2 {
            let lineEnd = Self.lineEnd(head, from: lineStart)
            var colon = lineStart
            while colon < lineEnd && head[colon] != 0x3A { colon += 1 }
            if self.collectsHopLines {
                guard colon < lineEnd, colon > lineStart,
                    (lineStart..<colon).allSatisfy({ RequestTokens.isTokenByte(head[$0]) })
                else {
                    return "bad header line"
                }
                guard Self.endsWithCRLF(head, lineEnd) else { return "header line not ended by CRLF" }
                for i in (colon + 1)..<lineEnd where head[i] < 0x20 && head[i] != 0x09 || head[i] == 0x7F {
                    return "control byte in a header value"
                }
                if Self.isHop(head, lineStart, colon - lineStart, lineEnd, &named) {
                    self.hopLines.append(lineStart..<Self.nextLine(head, from: lineEnd))
                }
            }
            if colon < lineEnd {
                let nameLength = colon - lineStart
                var valueStart = colon + 1
                while valueStart < lineEnd && (head[valueStart] == 0x20 || head[valueStart] == 0x09) { valueStart += 1 }
                var valueEnd = lineEnd
                while valueEnd > valueStart && (head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09) {
                    valueEnd -= 1
                }
                if nameLength == 14 && Self.equalsLower(head, lineStart, "content-length") {
                    var value = 0
                    guard valueEnd > valueStart else { return "empty Content-Length" }
                    for i in valueStart..<valueEnd {
                        let d = Int(head[i]) - 48
                        guard (0...9).contains(d), value < Int.max / 10 - 10 else { return "bad Content-Length" }
                        value = value * 10 + d
                    }
                    if let existing = contentLength, existing != value { return "conflicting Content-Length" }
                    contentLength = value
                    contentLengthLines.append(lineStart..<Self.nextLine(head, from: lineEnd))
                } else if nameLength == 17 && Self.equalsLower(head, lineStart, "transfer-encoding") {
                    chunked = Self.containsLower(head, valueStart, valueEnd, "chunked")
                } else if nameLength == 10 && Self.equalsLower(head, lineStart, "connection") {
                    if Self.containsLower(head, valueStart, valueEnd, "close") { self.keepAlive = false }
                    if Self.containsLower(head, valueStart, valueEnd, "keep-alive") && minor == 0x30 {
                        self.keepAlive = true
                    }
                }
            }
            lineStart = Self.nextLine(head, from: lineEnd)
        }
        if !named.isEmpty { self.dropNamed(named, head) }
        if chunked && self.collectsHopLines && !contentLengthLines.isEmpty {
            // Transfer-Encoding wins; the Content-Length does not reach the client (RFC 9112 §6.3).
            self.hopLines.append(contentsOf: contentLengthLines)
            self.hopLines.sort { $0.lowerBound < $1.lowerBound }
        }
        if self.requestHadNoBody || self.status / 100 == 1 || self.status == 204 || self.status == 304 {
            self.phase = .fixed(remaining: 0)
        } else if chunked {
            self.phase = .chunked(ChunkedBody())
        } else if let contentLength {
            self.phase = .fixed(remaining: contentLength)
        } else {
            self.phase = .untilClose
            self.keepAlive = false
        }
        return nil
    }

    /// Whether the header line at `start` (name `length` bytes) is hop-by-hop; Connection's other tokens go to
    /// `named`.
    static func isHop(
        _ b: UnsafeRawBufferPointer, _ start: Int, _ length: Int, _ end: Int,
        _ named: inout [Range<Int>]
    ) -> Bool {
        switch length {
        case 2: return Self.equalsLower(b, start, "te")
        case 7: return Self.equalsLower(b, start, "trailer") || Self.equalsLower(b, start, "upgrade")
        case 10:
            if Self.equalsLower(b, start, "connection") {
                Self.otherTokens(b, from: start + 11, to: end, into: &named)
                return true
            }
            return Self.equalsLower(b, start, "keep-alive")
        case 16: return Self.equalsLower(b, start, "proxy-connection")
        default: return false
        }
    }

    /// Connection's tokens other than `close` and `keep-alive`: more headers that stay on this hop.
    static func otherTokens(_ b: UnsafeRawBufferPointer, from start: Int, to end: Int, into tokens: inout [Range<Int>])
    {
        var i = start
        while i < end {
            while i < end, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x2C { i += 1 }
            let tokenStart = i
            while i < end, RequestTokens.isTokenByte(b[i]) { i += 1 }
            let length = i - tokenStart
            if length > 0, !(length == 5 && Self.equalsLower(b, tokenStart, "close")),
                !(length == 10 && Self.equalsLower(b, tokenStart, "keep-alive"))
            {
                tokens.append(tokenStart..<i)
            }
            while i < end, b[i] != 0x2C { i += 1 }
        }
    }

    /// Adds the lines of the headers that Connection named to `hopLines`.
    mutating func dropNamed(_ named: [Range<Int>], _ b: UnsafeRawBufferPointer) {
        var i = Self.nextLine(b, from: 12)
        while i < b.count - 2 {
            let lineStart = i
            while i < b.count, b[i] != 0x3A { i += 1 }
            let name = lineStart..<i
            i = Self.nextLine(b, from: i)
            if !self.hopLines.contains(where: { $0.lowerBound == lineStart }),
                named.contains(where: { Self.sameName(b, $0, name) })
            {
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

    /// The line ending at `end` (where `lineEnd` stopped) is CRLF.
    @inline(__always)
    static func endsWithCRLF(_ bytes: UnsafeRawBufferPointer, _ end: Int) -> Bool {
        end + 1 < bytes.count && bytes[end] == 0x0D && bytes[end + 1] == 0x0A
    }

    /// A bare LF, or a CR followed by anything but LF, in `bytes` (a CR at the very end may still get its LF): the
    /// bytes cannot be an HTTP/1 head a proxy passes on (RFC 9112 §2.2).
    public static func bareLineEnding(_ b: UnsafeRawBufferPointer) -> String? {
        var i = 0
        let count = b.count
        while i < count {
            let c = b[i]
            if c == 0x0A && (i == 0 || b[i - 1] != 0x0D) { return "bare LF" }
            if c == 0x0D && i + 1 < count && b[i + 1] != 0x0A { return "bare CR" }
            i += 1
        }
        return nil
    }

    static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while i < bytes.count && bytes[i] != 0x0D && bytes[i] != 0x0A { i += 1 }
        return i
    }

    static func nextLine(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while i < bytes.count && bytes[i] != 0x0A { i += 1 }
        return i + 1
    }

    static func equalsLower(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ word: StaticString) -> Bool {
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for i in 0..<w.count where bytes[start + i] | 0x20 != w[i] { return false }
        return true
    }

    /// The bytes at `start` are exactly `word` (the caller knows they exist).
    static func equalsExact(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ word: StaticString) -> Bool {
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard start + w.count <= bytes.count else { return false }
        for i in 0..<w.count where bytes[start + i] != w[i] { return false }
        return true
    }

    static func containsLower(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ word: StaticString) -> Bool {
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard end - start >= w.count else { return false }
        var i = start
        while i + w.count <= end {
            var match = true
            for j in 0..<w.count where bytes[i + j] | 0x20 != w[j] {
                match = false
                break
            }
            if match { return true }
            i += 1
        }
        return false
    }

    mutating func scanBody(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Outcome {
        switch self.phase {
        case .head:
            preconditionFailure("scanBody before the head was read")
        case .untilClose:
            return .needMore
        case .fixed(let remaining):
            let take = min(remaining, bytes.count - start)
            if remaining - take == 0 {
                return .complete(status: self.status, keepAlive: self.keepAlive, consumed: start + take)
            }
            self.phase = .fixed(remaining: remaining - take)
            return .needMore
        case .chunked(var body):
            let outcome = body.feed(UnsafeRawBufferPointer(rebasing: bytes[start...])) { _ in }
            self.phase = .chunked(body)
            switch outcome {
            case .needMore: return .needMore
            case .done(let used):
                return .complete(status: self.status, keepAlive: self.keepAlive, consumed: start + used)
            case .invalid(let problem): return .invalid(problem)
            }
        }
    }
}
