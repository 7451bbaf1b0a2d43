@testable import SwiftVSBench
import Testing
@testable import SwiftVSCore

/// The bench's own response reader (`ResponseReader`), which is independent of the director's
/// `HTTPResponseScanner`; the last test checks that the two read the same corpus alike.
@Suite("The bench's HTTP response reader")
struct ScannerTests {
    func feed(_ parts: [String], head: Bool = false) -> [ResponseReader.Outcome] {
        var reader = ResponseReader()
        reader.reset(headRequest: head)
        return parts.map { part in Array(part.utf8).withUnsafeBytes { reader.feed($0) } }
    }

    @Test func contentLengthInOneRead() {
        let r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        #expect(self.feed([r]) == [.complete(status: 200, keepAlive: true, consumed: r.utf8.count)])
    }

    @Test func headSplitAcrossReads() {
        let out = self.feed(["HTTP/1.1 404 Not", " Found\r\nconTent-length: 3\r", "\n\r\nab", "c"])
        #expect(out == [.needMore, .needMore, .needMore, .complete(status: 404, keepAlive: true, consumed: 1)])
    }

    @Test func chunkedWithExtensionAndTrailer() {
        let out = self.feed([
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWi", "ki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n",
        ])
        #expect(out[0] == .needMore)
        #expect(out[1] == .complete(status: 200, keepAlive: true, consumed: 25))
    }

    @Test func connectionCloseAndHTTP10() {
        #expect(
            self.feed(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"])
                == [.complete(status: 200, keepAlive: false, consumed: 57)])
        #expect(
            self.feed(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"])
                == [.complete(status: 200, keepAlive: false, consumed: 38)])
    }

    @Test func bodyUntilClose() {
        var reader = ResponseReader()
        let first = Array("HTTP/1.1 200 OK\r\n\r\nstream".utf8).withUnsafeBytes { reader.feed($0) }
        #expect(first == .needMore)
        #expect(reader.endOfStream() == .complete(status: 200, keepAlive: false, consumed: 0))
    }

    @Test func headRequestHasNoBody() {
        #expect(
            self.feed(["HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"], head: true)
                == [.complete(status: 200, keepAlive: true, consumed: 39)])
    }

    @Test func garbageIsInvalid() {
        #expect(self.feed(["SSH-2.0-OpenSSH_9.2\r\n\r\n"]) == [.invalid("not an HTTP/1.x status line")])
        #expect(
            self.feed(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]) == [
                .invalid("bad chunk size 'zz'")
            ])
        #expect(
            self.feed(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"])
                == [.invalid("two different Content-Lengths")])
    }

    /// Two readings of RFC 9112 written apart: where they part, one of them (or the director) is wrong.
    @Test("the bench's reader and the director's scanner find the same ends in the same bytes, read in pieces")
    func agreesWithTheDirectorsScanner() {
        let corpus = [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\nconTent-length: 3\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
        for text in corpus {
            let bytes = Array(text.utf8)
            for split in 1..<bytes.count {
                var reader = ResponseReader()
                var scanner = HTTPResponseScanner()
                let pieces = [Array(bytes[..<split]), Array(bytes[split...])]
                let mine = pieces.map { piece in piece.withUnsafeBytes { reader.feed($0) } }
                let theirs = pieces.map { piece in piece.withUnsafeBytes { scanner.feed($0) } }
                let same = zip(mine, theirs).allSatisfy { a, b in
                    switch (a, b) {
                    case (.needMore, .needMore): return true
                    case (.complete(let s1, let k1, let c1), .complete(let s2, let k2, let c2)):
                        return s1 == s2 && k1 == k2 && c1 == c2
                    default: return false
                    }
                }
                #expect(same, "\(text.debugDescription) split at \(split): \(mine) against \(theirs)")
                if !same { break }
            }
        }
    }

    @Test func targetParsingAndMix() throws {
        let t = try BenchTarget.parse("http://127.0.0.1:8080/live/index.m3u8?x=1@3")
        #expect(t.host == "127.0.0.1" && t.port == 8080 && t.path == "/live/index.m3u8?x=1" && t.weight == 3)
        #expect(try BenchTarget.parse("http://[::1]/").hostHeader == "[::1]")
        #expect(throws: BenchSpecError.self) { try BenchTarget.parse("https://example.org/") }
        #expect(throws: BenchSpecError.self) { try BenchTarget.parse("http://h:99999/") }
        var mix = TargetMix(weights: [3, 1])
        // Smooth weighted round-robin interleaves: a a b a, not a a a b.
        #expect((0..<8).map { _ in mix.next() } == [0, 0, 1, 0, 0, 0, 1, 0])
    }
}
