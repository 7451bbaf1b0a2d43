@testable import SwiftVSBench
import Testing
@testable import SwiftVSCore

@Suite("HTTP response scanner")
struct ScannerTests {
    func feed(_ parts: [String], head: Bool = false) -> [HTTPResponseScanner.Outcome] {
        var scanner = HTTPResponseScanner()
        scanner.reset(headRequest: head)
        return parts.map { part in Array(part.utf8).withUnsafeBytes { scanner.feed($0) } }
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
        var scanner = HTTPResponseScanner()
        let first = Array("HTTP/1.1 200 OK\r\n\r\nstream".utf8).withUnsafeBytes { scanner.feed($0) }
        #expect(first == .needMore)
        #expect(scanner.endOfStream() == .complete(status: 200, keepAlive: false, consumed: 0))
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
                .invalid("bad chunk size digit")
            ])
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
