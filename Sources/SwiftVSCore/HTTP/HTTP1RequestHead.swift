/// What the director's fast path needs from a request head, read in place from its bytes.
///
/// The fast path takes only plain requests: HTTP/1.1, a Host, no body, no upgrade, no hop-by-hop header but
/// `Connection: close | keep-alive`, one Host, an origin-form target, every byte as RFC 9112 allows. Anything else
/// (`scan` returns nil) goes to the full NIOHTTP1 proxy, which also answers the errors (400, 431), so being strict
/// here costs speed, never behaviour.
public struct HTTP1RequestHead: Sendable, Equatable {
    /// Bytes up to and including the blank line.
    public var length: Int
    public var isHEAD: Bool
    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): safe to send to another real server.
    public var idempotent: Bool
    /// The client sent `Connection: close`.
    public var close: Bool
    /// The `Connection` line (CRLF included), which does not go to the real server.
    public var connectionLine: Range<Int>?
    /// The client sent `X-Forwarded-Proto`, which a TLS front replaces (the NIO proxy does that).
    public var forwardedProto = false

    /// What the start of a head that has not all arrived can still become.
    public enum Partial: Equatable, Sendable {
        /// A plain request, if the rest comes: wait for it (under the header-read timeout).
        case mayBePlain
        /// Something the full parser serves (or answers 400/431): hand it over now.
        case notPlain
        /// Bytes no valid head holds, whatever follows: answer 400 and close at once.
        case malformed(String)
    }

    /// Judges `b`, the start of a head that has not all arrived: an upper-case method and a space, and no byte a
    /// head never holds. A client that sends its head in pieces is waited for; a bare LF (RFC 9112 §2.2 lets a
    /// server refuse it, and HAProxy does) is an error at once, not a 408 ten seconds later.
    public static func classifyPartial(_ b: UnsafeRawBufferPointer) -> Partial {
        if let problem = Self.lineEndingProblem(b) { return .malformed(problem) }
        var i = 0
        while i < b.count, b[i] >= 0x41, b[i] <= 0x5A { i += 1 }
        guard i < b.count else { return i > 0 && i <= 16 ? .mayBePlain : .notPlain }
        guard i > 0, i <= 16, b[i] == 0x20 else { return .notPlain }
        for c in b[i...] where c < 0x20 && c != 0x0D && c != 0x0A && c != 0x09 || c == 0x7F { return .notPlain }
        return .mayBePlain
    }

    /// A bare LF, or a CR not followed by LF, in the bytes of a request head.
    public static func lineEndingProblem(_ b: UnsafeRawBufferPointer) -> String? {
        HTTPResponseScanner.bareLineEnding(b).map { "\($0) in the request head" }
    }

    /// Scans a head that ends with its blank line (`HTTPResponseScanner.findHeadEnd` finds it).
    public static func scan(_ b: UnsafeRawBufferPointer, maxHeaders: Int) -> HTTP1RequestHead? {
        let count = b.count
        guard count >= 18, b[count - 4] == 0x0D, b[count - 3] == 0x0A, b[count - 2] == 0x0D, b[count - 1] == 0x0A else {
            return nil
        }
        // Method: upper-case letters.
        var i = 0
        while i < count, b[i] >= 0x41, b[i] <= 0x5A { i += 1 }
        guard i > 0, i < count, b[i] == 0x20 else { return nil }
        let methodLength = i
        var head = HTTP1RequestHead(length: count, isHEAD: false, idempotent: false, close: false, connectionLine: nil)
        switch methodLength {
        case 3:
            head.idempotent =
                HTTPResponseScanner.equalsExact(b, 0, "GET") || HTTPResponseScanner.equalsExact(b, 0, "PUT")
        case 4:
            head.isHEAD = HTTPResponseScanner.equalsExact(b, 0, "HEAD")
            head.idempotent = head.isHEAD
        case 5: head.idempotent = HTTPResponseScanner.equalsExact(b, 0, "TRACE")
        case 6: head.idempotent = HTTPResponseScanner.equalsExact(b, 0, "DELETE")
        case 7: head.idempotent = HTTPResponseScanner.equalsExact(b, 0, "OPTIONS")
        default: break
        }
        // Target: origin-form only ('/' first; absolute-form, authority-form and '*' go to the full parser, which
        // checks them against Host), then visible ASCII or UTF-8 bytes, no spaces.
        i += 1
        let targetStart = i
        guard i < count, b[i] == 0x2F else { return nil }
        while i < count, b[i] > 0x20, b[i] != 0x7F { i += 1 }
        guard i > targetStart, i + 11 <= count, b[i] == 0x20, HTTPResponseScanner.equalsExact(b, i + 1, "HTTP/1.1"),
            b[i + 9] == 0x0D, b[i + 10] == 0x0A
        else { return nil }
        i += 11
        var headers = 0
        var hasHost = false
        while i + 1 < count, !(b[i] == 0x0D && b[i + 1] == 0x0A) {
            let lineStart = i
            while i < count, RequestTokens.isTokenByte(b[i]) { i += 1 }
            guard i > lineStart, i < count, b[i] == 0x3A else { return nil }
            let nameLength = i - lineStart
            i += 1
            while i < count, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
            let valueStart = i
            while i < count, b[i] >= 0x20 && b[i] != 0x7F || b[i] == 0x09 { i += 1 }
            guard i + 1 < count, b[i] == 0x0D, b[i + 1] == 0x0A else { return nil }
            var valueEnd = i
            while valueEnd > valueStart, b[valueEnd - 1] == 0x20 || b[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            i += 2
            headers += 1
            guard headers <= maxHeaders else { return nil }
            switch nameLength {
            case 2 where HTTPResponseScanner.equalsLower(b, lineStart, "te"): return nil
            case 4 where HTTPResponseScanner.equalsLower(b, lineStart, "host"):
                guard !hasHost else { return nil }  // two Hosts: the full parser answers 400
                hasHost = true
            case 6 where HTTPResponseScanner.equalsLower(b, lineStart, "expect"): return nil
            case 7
            where HTTPResponseScanner.equalsLower(b, lineStart, "upgrade")
                || HTTPResponseScanner.equalsLower(b, lineStart, "trailer"):
                return nil
            case 10 where HTTPResponseScanner.equalsLower(b, lineStart, "connection"):
                guard head.connectionLine == nil else { return nil }
                if valueEnd - valueStart == 5 && HTTPResponseScanner.equalsLower(b, valueStart, "close") {
                    head.close = true
                } else if !(valueEnd - valueStart == 10 && HTTPResponseScanner.equalsLower(b, valueStart, "keep-alive"))
                {
                    return nil
                }
                head.connectionLine = lineStart..<i
            case 10 where HTTPResponseScanner.equalsLower(b, lineStart, "keep-alive"): return nil
            case 14 where HTTPResponseScanner.equalsLower(b, lineStart, "content-length"):
                guard valueEnd - valueStart == 1, b[valueStart] == 0x30 else { return nil }
            case 15 where HTTPResponseScanner.equalsLower(b, lineStart, "x-forwarded-for"): return nil
            case 16 where HTTPResponseScanner.equalsLower(b, lineStart, "proxy-connection"): return nil
            case 17 where HTTPResponseScanner.equalsLower(b, lineStart, "transfer-encoding"): return nil
            case 17 where HTTPResponseScanner.equalsLower(b, lineStart, "x-forwarded-proto"): head.forwardedProto = true
            default: break
            }
        }
        guard hasHost, i + 2 == count else { return nil }
        return head
    }
}

/// The bytes an HTTP token (a method, a header name) may hold.
enum RequestTokens {
    /// RFC 9110 §5.6.2 tchar.
    @inline(__always)
    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }
}
