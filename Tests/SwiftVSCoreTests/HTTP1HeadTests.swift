import SwiftVSCore
import Testing

@Suite("HTTP/1 heads for the director's fast path")
struct HTTP1HeadTests {
    func request(_ text: String, maxHeaders: Int = 100) -> HTTP1RequestHead? {
        Array(text.utf8).withUnsafeBytes { HTTP1RequestHead.scan($0, maxHeaders: maxHeaders) }
    }

    @Test("plain requests are taken, with what the proxy needs to know")
    func plain() throws {
        let get = try #require(request("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"))
        #expect(get.length == 47 && get.idempotent && !get.isHEAD && !get.close && get.connectionLine == nil)
        let head = try #require(request("HEAD / HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n"))
        #expect(head.isHEAD && head.idempotent && head.close)
        let text = "GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        let kept = try #require(request(text))
        let line = try #require(kept.connectionLine)
        #expect(String(decoding: Array(text.utf8)[line], as: UTF8.self) == "Connection: keep-alive\r\n")
        #expect(request("POST /x HTTP/1.1\r\nHost: x\r\n\r\n")?.idempotent == false)
    }

    @Test(
        "anything else is left to the full parser",
        arguments: [
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n",  // HTTP/1.0
            "GET / HTTP/1.1\r\n\r\n",  // no Host
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",  // a body
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, x-foo\r\n\r\n",  // other Connection tokens
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nKeep-Alive: 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  // obs-fold
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",  // space before the colon
            "GET / HTTP/1.1\r\nHost: x\ny\r\n\r\n",  // bare LF
            "GET / HTTP/1.1\r\nHost: x\u{1}\r\n\r\n",  // control byte
            "get / HTTP/1.1\r\nHost: x\r\n\r\n",  // lower-case method
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n",  // not a whole head
            "\u{16}\u{3}\u{1}garbage\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  // two Hosts: the full parser answers 400
            "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",  // absolute-form: checked against Host there
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        ])
    func notPlain(_ text: String) {
        #expect(request(text) == nil)
    }

    @Test(
        "a head that has not all arrived is waited for only while it can still be plain; a bare LF is an error at once")
    func partial() {
        func kind(_ text: String) -> HTTP1RequestHead.Partial {
            Array(text.utf8).withUnsafeBytes { HTTP1RequestHead.classifyPartial($0) }
        }
        func may(_ text: String) -> Bool { kind(text) == .mayBePlain }
        #expect(may("GE") && may("GET / HTTP/1.1\r\nHo") && may("DELETE /x HTTP/1.1\r\nHost: a\r\n"))
        #expect(!may("") && !may("\u{16}\u{3}\u{1}") && !may("get / HTTP/1.1") && !may("GET /\u{0} HTTP/1.1"))
        #expect(!may(String(repeating: "A", count: 17)))
        // Line endings: a bare LF anywhere, or a CR followed by anything but LF, is malformed; a CR at the end waits.
        #expect(kind("GET / HTTP/1.1\nHost: a") == .malformed("bare LF in the request head"))
        #expect(kind("GET / HTTP/1.0\n") == .malformed("bare LF in the request head"))
        #expect(kind("GET / HTTP/1.1\rHost: a") == .malformed("bare CR in the request head"))
        #expect(kind("GET / HTTP/1.1\r") == .mayBePlain)
        #expect(kind("get / HTTP/1.1\n") == .malformed("bare LF in the request head"))
    }

    @Test("more headers than the limit are left to the full parser (it answers 431)")
    func tooMany() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "A: b\r\n", count: 5) + "\r\n"
        #expect(request(text, maxHeaders: 6) != nil)
        #expect(request(text, maxHeaders: 5) == nil)
    }

    struct ResponseHead: Equatable {
        var status: Int
        var http10: Bool
        var hopLines: [Range<Int>]
    }

    func response(_ text: String) -> (ResponseHead, String)? {
        let bytes = Array(text.utf8)
        var scanner = HTTPResponseScanner()
        scanner.collectsHopLines = true
        if case .invalid = bytes.withUnsafeBytes({ scanner.feed($0) }) { return nil }
        let head = ResponseHead(status: scanner.status, http10: scanner.http10, hopLines: scanner.hopLines)
        // What the client gets: the head without the hop lines.
        var kept: [UInt8] = []
        var start = 0
        for line in head.hopLines {
            kept += bytes[start..<line.lowerBound]
            start = line.upperBound
        }
        kept += bytes[start...]
        return (head, String(decoding: kept, as: UTF8.self))
    }

    @Test("response heads: status, version, and the hop-by-hop lines that stay behind")
    func responses() throws {
        let (ok, okKept) = try #require(
            response("HTTP/1.1 200 OK\r\nServer: n\r\nConnection: keep-alive\r\nETag: e\r\n\r\n"))
        #expect(ok.status == 200 && !ok.http10 && okKept == "HTTP/1.1 200 OK\r\nServer: n\r\nETag: e\r\n\r\n")
        let (hop, hopKept) = try #require(
            response(
                "HTTP/1.0 404 Not Found\r\nX-Hop: 1\r\nConnection: X-Hop, keep-alive\r\nKeep-Alive: timeout=5\r\n"
                    + "Proxy-Connection: x\r\nTE: t\r\nTrailer: x\r\nUpgrade: h2c\r\nX-Kept: 2\r\n\r\n"))
        #expect(hop.status == 404 && hop.http10 && hopKept == "HTTP/1.0 404 Not Found\r\nX-Kept: 2\r\n\r\n")
        #expect(response("HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n")?.0.status == 103)
        #expect(response("HTTP/2 200\r\n\r\n") == nil)
        #expect(response("HTTP/1.1 2000 OK\r\n\r\n") == nil)
        #expect(response("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n") == nil)
        #expect(response("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n") == nil)
    }
}
