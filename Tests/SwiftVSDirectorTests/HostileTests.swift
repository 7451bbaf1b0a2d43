import Foundation
import SwiftVSTestSupport
import Synchronization
import Testing

/// Hostile clients and real servers, each found by probing a release side by side with HAProxy 2.6, which answers
/// them as these tests expect. Both HTTP paths are tried where a request can take either: a plain service (the
/// relay engine) and one hashing on a request header (the NIOHTTP1 proxy).
extension IntegrationTests {
    @Suite("Hostile clients and real servers", .serialized, .timeLimit(.minutes(3)))
    struct HostileTests {
        /// Long header_read and server timeouts, so that a 408 or 504 cannot pass for the 400 or 502 expected.
        static let slowTimeouts = "timeouts: {header_read: 30s, server: 30s}"

        static func paths(_ backends: [TestBackend]) -> [(String, String)] {
            [
                ("relay", serviceYAML(backends: backends, extra: Self.slowTimeouts)),
                (
                    "nio",
                    serviceYAML(
                        scheduler: "mh", backends: backends,
                        extra: Self.slowTimeouts + "\nhash: {header: X-Key}")
                ),
            ]
        }

        static func exchange(_ port: Int, _ text: String) throws -> (Response, closed: Bool) {
            let client = BlockingClient(port: port, timeout: 10)
            try client.connect()
            try client.send(text.replacingOccurrences(of: "Host: a\r\n", with: "Host: a\r\nX-Key: k\r\n"))
            let response = try client.readResponse()
            return (response, response.status >= 400 ? client.waitForClose() : false)
        }

        @Test("what a client says cannot strip the headers the director adds or needs, nor smuggle a second Host")
        func requestHeaders() async throws {
            try await withBackends(1, kind: .raw) { backends in
                for (path, yaml) in Self.paths(backends) {
                    try await withDirector(yaml) { director in
                        let port = director.port
                        try await onThread {
                            // Connection names X-Forwarded-For: the real server still learns the client's address.
                            let xff = try Self.exchange(
                                port, "GET /head HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\n\r\n")
                            #expect(xff.0.text.contains("X-Forwarded-For: 127.0.0.1\r\n"), "\(path): \(xff.0.text)")
                            let both = try Self.exchange(
                                port,
                                "GET /head HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\n"
                                    + "Connection: X-Forwarded-For\r\n\r\n")
                            #expect(
                                both.0.text.contains("X-Forwarded-For: 10.9.9.9, 127.0.0.1\r\n"),
                                "\(path): \(both.0.text)")
                            // Connection names Host: the request still carries it.
                            let host = try Self.exchange(
                                port, "GET /head HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n")
                            #expect(host.0.text.contains("Host: a\r\n"), "\(path): \(host.0.text)")
                            // Two Hosts, or an absolute-form target naming another host: 400 and a close.
                            let two = try Self.exchange(port, "GET /head HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                            #expect(two.0.status == 400 && two.closed, "\(path)")
                            let other = try Self.exchange(port, "GET http://b/head HTTP/1.1\r\nHost: a\r\n\r\n")
                            #expect(other.0.status == 400 && other.closed, "\(path)")
                            let same = try Self.exchange(port, "GET http://a/head HTTP/1.1\r\nHost: a\r\n\r\n")
                            #expect(same.0.status == 200, "\(path)")
                            // Bare LF line endings: 400 at once (header_read is 30 s, the client waits 10 s).
                            for head in [
                                "GET /head HTTP/1.1\nHost: a\n\n", "GET /head HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
                                "GET /head HTTP/1.0\n\n",
                            ] {
                                let bare = try Self.exchange(port, head)
                                #expect(bare.0.status == 400 && bare.closed, "\(path): \(head.debugDescription)")
                            }
                        }
                    }
                }
            }
        }

        @Test(
            "a response that would split at the client, a bare-LF head and an absurd chunk size get 502; CL with TE loses the CL"
        )
        func responses() async throws {
            try await withBackends(1, kind: .raw) { backends in
                for (path, yaml) in Self.paths(backends) {
                    try await withDirector(yaml) { director in
                        let port = director.port
                        try await onThread {
                            for bad in ["/crlf", "/nul", "/barelf"] {
                                let (response, closed) = try Self.exchange(
                                    port, "GET \(bad) HTTP/1.1\r\nHost: a\r\n\r\n")
                                #expect(response.status == 502 && closed, "\(path) \(bad): \(response.status)")
                                #expect(response.header("set-cookie") == nil)
                            }
                            guard path == "relay" else { return }
                            // The NIOHTTP1 proxy's parser refuses Content-Length with chunked (502), and closes
                            // without a 502 on an absurd chunk size once the head is parsed: it goes with that path.
                            let (clte, _) = try Self.exchange(port, "GET /clte HTTP/1.1\r\nHost: a\r\n\r\n")
                            #expect(clte.status == 200 && clte.text == "ok" && clte.header("content-length") == nil)
                            let (big, closed) = try Self.exchange(port, "GET /bigchunk HTTP/1.1\r\nHost: a\r\n\r\n")
                            #expect(big.status == 502 && closed)
                        }
                    }
                }
            }
        }

        @Test("a request body that trickles in is cut at timeouts.body with 408")
        func bodyTimeout() async throws {
            try await withBackends(1) { backends in
                let yaml = serviceYAML(backends: backends, extra: "timeouts: {body: 1s, server: 30s}")
                try await withDirector(yaml) { director in
                    let port = director.port
                    let (response, closed) = try await onThread { () -> (Response, Bool) in
                        let client = BlockingClient(port: port, timeout: 10)
                        try client.connect()
                        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
                        // A byte every 300 ms: never idle, never whole.
                        var response: Response?
                        for _ in 0..<30 {
                            usleep(300_000)
                            guard (try? client.send("x")) != nil else { break }
                            if client.hasBytes() { break }
                        }
                        response = try client.readResponse()
                        return (response!, client.waitForClose())
                    }
                    #expect(response.status == 408 && closed)
                    // A body that arrives in time still goes through.
                    let echo = try await onThread {
                        try BlockingClient(port: port).request("POST", "/echo", body: Array("hello".utf8)).text
                    }
                    #expect(echo == "hello")
                }
            }
        }

        /// One connection pipelining requests that take the NIOHTTP1 proxy (X-Forwarded-For sends them there) and
        /// never reading: the director grew from 30 MB to 309 MB with one, 841 MB with three (HAProxy: 15 MB). Now
        /// reading stops while answers wait, and one read cycle is all a connection can queue: +11 MiB for three.
        @Test("clients that pipeline and never read keep the director's memory bounded")
        func pipelinerThatNeverReads() async throws {
            try await withBackends(1) { backends in
                let (director, port) = try DirectorProcess.inFront(of: backends[0])
                defer { director.stop() }
                let before = director.rssKiB
                let sent = try await onThread { () -> Int in
                    let request = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n".utf8)
                    let batch = [UInt8]((0..<1000).map { _ in request }.joined())
                    let clients = (0..<3).map { _ in BlockingClient(port: port, timeout: 0.2) }
                    var sent = 0
                    let deadline = Date().addingTimeInterval(8)
                    for client in clients { try client.connect() }
                    // Up to 400 000 requests each, for 8 s at most; a send that blocks 200 ms means reading stopped.
                    while Date() < deadline && sent < 1_200_000 {
                        for client in clients where (try? client.send(batch)) != nil { sent += 1000 }
                    }
                    return sent
                }
                let grown = (director.rssKiB - before) / 1024
                print("pipelining: \(sent) requests sent, director grew \(grown) MiB")
                #expect(grown < 24, "the director grew \(grown) MiB for \(sent) pipelined requests")
                #expect(director.child.isRunning)
            }
        }
    }
}
