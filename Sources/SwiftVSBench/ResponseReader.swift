/// Finds where each HTTP/1.x response ends in a byte stream, for the load client and the HLS viewers: its status,
/// whether the connection stays open, and how many bytes of the last read belonged to it.
///
/// It is the bench's own reading of RFC 9112 (§4 the status line, §6.3 the message length), written apart from the
/// director's `HTTPResponseScanner` on purpose: a load tester that judged the director with the director's parser
/// could not see that parser's mistakes. It favours plainness over speed: a head is gathered whole, then read line by
/// line; bodies are counted without being copied.
struct ResponseReader {
    enum Outcome: Equatable, Sendable {
        /// The response is not finished; feed more bytes.
        case needMore
        /// The response ended after `consumed` bytes of this read.
        case complete(status: Int, keepAlive: Bool, consumed: Int)
        /// The bytes are not an HTTP/1.x response.
        case invalid(String)
    }

    private enum Body {
        case head
        case length(remaining: Int)
        /// Reading a chunk-size line; `line` holds its bytes so far.
        case chunkSize(line: [UInt8])
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data: how many of its two bytes have been seen.
        case chunkEnd(seen: Int)
        /// Trailer lines after the last chunk; `line` holds the current one.
        case trailer(line: [UInt8])
        case untilClose
    }

    /// The longest head accepted.
    static let maxHead = 65_536

    private var body = Body.head
    private var head: [UInt8] = []
    private var headRequest = false
    private(set) var status = 0
    private var keepAlive = true

    /// Readies the reader for the next response; `headRequest`: it answers a HEAD, so it has no body.
    mutating func reset(headRequest: Bool = false) {
        self.body = .head
        self.head.removeAll(keepingCapacity: true)
        self.headRequest = headRequest
        self.status = 0
        self.keepAlive = true
    }

    /// Feeds one read. After `.complete`, call `reset` before the next response.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var offset = 0
        if case .head = self.body {
            // Find the head's blank line (CRLF CRLF, which may straddle two reads), then read the head.
            let kept = self.head.count
            var end: Int?
            var i = 0
            while i < bytes.count {
                if bytes[i] == 0x0A && self.isBlankLineEnd(bytes, i, kept: kept) {
                    end = i + 1
                    break
                }
                i += 1
            }
            guard let end else {
                self.head.append(contentsOf: bytes)
                return self.head.count > Self.maxHead ? .invalid("response head over 64 KiB") : .needMore
            }
            let problem: String?
            if kept == 0 {
                problem = self.readHead(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))  // the usual case: in place
            } else {
                self.head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
                let head = self.head
                problem = head.withUnsafeBytes { self.readHead($0) }
            }
            if let problem { return .invalid(problem) }
            offset = end
        }
        return self.readBody(bytes, from: offset)
    }

    /// Whether the LF at `bytes[i]` ends CR LF CR LF, counting the `kept` head bytes of earlier reads before `bytes`.
    private func isBlankLineEnd(_ bytes: UnsafeRawBufferPointer, _ i: Int, kept: Int) -> Bool {
        func at(_ back: Int) -> UInt8? {
            let j = i - back
            if j >= 0 { return bytes[j] }
            let k = kept + j
            return k >= 0 ? self.head[k] : nil
        }
        return at(1) == 0x0D && at(2) == 0x0A && at(3) == 0x0D
    }

    /// The server closed the connection: a body that runs until the close has ended.
    mutating func endOfStream() -> Outcome? {
        if case .untilClose = self.body { return .complete(status: self.status, keepAlive: false, consumed: 0) }
        return nil
    }

    // MARK: the head

    /// Reads the status line and the headers that frame the body, from `head` (the blank line included).
    private mutating func readHead(_ head: UnsafeRawBufferPointer) -> String? {
        // HTTP/1.1 200 Reason (the reason may be empty)
        guard head.count >= 14, Self.starts(head, 0, "HTTP/1."), head[7] == 0x30 || head[7] == 0x31, head[8] == 0x20
        else { return "not an HTTP/1.x status line" }
        guard (9..<12).allSatisfy({ head[$0] >= 0x30 && head[$0] <= 0x39 }), head[12] == 0x20 || head[12] == 0x0D else {
            return "bad status code"
        }
        self.status = (Int(head[9]) - 0x30) * 100 + (Int(head[10]) - 0x30) * 10 + Int(head[11]) - 0x30
        let http10 = head[7] == 0x30
        self.keepAlive = !http10
        var length: Int?
        var chunked = false
        var line = Self.lineEnd(head, from: 12) + 2
        while line < head.count - 2 {
            let end = Self.lineEnd(head, from: line)
            var colon = line
            while colon < end && head[colon] != 0x3A { colon += 1 }
            guard colon < end, colon > line else { return "header without a colon" }
            var start = colon + 1
            var stop = end
            while start < stop && (head[start] == 0x20 || head[start] == 0x09) { start += 1 }
            while stop > start && (head[stop - 1] == 0x20 || head[stop - 1] == 0x09) { stop -= 1 }
            if Self.named(head, line, colon, "content-length") {
                guard stop > start, stop - start <= 18,
                    (start..<stop).allSatisfy({ head[$0] >= 0x30 && head[$0] <= 0x39 })
                else { return "bad Content-Length" }
                let n = (start..<stop).reduce(0) { $0 * 10 + Int(head[$1]) - 0x30 }
                if let length, length != n { return "two different Content-Lengths" }
                length = n
            } else if Self.named(head, line, colon, "transfer-encoding") {
                // Chunked must be the last coding (RFC 9112 §6.1).
                chunked =
                    stop - start >= 7 && Self.named(head, stop - 7, stop, "chunked")
                    && (stop - start == 7 || head[stop - 8] == 0x2C || head[stop - 8] == 0x20 || head[stop - 8] == 0x09)
            } else if Self.named(head, line, colon, "connection") {
                if Self.hasToken(head, start, stop, "close") { self.keepAlive = false }
                if http10 && Self.hasToken(head, start, stop, "keep-alive") { self.keepAlive = true }
            }
            line = end + 2
        }
        // RFC 9112 §6.3, in its order.
        if self.headRequest || self.status < 200 || self.status == 204 || self.status == 304 {
            self.body = .length(remaining: 0)
        } else if chunked {
            self.body = .chunkSize(line: [])
        } else if let length {
            self.body = .length(remaining: length)
        } else {
            self.body = .untilClose
            self.keepAlive = false
        }
        return nil
    }

    /// Where the line that starts at `from` ends (its CR).
    private static func lineEnd(_ head: UnsafeRawBufferPointer, from: Int) -> Int {
        var i = from
        while i + 1 < head.count && !(head[i] == 0x0D && head[i + 1] == 0x0A) { i += 1 }
        return i
    }

    private static func starts(_ head: UnsafeRawBufferPointer, _ at: Int, _ word: StaticString) -> Bool {
        Self.named(head, at, at + word.utf8CodeUnitCount, word, caseSensitive: true)
    }

    /// Whether `head[from..<to]` is `lowercase` (ASCII, any case unless `caseSensitive`).
    private static func named(
        _ head: UnsafeRawBufferPointer, _ from: Int, _ to: Int, _ lowercase: StaticString, caseSensitive: Bool = false
    ) -> Bool {
        guard to - from == lowercase.utf8CodeUnitCount, to <= head.count else { return false }
        let word = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for k in 0..<word.count {
            let c = head[from + k]
            if (caseSensitive ? c : (c >= 0x41 && c <= 0x5A ? c | 0x20 : c)) != word[k] { return false }
        }
        return true
    }

    /// Whether the comma-separated list in `head[from..<to]` holds `token` (any case).
    private static func hasToken(_ head: UnsafeRawBufferPointer, _ from: Int, _ to: Int, _ token: StaticString) -> Bool
    {
        var i = from
        while i < to {
            while i < to && (head[i] == 0x20 || head[i] == 0x09 || head[i] == 0x2C) { i += 1 }
            let start = i
            while i < to && head[i] != 0x2C { i += 1 }
            var stop = i
            while stop > start && (head[stop - 1] == 0x20 || head[stop - 1] == 0x09) { stop -= 1 }
            if Self.named(head, start, stop, token) { return true }
        }
        return false
    }

    // MARK: the body

    private mutating func readBody(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Outcome {
        var i = start
        while true {
            switch self.body {
            case .head:
                return .needMore
            case .untilClose:
                return .needMore
            case .length(let remaining):
                let take = min(remaining, bytes.count - i)
                i += take
                if remaining == take {
                    return .complete(status: self.status, keepAlive: self.keepAlive, consumed: i)
                }
                self.body = .length(remaining: remaining - take)
                return .needMore
            case .chunkSize(var line):
                while i < bytes.count && bytes[i] != 0x0A {
                    line.append(bytes[i])
                    i += 1
                }
                guard i < bytes.count else {
                    if line.count > 1024 { return .invalid("chunk-size line over 1 KiB") }
                    self.body = .chunkSize(line: line)
                    return .needMore
                }
                i += 1  // the LF
                guard line.last == 0x0D else { return .invalid("chunk-size line not ended by CRLF") }
                let text = String(decoding: line.dropLast(), as: UTF8.self)
                let hex = text.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpacesAndTabs() } ?? ""
                guard !hex.isEmpty, hex.count <= 15, let size = Int(hex, radix: 16) else {
                    return .invalid("bad chunk size '\(text)'")
                }
                self.body = size == 0 ? .trailer(line: []) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let take = min(remaining, bytes.count - i)
                i += take
                guard remaining == take else {
                    self.body = .chunkData(remaining: remaining - take)
                    return .needMore
                }
                self.body = .chunkEnd(seen: 0)
            case .chunkEnd(var seen):
                while seen < 2 && i < bytes.count {
                    guard bytes[i] == (seen == 0 ? 0x0D : 0x0A) else {
                        return .invalid("chunk data not followed by CRLF")
                    }
                    seen += 1
                    i += 1
                }
                guard seen == 2 else {
                    self.body = .chunkEnd(seen: seen)
                    return .needMore
                }
                self.body = .chunkSize(line: [])
            case .trailer(var line):
                while i < bytes.count && bytes[i] != 0x0A {
                    line.append(bytes[i])
                    i += 1
                }
                guard i < bytes.count else {
                    self.body = .trailer(line: line)
                    return .needMore
                }
                i += 1
                if line == [0x0D] || line.isEmpty {
                    return .complete(status: self.status, keepAlive: self.keepAlive, consumed: i)
                }
                self.body = .trailer(line: [])
            }
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional white space).
    func trimmingSpacesAndTabs() -> String {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
