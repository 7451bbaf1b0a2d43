/// One stream's response, from the HTTP/1.1 bytes a real server (or the director's error page) sent to HTTP/2
/// frames: the head becomes HEADERS (`:status`, the fields less the hop-by-hop ones, RFC 9113 §8.2.2), the body
/// DATA (a chunked one unchunked), and where the HTTP/1.1 framing says the body ends, END_STREAM. 1xx heads are
/// dropped.
///
/// Backpressure: `feed` takes all it is given or nothing. What the flow-control windows did not let out waits in
/// `pending` (at most one feed's worth), and while it waits `feed` takes nothing.
public struct HTTP2Response: Sendable {
    public enum Fed: Equatable, Sendable {
        case taken
        /// Nothing taken: the stream waits for window space (`flush` when it opens).
        case blocked
        /// The bytes are not an HTTP/1.x response.
        case invalid(String)
    }

    enum Body: Equatable {
        case head
        case fixed(remaining: Int)
        case chunked
        case untilClose
        case done
    }

    let stream: UInt32
    let isHEAD: Bool
    var body = Body.head
    var headBytes: [UInt8] = []
    var chunks = ChunkedBody()
    var pending: [UInt8] = []
    var pendingStart = 0
    var pendingEnd = false

    public init(stream: UInt32, isHEAD: Bool) {
        self.stream = stream
        self.isHEAD = isHEAD
    }

    /// The response has ended (END_STREAM is out, or waits in `pending` behind the window).
    public var complete: Bool { self.body == .done }
    public var hasPending: Bool { self.pendingStart < self.pending.count || self.pendingEnd }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, into connection: inout HTTP2Connection) -> Fed {
        if self.hasPending {
            self.flush(into: &connection)
            if self.hasPending { return .blocked }
        }
        var input = bytes
        while !input.isEmpty {
            switch self.body {
            case .head:
                // Heads usually come whole; one that spans reads is gathered.
                var used = 0
                var problem: String?
                if self.headBytes.isEmpty, let end = HTTPResponseScanner.findHeadEnd(input, from: 0) {
                    problem = self.head(UnsafeRawBufferPointer(rebasing: input[0..<end]), into: &connection)
                    used = end
                } else {
                    let kept = self.headBytes.count
                    self.headBytes.append(contentsOf: input)
                    guard self.headBytes.count <= HTTPResponseScanner.maxHeadBytes else {
                        return .invalid("response head too large")
                    }
                    guard
                        let end = self.headBytes.withUnsafeBytes({
                            HTTPResponseScanner.findHeadEnd($0, from: max(0, kept - 3))
                        })
                    else { return .taken }
                    problem = self.headBytes.withUnsafeBytes {
                        self.head(UnsafeRawBufferPointer(rebasing: $0[0..<end]), into: &connection)
                    }
                    used = end - kept
                    self.headBytes.removeAll()
                }
                if let problem { return .invalid(problem) }
                input = UnsafeRawBufferPointer(rebasing: input[used...])
            case .fixed(let remaining):
                let n = min(remaining, input.count)
                self.body = n == remaining ? .done : .fixed(remaining: remaining - n)
                self.data(UnsafeRawBufferPointer(rebasing: input[0..<n]), end: n == remaining, into: &connection)
                return .taken
            case .chunked:
                var chunks = self.chunks
                let outcome = chunks.feed(input) { self.data($0, end: false, into: &connection) }
                self.chunks = chunks
                switch outcome {
                case .needMore:
                    break
                case .done:
                    self.body = .done
                    self.data(UnsafeRawBufferPointer(start: nil, count: 0), end: true, into: &connection)
                case .invalid(let problem):
                    return .invalid(problem)
                }
                return .taken
            case .untilClose:
                self.data(input, end: false, into: &connection)
                return .taken
            case .done:
                return .taken  // bytes past the end: the relay's session does not send them
            }
        }
        return .taken
    }

    /// The HTTP/1.1 side is over. True when the response was whole (a body that runs until the close ends here);
    /// false: the stream is to be reset.
    public mutating func end(into connection: inout HTTP2Connection) -> Bool {
        switch self.body {
        case .done:
            return true
        case .untilClose:
            self.body = .done
            self.data(UnsafeRawBufferPointer(start: nil, count: 0), end: true, into: &connection)
            return true
        default:
            return false
        }
    }

    /// Sends what waited for the window.
    public mutating func flush(into connection: inout HTTP2Connection) {
        guard self.hasPending else { return }
        let count = self.pending.count - self.pendingStart
        let taken = self.pending.withUnsafeBytes {
            connection.sendData(
                self.stream, UnsafeRawBufferPointer(rebasing: $0[self.pendingStart...]), endStream: self.pendingEnd)
        }
        self.pendingStart += taken
        if taken == count {
            self.pending.removeAll(keepingCapacity: true)
            self.pendingStart = 0
            self.pendingEnd = false
        }
    }

    private mutating func data(_ bytes: UnsafeRawBufferPointer, end: Bool, into connection: inout HTTP2Connection) {
        if self.hasPending {
            self.pending.append(contentsOf: bytes)
            self.pendingEnd = self.pendingEnd || end
            return
        }
        guard !bytes.isEmpty || end else { return }
        let taken = connection.sendData(self.stream, bytes, endStream: end)
        if taken < bytes.count || (bytes.isEmpty && end && connection.isOpen(self.stream)) {
            self.pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[taken...]))
            self.pendingEnd = end
        }
    }

    /// Reads a whole head and sends its HEADERS; a problem, or nil.
    private mutating func head(_ head: UnsafeRawBufferPointer, into connection: inout HTTP2Connection) -> String? {
        guard head.count >= 16, HTTP2RequestHead.equals(UnsafeRawBufferPointer(rebasing: head[0..<7]), "HTTP/1."),
            head[12] == 0x20 || head[12] == 0x0D
        else { return "not an HTTP/1.x status line" }
        let d0 = Int(head[9]) - 48
        let d1 = Int(head[10]) - 48
        let d2 = Int(head[11]) - 48
        guard (1...5).contains(d0), (0...9).contains(d1), (0...9).contains(d2) else { return "bad status code" }
        let status = d0 * 100 + d1 * 10 + d2
        if status < 200 {
            return status == 101 ? "a 101 nobody asked for" : nil  // informational: dropped, the final head follows
        }
        guard let mark = connection.beginHeaders(self.stream) else {
            self.body = .done  // the stream is gone: the rest of the response goes nowhere
            return nil
        }
        HPACKEncoder.status(status, into: &connection.output)
        var chunked = false
        var contentLength: Int?
        if let problem = Self.fields(head, into: &connection.output, chunked: &chunked, length: &contentLength) {
            connection.output.removeSubrange((mark - 9)...)  // the frame begun, unsent
            return problem
        }
        if chunked && contentLength != nil {
            // Transfer-Encoding wins (RFC 9112 §6.3): the fields again, without the Content-Length.
            connection.output.removeSubrange(mark...)
            HPACKEncoder.status(status, into: &connection.output)
            contentLength = nil
            _ = Self.fields(head, into: &connection.output, chunked: &chunked, length: &contentLength, dropLength: true)
        }
        let noBody = self.isHEAD || status == 204 || status == 304
        if noBody {
            self.body = .done
        } else if chunked {
            self.body = .chunked
        } else if let contentLength {
            self.body = contentLength == 0 ? .done : .fixed(remaining: contentLength)
        } else {
            self.body = .untilClose
        }
        connection.endHeaders(self.stream, at: mark, endStream: self.body == .done)
        return nil
    }

    /// The head's fields in HPACK, less the hop-by-hop ones; a problem, or nil.
    private static func fields(
        _ head: UnsafeRawBufferPointer, into block: inout [UInt8], chunked: inout Bool, length: inout Int?,
        dropLength: Bool = false, named: [UnsafeRawBufferPointer] = []
    ) -> String? {
        let mark = block.count
        // Fields the Connection header names are hop-by-hop too (RFC 9110 §7.6.1), wherever they stand: a name
        // other than close and keep-alive (which nginx and most servers send alone) sends the head through again.
        var namesOthers = false
        var at = HTTPResponseScanner.lineEnd(head, from: 12) + 2
        lines: while at < head.count - 2 {
            let lineEnd = HTTPResponseScanner.lineEnd(head, from: at)
            var colon = at
            while colon < lineEnd && head[colon] != 0x3A { colon += 1 }
            guard colon < lineEnd, colon > at else { return "a header line without a name" }
            var valueStart = colon + 1
            while valueStart < lineEnd && (head[valueStart] == 0x20 || head[valueStart] == 0x09) { valueStart += 1 }
            var valueEnd = lineEnd
            while valueEnd > valueStart && (head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: head[at..<colon])
            let value = UnsafeRawBufferPointer(rebasing: head[valueStart..<valueEnd])
            at = lineEnd + 2
            switch Self.special(name) {
            case .connectionSpecific:
                if name.count == 17 {
                    chunked = value.count >= 7 && Self.endsWithChunked(value)
                } else if name.count == 10 && named.isEmpty && Self.equalsLower(name, "connection") {
                    namesOthers =
                        namesOthers
                        || !Self.tokens(value).allSatisfy {
                            Self.equalsLower($0, "close") || Self.equalsLower($0, "keep-alive")
                        }
                }
                continue
            case .te:
                continue
            case .contentLength:
                if dropLength { continue }
                length = HTTP2RequestHead.decimal(value)
            default:
                break
            }
            for token in named where token.count == name.count {
                if zip(token, name).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) { continue lines }
            }
            HPACKEncoder.field(name: name, value: value, into: &block)
        }
        if namesOthers {
            var others: [UnsafeRawBufferPointer] = []
            var at = HTTPResponseScanner.lineEnd(head, from: 12) + 2
            while at < head.count - 2 {
                let lineEnd = HTTPResponseScanner.lineEnd(head, from: at)
                if lineEnd - at > 11,
                    Self.equalsLower(UnsafeRawBufferPointer(rebasing: head[at..<(at + 11)]), "connection:")
                {
                    others += Self.tokens(UnsafeRawBufferPointer(rebasing: head[(at + 11)..<lineEnd]))
                }
                at = lineEnd + 2
            }
            block.removeSubrange(mark...)
            return Self.fields(
                head, into: &block, chunked: &chunked, length: &length, dropLength: dropLength, named: others)
        }
        return nil
    }

    /// A comma-separated list's items, trimmed.
    static func tokens(_ value: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        value.split(separator: 0x2C).compactMap { token in
            var token = token[...]
            while let first = token.first, first == 0x20 || first == 0x09 { token = token.dropFirst() }
            while let last = token.last, last == 0x20 || last == 0x09 { token = token.dropLast() }
            return token.isEmpty ? nil : UnsafeRawBufferPointer(rebasing: token)
        }
    }

    /// `HTTP2RequestHead.special`, for a name in any case.
    static func special(_ name: UnsafeRawBufferPointer) -> HTTP2RequestHead.Special {
        switch name.count {
        case 2: return Self.equalsLower(name, "te") ? .te : .other
        case 7: return Self.equalsLower(name, "upgrade") ? .connectionSpecific : .other
        case 10:
            return Self.equalsLower(name, "connection") || Self.equalsLower(name, "keep-alive")
                ? .connectionSpecific : .other
        case 14: return Self.equalsLower(name, "content-length") ? .contentLength : .other
        case 16: return Self.equalsLower(name, "proxy-connection") ? .connectionSpecific : .other
        case 17: return Self.equalsLower(name, "transfer-encoding") ? .connectionSpecific : .other
        default: return .other
        }
    }

    /// `bytes`, ASCII letters in any case, are `word` (lowercase letters, digits and '-').
    @inline(__always)
    static func equalsLower(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        let w = word.utf8Start
        for i in 0..<bytes.count where bytes[i] | 0x20 != w[i] { return false }
        return true
    }

    static func endsWithChunked(_ value: UnsafeRawBufferPointer) -> Bool {
        let tail = value[(value.count - 7)...]
        return zip(tail, "chunked".utf8).allSatisfy { $0 | 0x20 == $1 }
    }
}
