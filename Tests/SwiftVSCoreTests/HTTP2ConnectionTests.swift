import Testing

@testable import SwiftVSCore

/// Frames as the tests read them back from `HTTP2Connection.output`.
private struct Frame: Equatable, CustomStringConvertible {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]
    var errorCode: UInt32? {
        let at = self.type == 7 ? 4 : self.type == 3 ? 0 : -1
        guard at >= 0, self.payload.count >= at + 4 else { return nil }
        return self.payload[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
    var description: String { "type \(self.type) flags \(self.flags) stream \(self.stream) \(self.payload.count) B" }

    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var at = 0
        while at + 9 <= bytes.count {
            let length = Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
            let stream = bytes[(at + 5)..<(at + 9)].reduce(0) { $0 << 8 | UInt32($1) }
            frames.append(
                Frame(
                    type: bytes[at + 3], flags: bytes[at + 4], stream: stream,
                    payload: Array(bytes[(at + 9)..<(at + 9 + length)])))
            at += 9 + length
        }
        return frames
    }
}

private func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
    let n = payload.count
    return [UInt8(n >> 16), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags] + be32(stream) + payload
}

private func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
}

private let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
/// GET / on http, authority "a" (indexed :method, :scheme, :path; a literal :authority).
private let getSlash: [UInt8] = [0x82, 0x86, 0x84, 0x01, 0x01, 0x61]

private func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// A connection fed `input` at `now`: its events and the frames it wrote (the output is taken).
private func feed(
    _ connection: inout HTTP2Connection, _ input: [UInt8], now: UInt64 = 0
) -> (
    [HTTP2Connection.Event], [Frame]
) {
    var events: [HTTP2Connection.Event] = []
    let used = input.withUnsafeBytes { connection.receive($0, now: now, events: &events) }
    #expect(used == input.count)
    let frames = Frame.parse(connection.output)
    connection.output.removeAll()
    return (events, frames)
}

/// A connection past its preface and SETTINGS exchange.
private func opened(_ settings: HTTP2Connection.Settings = .init()) -> HTTP2Connection {
    var connection = HTTP2Connection(settings: settings)
    _ = feed(&connection, clientPreface + frame(4))
    return connection
}

@Suite("HPACK (RFC 7541)")
struct HPACKTests {
    private func decode(_ decoder: inout HPACKDecoder, _ block: [UInt8]) throws -> [String] {
        var list = HeaderList()
        try block.withUnsafeBytes { try decoder.decode($0, into: &list) }
        return (0..<list.fields.count).map {
            String(decoding: list.name($0), as: UTF8.self) + ": " + String(decoding: list.value($0), as: UTF8.self)
        }
    }

    @Test("C.3 and C.4: three requests share the dynamic table, without and with Huffman coding")
    func rfcExamples() throws {
        let plain = [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]
        let huffman = [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]
        let expected = [
            [":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"],
            [":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"],
            [
                ":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com",
                "custom-key: custom-value",
            ],
        ]
        for blocks in [plain, huffman] {
            var decoder = HPACKDecoder()
            for (block, fields) in zip(blocks, expected) {
                #expect(try self.decode(&decoder, hex(block)) == fields)
            }
        }
    }

    @Test("bad blocks are errors: index 0 or past the table, a size update over the limit or after a field, EOS")
    func errors() {
        let bad: [(String, [UInt8])] = [
            ("index 0", [0x80]),
            ("index past the tables", [0xBE]),
            ("size update over the limit", [0x3F, 0xE2, 0x1F]),  // 31 + 98 + 31 << 7 = 4097
            ("size update after a field", [0x82, 0x20]),
            ("truncated string", [0x40, 0x05, 0x61]),
            ("padding that is not EOS's prefix", [0x40, 0x81, 0x00, 0x01, 0x61]),
            ("integer too large", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        ]
        for (why, block) in bad {
            var decoder = HPACKDecoder()
            #expect(throws: HPACKError.self, "\(why)") { try self.decode(&decoder, block) }
        }
    }

    @Test("the encoder's block decodes to :status and the fields, names in lowercase, static names indexed")
    func encoder() throws {
        for status in [200, 204, 302, 404, 431, 503] {
            var block: [UInt8] = []
            HPACKEncoder.status(status, into: &block)
            for (name, value) in [("Content-Type", "text/plain"), ("X-Long", String(repeating: "v", count: 300))] {
                Array(name.utf8).withUnsafeBytes { n in
                    Array(value.utf8).withUnsafeBytes { v in HPACKEncoder.field(name: n, value: v, into: &block) }
                }
            }
            var decoder = HPACKDecoder()
            let fields = try self.decode(&decoder, block)
            #expect(
                fields == [
                    ":status: \(status)", "content-type: text/plain", "x-long: " + String(repeating: "v", count: 300),
                ])
        }
    }
}

@Suite("HTTP/1.1 chunked bodies unchunked")
struct ChunkedBodyTests {
    @Test("data, sizes with extensions and trailers, split at every byte, give the same data and end")
    func everySplit() {
        let body = Array("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT".utf8)
        let end = body.count - 4
        for split in 0...end {
            var decoder = ChunkedBody()
            var data: [UInt8] = []
            var total = 0
            var done = false
            for piece in [body[0..<split], body[split...]] {
                let bytes = Array(piece)
                let outcome = bytes.withUnsafeBytes { decoder.feed($0) { data += $0 } }
                if case .done(let used) = outcome {
                    total += used
                    done = true
                    break
                }
                total += bytes.count
            }
            #expect(String(decoding: data, as: UTF8.self) == "hello world", "split at \(split)")
            #expect(done && total == end, "split at \(split): the end found after the trailers")
        }
    }

    @Test("a bad size, or data past its size, is invalid")
    func invalid() {
        for text in ["x\r\n", "\r\n", "2\r\nabc\r\n", "fffffffffffffffff\r\n"] {
            var decoder = ChunkedBody()
            let outcome = Array(text.utf8).withUnsafeBytes { decoder.feed($0) { _ in } }
            guard case .invalid = outcome else {
                Issue.record("\(text.debugDescription) gave \(outcome)")
                continue
            }
        }
    }
}

@Suite("HTTP/2 request heads as HTTP/1.1")
struct HTTP2RequestHeadTests {
    private func make(_ fields: [(String, String)], endStream: Bool = true) -> HTTP2RequestHead.Made {
        var list = HeaderList()
        for (name, value) in fields { list.append(name: Array(name.utf8), value: Array(value.utf8)) }
        return HTTP2RequestHead.make(list, endStream: endStream)
    }

    private let base = [(":method", "GET"), (":scheme", "https"), (":path", "/a?b=1"), (":authority", "x.test")]

    @Test("a request's head: the request line, Host from :authority, the fields, cookies joined, chunked for a body")
    func translation() {
        guard case .head(let head) = self.make(self.base + [("accept", "*/*"), ("cookie", "a=1"), ("cookie", "b=2")])
        else { Issue.record("not a head"); return }
        #expect(
            String(decoding: head.http1, as: UTF8.self)
                == "GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\naccept: */*\r\ncookie: a=1; b=2\r\n\r\n")
        #expect(!head.hasBody && !head.isHEAD)
        let post = self.make(
            [(":method", "POST"), (":scheme", "http"), (":path", "/u"), ("host", "h")], endStream: false)
        guard case .head(let upload) = post else { Issue.record("not a head"); return }
        #expect(
            String(decoding: upload.http1, as: UTF8.self)
                == "POST /u HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n")
        guard case .head(let sized) = self.make(self.base + [("content-length", "3")], endStream: false) else {
            Issue.record("not a head"); return
        }
        #expect(sized.contentLength == 3 && !sized.chunked)
        #expect(self.make(self.base + [("te", "trailers")]) != .malformed)
        #expect(self.make([(":method", "CONNECT"), (":authority", "x:443")]) == .connect)
    }

    @Test("malformed requests (RFC 9113 §8.2, §8.3): each is a stream error")
    func malformed() {
        let cases: [(String, [(String, String)])] = [
            ("uppercase name", self.base + [("Accept", "x")]),
            ("connection-specific field", self.base + [("connection", "close")]),
            ("transfer-encoding", self.base + [("transfer-encoding", "chunked")]),
            ("te other than trailers", self.base + [("te", "gzip")]),
            ("pseudo-header after a field", [("accept", "x")] + self.base),
            ("unknown pseudo-header", self.base + [(":protocol", "websocket")]),
            ("duplicate :path", self.base + [(":path", "/b")]),
            ("no :path", Array(self.base.filter { $0.0 != ":path" })),
            ("empty :path", [(":method", "GET"), (":scheme", "http"), (":path", "")]),
            ("CR in a value", self.base + [("x", "a\rb")]),
            ("space at a value's end", self.base + [("x", "a ")]),
            ("two content-lengths that differ", self.base + [("content-length", "1"), ("content-length", "2")]),
        ]
        for (why, fields) in cases {
            #expect(self.make(fields) == .malformed, "\(why)")
        }
    }
}

@Suite("HTTP/2 connection state machine")
struct HTTP2ConnectionTests {
    @Test("the preface: SETTINGS, a connection WINDOW_UPDATE; the client's SETTINGS acknowledged; PING answered")
    func preface() {
        var connection = HTTP2Connection()
        let start = Frame.parse(connection.output)
        #expect(start.map(\.type) == [4, 8])
        connection.output.removeAll()
        let (events, frames) = feed(&connection, clientPreface + frame(4) + frame(6, [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(events.isEmpty)
        #expect(
            frames == [
                Frame(type: 4, flags: 1, stream: 0, payload: []),
                Frame(type: 6, flags: 1, stream: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8]),
            ])
    }

    @Test("frames split anywhere are read when whole")
    func partial() {
        var connection = opened()
        let bytes = frame(1, flags: 5, stream: 1, getSlash)
        var events: [HTTP2Connection.Event] = []
        var buffer: [UInt8] = []
        for byte in bytes {
            buffer.append(byte)
            let used = buffer.withUnsafeBytes { connection.receive($0, now: 0, events: &events) }
            buffer.removeFirst(used)
        }
        guard case .request(1, let head)? = events.first else { Issue.record("\(events)"); return }
        #expect(String(decoding: head.http1, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    }

    /// Each row: what the client sends after the preface, and the error the RFC names (GOAWAY for the connection,
    /// RST_STREAM for a stream).
    @Test("RFC 9113 errors, each with the code it names")
    func errors() {
        let rows: [(String, [UInt8], goaway: UInt32?, reset: UInt32?)] = [
            ("frame over SETTINGS_MAX_FRAME_SIZE", frame(0, stream: 1, [UInt8](repeating: 0, count: 16_385)), 0x6, nil),
            ("DATA on stream 0", frame(0, [1]), 0x1, nil),
            ("DATA on an idle stream", frame(0, stream: 5, [1]), 0x1, nil),
            ("HEADERS on an even stream", frame(1, flags: 5, stream: 2, getSlash), 0x1, nil),
            (
                "DATA after END_STREAM (half-closed)",
                frame(1, flags: 5, stream: 1, getSlash) + frame(0, stream: 1, [1]), nil, 0x5
            ),
            (
                "a stream id going back",
                frame(1, flags: 5, stream: 5, getSlash) + frame(1, flags: 5, stream: 3, getSlash), 0x5, nil
            ),
            ("SETTINGS with a stream", frame(4, stream: 1), 0x1, nil),
            ("SETTINGS of a bad length", frame(4, [0, 4, 0]), 0x6, nil),
            ("SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1", frame(4, [0, 4, 0x80, 0, 0, 0]), 0x3, nil),
            ("SETTINGS_MAX_FRAME_SIZE under 16384", frame(4, [0, 5, 0, 0, 0x10, 0]), 0x1, nil),
            ("SETTINGS_ENABLE_PUSH of 2", frame(4, [0, 2, 0, 0, 0, 2]), 0x1, nil),
            ("PING of 7 bytes", frame(6, [0, 0, 0, 0, 0, 0, 0]), 0x6, nil),
            ("PUSH_PROMISE from a client", frame(5, stream: 1, [0, 0, 0, 2]), 0x1, nil),
            ("connection window over 2^31-1", frame(8, be32(0x7FFF_FFFF)), 0x3, nil),
            ("WINDOW_UPDATE of 0 on the connection", frame(8, be32(0)), 0x1, nil),
            (
                "stream window over 2^31-1",
                frame(1, flags: 4, stream: 1, getSlash) + frame(8, stream: 1, be32(0x7FFF_FFFF)), nil, 0x3
            ),
            ("RST_STREAM on an idle stream", frame(3, stream: 1, be32(8)), 0x1, nil),
            ("a bad HPACK block", frame(1, flags: 5, stream: 1, [0x80]), 0x9, nil),
            (
                "something between HEADERS and CONTINUATION",
                frame(1, flags: 1, stream: 1, [0x82]) + frame(6, [UInt8](repeating: 0, count: 8)), 0x1, nil
            ),
            ("CONTINUATION without HEADERS", frame(9, flags: 4, stream: 1, getSlash), 0x1, nil),
            (
                "uppercase field name", frame(1, flags: 5, stream: 1, getSlash + [0x00, 0x01, 0x41, 0x01, 0x62]), nil,
                0x1
            ),
        ]
        for (why, bytes, goaway, reset) in rows {
            var connection = opened()
            let (_, frames) = feed(&connection, bytes)
            #expect(frames.first { $0.type == 7 }?.errorCode == goaway, "\(why): \(frames)")
            #expect(frames.first { $0.type == 3 }?.errorCode == reset, "\(why): \(frames)")
        }
        var bad = HTTP2Connection()
        let (events, frames) = feed(&bad, Array("GET / HTTP/1.1\r\n\r\n123456".utf8))
        #expect(events == [.close(.protocolError)] && frames.last?.errorCode == 0x1, "not the preface")
    }

    @Test("rapid reset: 201 resets within 30 s is ENHANCE_YOUR_CALM; the same spread over more than 30 s is not")
    func rapidReset() {
        for (spacing, calm): (UInt64, Bool) in [(1_000_000, true), (200_000_000, false)] {
            var connection = opened()
            var events: [HTTP2Connection.Event] = []
            var frames: [Frame] = []
            for index in 0..<201 {
                let id = UInt32(2 * index + 1)
                let now = 1_000_000_000 + UInt64(index) * spacing
                (events, frames) = feed(
                    &connection, frame(1, flags: 5, stream: id, getSlash) + frame(3, stream: id, be32(8)), now: now)
            }
            #expect(events.contains(.close(.enhanceYourCalm)) == calm, "spacing \(spacing) ns")
            #expect(frames.contains { $0.type == 7 && $0.errorCode == 0xB } == calm)
        }
    }

    @Test("limits: a stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused; a header list over the limit gets 431")
    func limits() {
        var settings = HTTP2Connection.Settings()
        settings.maxConcurrentStreams = 2
        settings.maxHeaderListSize = 100
        var connection = opened(settings)
        let (_, first) = feed(
            &connection, frame(1, flags: 5, stream: 1, getSlash) + frame(1, flags: 5, stream: 3, getSlash))
        #expect(first.isEmpty)
        let (_, refused) = feed(&connection, frame(1, flags: 5, stream: 5, getSlash))
        #expect(refused == [Frame(type: 3, flags: 0, stream: 5, payload: be32(7))])
        var big = opened(settings)
        let long = [0x00, 0x01, 0x78, 0x7F, 0x00] + [UInt8](repeating: 0x79, count: 127)
        let (events, _) = feed(&big, frame(1, flags: 5, stream: 1, getSlash + long))
        #expect(events == [.respond(stream: 1, status: 431)])
    }

    @Test("flow control: DATA keeps to the client's windows, frame size; a WINDOW_UPDATE lets the rest go")
    func flowControl() {
        var connection = opened()
        _ = feed(&connection, frame(1, flags: 5, stream: 1, getSlash))
        let body = [UInt8](repeating: 0x7A, count: 70_000)
        let taken = body.withUnsafeBytes { connection.sendData(1, $0, endStream: true) }
        #expect(taken == 65_535)
        #expect(Frame.parse(connection.output).map(\.payload.count) == [16_384, 16_384, 16_384, 16_383])
        connection.output.removeAll()
        let (events, _) = feed(&connection, frame(8, be32(10_000)) + frame(8, stream: 1, be32(10_000)))
        #expect(events == [.windowOpened])
        let rest = body[taken...].withUnsafeBytes { connection.sendData(1, $0, endStream: true) }
        #expect(rest == 70_000 - 65_535)
        #expect(Frame.parse(connection.output).last?.flags == 1, "END_STREAM on the last")
        #expect(!connection.isOpen(1))
    }

    @Test("a body: DATA events in order, content-length checked, the window given back as the driver uses it")
    func requestBody() {
        var connection = opened()
        let post: [UInt8] = [0x83, 0x86, 0x84, 0x01, 0x01, 0x61, 0x0F, 0x0D, 0x01, 0x35]  // content-length: 5
        let (events, _) = feed(
            &connection, frame(1, flags: 4, stream: 1, post) + frame(0, stream: 1, Array("hel".utf8)))
        #expect(events.count == 2)
        #expect(events.last == .data(stream: 1, Array("hel".utf8), endStream: false))
        let (more, _) = feed(&connection, frame(0, flags: 1, stream: 1, Array("lo!".utf8)))
        #expect(more == [.reset(stream: 1)], "6 bytes against content-length 5")
        var roomy = opened()
        _ = feed(&roomy, frame(1, flags: 4, stream: 1, getSlash))
        roomy.consumed(1, 200_000)
        #expect(Frame.parse(roomy.output) == [Frame(type: 8, flags: 0, stream: 1, payload: be32(200_000))])
    }

    @Test("GOAWAY from the client, or the drain's own: open streams finish, new ones are refused, then it is done")
    func goAway() {
        var connection = opened()
        _ = feed(&connection, frame(1, flags: 5, stream: 1, getSlash))
        connection.goAway()
        #expect(
            Frame.parse(connection.output).last
                == Frame(type: 7, flags: 0, stream: 0, payload: be32(0x7FFF_FFFF) + be32(0)))
        #expect(!connection.finished)
        connection.output.removeAll()
        let (_, refused) = feed(&connection, frame(1, flags: 5, stream: 3, getSlash))
        #expect(refused == [Frame(type: 3, flags: 0, stream: 3, payload: be32(7))], "a new stream after it is refused")
        let block: [UInt8] = [0x88]
        connection.sendHeaders(1, block: block, endStream: true)
        #expect(connection.finished)
    }
}

@Suite("HTTP/1.1 responses as HTTP/2 frames")
struct HTTP2ResponseTests {
    @Test("a chunked response in pieces: HEADERS without hop-by-hop fields, the data unchunked, END_STREAM")
    func chunked() throws {
        var connection = opened()
        _ = feed(&connection, frame(1, flags: 5, stream: 1, getSlash))
        var response = HTTP2Response(stream: 1, isHEAD: false)
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: x-hop, keep-alive\r\nX-Hop: 1\r\n"
            + "Keep-Alive: timeout=5\r\nContent-Length: 100\r\nX-Kept: yes\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        for piece in Array(text.utf8).chunked(7) {
            #expect(piece.withUnsafeBytes { response.feed($0, into: &connection) } == .taken)
        }
        #expect(response.complete)
        let frames = Frame.parse(connection.output)
        var decoder = HPACKDecoder()
        var list = HeaderList()
        try frames[0].payload.withUnsafeBytes { try decoder.decode($0, into: &list) }
        let fields = (0..<list.fields.count).map {
            String(decoding: list.name($0), as: UTF8.self) + ": " + String(decoding: list.value($0), as: UTF8.self)
        }
        #expect(fields == [":status: 200", "x-kept: yes"])
        let data = frames.dropFirst().flatMap(\.payload)
        #expect(String(decoding: data, as: UTF8.self) == "hello world")
        #expect(frames.last?.flags == 1)
    }

    @Test("no body: HEAD, 204, 304 and Content-Length: 0 end with the HEADERS; 1xx heads are dropped")
    func noBody() {
        let rows: [(String, Bool)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true), ("HTTP/1.1 204 No Content\r\n\r\n", false),
            ("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false),
            ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        ]
        for (text, head) in rows {
            var connection = opened()
            _ = feed(&connection, frame(1, flags: 5, stream: 1, getSlash))
            var response = HTTP2Response(stream: 1, isHEAD: head)
            _ = Array(text.utf8).withUnsafeBytes { response.feed($0, into: &connection) }
            let frames = Frame.parse(connection.output)
            #expect(frames.count == 1 && frames[0].type == 1 && frames[0].flags == 5, "\(text.debugDescription)")
            #expect(response.complete)
        }
    }

    @Test("a body until the close ends at the close; a short Content-Length body does not (the stream is reset)")
    func ends() {
        var connection = opened()
        _ = feed(&connection, frame(1, flags: 5, stream: 1, getSlash) + frame(1, flags: 5, stream: 3, getSlash))
        var untilClose = HTTP2Response(stream: 1, isHEAD: false)
        _ = Array("HTTP/1.0 200 OK\r\n\r\nabc".utf8).withUnsafeBytes { untilClose.feed($0, into: &connection) }
        let ended = untilClose.end(into: &connection)
        #expect(ended)
        var short = HTTP2Response(stream: 3, isHEAD: false)
        _ = Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc".utf8).withUnsafeBytes {
            short.feed($0, into: &connection)
        }
        let shortEnded = short.end(into: &connection)
        #expect(!shortEnded)
        #expect(
            Array("garbage\r\n\r\n".utf8).withUnsafeBytes {
                HTTP2Response(stream: 5, isHEAD: false).feedCopy($0, &connection)
            }
                == .invalid("not an HTTP/1.x status line"))
    }
}

extension HTTP2Response {
    fileprivate func feedCopy(_ bytes: UnsafeRawBufferPointer, _ connection: inout HTTP2Connection) -> Fed {
        var copy = self
        return copy.feed(bytes, into: &connection)
    }
}

extension Array {
    fileprivate func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: self.count, by: size).map { Array(self[$0..<Swift.min($0 + size, self.count)]) }
    }
}
