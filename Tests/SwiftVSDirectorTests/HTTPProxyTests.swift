import SwiftVSConfigKit
import Foundation
import SwiftVSTestSupport
import SwiftVSCore
@testable import SwiftVSDirector
import Synchronization
import Testing

final class Counter: Sendable {
    let atomic = Atomic<Int>(0)
    func add() { self.atomic.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { self.atomic.load(ordering: .relaxed) }
}

/// Three in-test real servers; stopped after the body, even when it throws.
func withBackends<T>(
    _ count: Int = 3, kind: TestBackend.Kind = .http,
    _ body: ([TestBackend]) async throws -> T
) async throws -> T {
    var backends: [TestBackend] = []
    for index in 0..<count {
        backends.append(try await TestBackend(name: "rs\(index)", kind: kind))
    }
    do {
        let result = try await body(backends)
        for backend in backends { await backend.shutdown() }
        return result
    } catch {
        for backend in backends { await backend.shutdown() }
        throw error
    }
}

func withDirector<T>(_ yaml: String, _ body: (RunningDirector) async throws -> T) async throws -> T {
    let director = try await RunningDirector.start(yaml)
    do {
        let result = try await body(director)
        await director.stop()
        return result
    } catch {
        await director.stop()
        throw error
    }
}

extension IntegrationTests {
    @Suite("HTTP virtual service", .serialized, .timeLimit(.minutes(2)))
    struct HTTPProxyTests {
        @Test("3000 keep-alive requests spread as rr and wrr say")
        func spread() async throws {
            try await withBackends { backends in
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let names = try await onThread { () -> [String] in
                        let client = BlockingClient(port: port)
                        return try (0..<3000).map { _ in
                            let response = try client.request("GET", "/")
                            guard response.status == 200 else { throw ClientError("status \(response.status)") }
                            return response.text
                        }
                    }
                    #expect(Array(names.prefix(6)) == ["rs0", "rs1", "rs2", "rs0", "rs1", "rs2"])
                    #expect(backends.map(\.count) == [1000, 1000, 1000])
                }
                let before = backends.map(\.count)
                try await withDirector(serviceYAML(scheduler: "wrr", backends: backends, weights: [1, 2, 3])) {
                    director in
                    let port = director.port
                    _ = try await onThread {
                        let client = BlockingClient(port: port)
                        for _ in 0..<3000 { _ = try client.request("GET", "/") }
                    }
                    let counts = zip(backends.map(\.count), before).map { $0 - $1 }
                    #expect(counts == [500, 1000, 1500])
                }
            }
        }

        @Test("a real server killed mid-run costs zero failed GETs (retries), and its pooled connections are dropped")
        func killMidRun() async throws {
            try await withBackends { backends in
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let failures = Counter()
                    let done = Counter()
                    // Four keep-alive clients, 750 GETs each, while rs1 dies after ~1000 requests in all.
                    async let load: Void = withThrowingTaskGroup(of: Void.self) { group in
                        for _ in 0..<4 {
                            group.addTask {
                                try await onThread {
                                    let client = BlockingClient(port: port)
                                    for _ in 0..<750 {
                                        let ok = (try? client.request("GET", "/delay/1"))?.status == 200
                                        if !ok {
                                            failures.add()
                                            client.close()
                                        }
                                        done.add()
                                    }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    while done.value < 1000 { try await Task.sleep(for: .milliseconds(5)) }
                    await backends[1].kill()
                    let killedAt = backends[1].count
                    try await load
                    #expect(done.value == 3000)
                    #expect(failures.value == 0)
                    #expect(backends[1].count == killedAt)
                    #expect(backends[0].count + backends[2].count + killedAt >= 3000)
                }
            }
        }

        @Test("persistence holds a client on one real server for the timeout; another client gets another server")
        func persistence() async throws {
            try await withBackends { backends in
                let yaml = serviceYAML(scheduler: "rr", backends: backends, extra: "persistence: {timeout: 2s}")
                try await withDirector(yaml) { director in
                    let port = director.port
                    let (first, second, afterExpiry) = try await onThread { () -> (Set<String>, Set<String>, String) in
                        let a = BlockingClient(port: port, source: "127.0.0.1")
                        let b = BlockingClient(port: port, source: "127.0.0.2")
                        var seenA = Set<String>()
                        var seenB = Set<String>()
                        for _ in 0..<30 {
                            seenA.insert(try a.request("GET", "/").text)
                            a.close()  // new connection each time: persistence is per client address, not connection
                            seenB.insert(try b.request("GET", "/").text)
                            b.close()
                        }
                        usleep(2_600_000)  // not a synchronisation: the 2 s persistence timeout has to run out
                        return (seenA, seenB, try a.request("GET", "/").text)
                    }
                    #expect(first.count == 1)
                    #expect(second.count == 1)
                    #expect(first != second)
                    // After the timeout the template is gone and rr moves on past both servers it gave out.
                    #expect(afterExpiry != first.first!)
                }
            }
        }

        @Test("weight 0 quiesces: an in-flight request on the server completes, new requests go elsewhere")
        func quiesce() async throws {
            try await withBackends(2) { backends in
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let service = director.service
                    // A slow request lands on rs0 (rr starts there) and is in flight when the weight drops.
                    async let slow = onThread { () -> Response in
                        let client = BlockingClient(port: port)
                        return try client.request("GET", "/delay/800")
                    }
                    try await waitUntil("the slow request reaches rs0") { backends[0].count == 1 }
                    try service.setWeight(try Endpoint(parsing: backends[0].address), 0)
                    let before = backends[0].count
                    let names = try await onThread { () -> [String] in
                        let client = BlockingClient(port: port)
                        return try (0..<20).map { _ in try client.request("GET", "/").text }
                    }
                    let slowResponse = try await slow
                    #expect(slowResponse.status == 200 && slowResponse.text == "rs0")
                    #expect(Set(names) == ["rs1"])
                    #expect(backends[0].count == before)  // the slow one was counted on arrival; nothing new came
                    #expect(service.status().servers.first { $0.weight == 0 }?.active == 0)
                }
            }
        }

        @Test("WebSocket upgrade with hash {query: room}: one room's clients share a real server and talk")
        func webSocketRooms() async throws {
            try await withBackends { backends in
                let yaml = serviceYAML(scheduler: "mh", backends: backends, extra: "hash: {query: room}")
                try await withDirector(yaml) { director in
                    let port = director.port
                    let result = try await onThread { () -> [String: [String]] in
                        var heard: [String: [String]] = [:]
                        for room in ["alpha", "beta", "gamma", "delta"] {
                            let members = (0..<3).map { _ in BlockingClient(port: port) }
                            for member in members {
                                let response = try member.webSocketHandshake("/ws?room=\(room)")
                                guard response.status == 101 else { throw ClientError("handshake: \(response.status)") }
                            }
                            usleep(50_000)
                            try members[0].sendText("hello \(room)")
                            // Every member (the sender too) hears it from the same real server.
                            heard[room] = try members.map { try $0.readText() }
                            try members[2].sendText("bye")
                            heard[room]! += try members.map { try $0.readText() }
                        }
                        return heard
                    }
                    for (room, lines) in result {
                        let servers = Set(lines.map { $0.split(separator: ":")[0] })
                        #expect(servers.count == 1, "room \(room) was split: \(lines)")
                        #expect(lines.prefix(3).allSatisfy { $0.hasSuffix("hello \(room)") })
                        #expect(lines.suffix(3).allSatisfy { $0.hasSuffix("bye") })
                    }
                }
            }
        }

        @Test("bad requests get 400, 431 and 408 and a close, while another client keeps being served")
        func badClients() async throws {
            try await withBackends(1) { backends in
                let yaml = serviceYAML(
                    backends: backends,
                    extra: """
                        timeouts: {header_read: 1s}
                        limits: {max_header_bytes: 4096, max_headers: 20}
                        """)
                try await withDirector(yaml) { director in
                    let port = director.port
                    let served = Counter()
                    let stop = Counter()
                    async let goodClient: Void = onThread {
                        let client = BlockingClient(port: port)
                        while stop.value == 0 {
                            if (try? client.request("GET", "/"))?.status == 200 { served.add() }
                        }
                    }
                    let results = try await onThread { () -> [String: (Int, Bool)] in
                        var out: [String: (Int, Bool)] = [:]
                        func attempt(_ name: String, _ bytes: [UInt8]) throws {
                            let client = BlockingClient(port: port, timeout: 5)
                            try client.send(bytes)
                            let response = try client.readResponse()
                            out[name] = (response.status, client.waitForClose())
                        }
                        try attempt("garbage", Array("\u{01}\u{02}GARBAGE\r\n\r\n".utf8))
                        try attempt("bad request line", Array("GET / HTTP/9.9 please\r\n\r\n".utf8))
                        try attempt(
                            "long header",
                            Array(
                                ("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 8000)
                                    + "\r\n\r\n").utf8))
                        try attempt(
                            "many headers",
                            Array(
                                ("GET / HTTP/1.1\r\nHost: x\r\n"
                                    + (0..<50).map { "X-H\($0): v\r\n" }.joined() + "\r\n").utf8))
                        try attempt(
                            "long URL",
                            Array(("GET /" + String(repeating: "u", count: 9000) + " HTTP/1.1\r\n\r\n").utf8))
                        try attempt("stalled head", Array("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8))
                        return out
                    }
                    stop.add()
                    try await goodClient
                    #expect(results["garbage"]! == (400, true))
                    #expect(results["bad request line"]! == (400, true))
                    #expect(results["long header"]! == (431, true))
                    #expect(results["many headers"]! == (431, true))
                    #expect(results["long URL"]! == (431, true))
                    #expect(results["stalled head"]! == (408, true))
                    #expect(served.value > 50)
                }
            }
        }

        @Test("no real server gives 503, an unreachable one 502, a silent one 504, each with a short body")
        func errorStatuses() async throws {
            try await withBackends(1) { backends in
                try await withDirector(serviceYAML(backends: backends, weights: [0])) { director in
                    let response = try await onThread { try BlockingClient(port: director.port).request("GET", "/") }
                    #expect(response.status == 503 && response.text.contains("Service Unavailable"))
                }
                let yaml = serviceYAML(backends: backends, extra: "timeouts: {server: 1s}")
                try await withDirector(yaml) { director in
                    let response = try await onThread {
                        try BlockingClient(port: director.port).request("GET", "/hang")
                    }
                    #expect(response.status == 504)
                }
                await backends[0].kill()
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let response = try await onThread { try BlockingClient(port: director.port).request("GET", "/") }
                    #expect(response.status == 502 && response.text.contains("Bad Gateway"))
                }
            }
        }

        @Test("bodies stream both ways: a chunked upload and a 64 MiB download arrive intact; HEAD and X-Forwarded-For")
        func bodies() async throws {
            try await withBackends(1) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let port = director.port
                    try await onThread {
                        let client = BlockingClient(port: port)
                        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                        let echoed = try client.request("POST", "/echo", body: payload)
                        #expect(echoed.body == payload)
                        // Chunked request body, written by hand.
                        try client.send(
                            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                        #expect(try client.readResponse().text == "hello world")
                        var received = 0
                        let big = try client.request("GET", "/bytes/\(64 << 20)") { received += $0.count }
                        #expect(big.status == 200 && received == 64 << 20)
                        let head = try client.request("HEAD", "/")
                        #expect(head.status == 200 && head.header("content-length") == "3" && head.body.isEmpty)
                        let xff = try client.request("GET", "/", headers: [("X-Forwarded-For", "203.0.113.9")])
                        #expect(xff.header("X-Seen-XFF") == "203.0.113.9, 127.0.0.1")
                        #expect(client.connects == 1)  // all of it on one keep-alive connection
                    }
                }
            }
        }

        @Test(
            "fast path: a 64 MiB body, HEAD, chunked, HTTP/1.0, hop-by-hop, 103, a split head and garbage pass as they should"
        )
        func fastPath() async throws {
            try await withBackends(1) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let port = director.port
                    try await onThread {
                        let client = BlockingClient(port: port)
                        var received = 0
                        let big = try client.request("GET", "/bytes/\(64 << 20)") { received += $0.count }
                        #expect(big.status == 200 && received == 64 << 20)
                        let head = try client.request("HEAD", "/")
                        #expect(head.status == 200 && head.header("content-length") == "3" && head.body.isEmpty)
                        let plain = try client.request("GET", "/", headers: [("Connection", "keep-alive")])
                        #expect(plain.text == "rs0" && plain.header("X-Seen-XFF") == "127.0.0.1")
                        // A head in pieces is waited for.
                        try client.send("GET / HTTP/1.1\r\nHo")
                        usleep(50_000)
                        try client.send("st: x\r\n\r\n")
                        #expect(try client.readResponse().text == "rs0")
                        // A request with a body hands the connection to the NIOHTTP1 proxy, on the same connection.
                        let echoed = try client.request("POST", "/echo", body: Array("abc".utf8))
                        #expect(echoed.text == "abc")
                        #expect(try client.request("GET", "/").text == "rs0")
                        #expect(client.connects == 1)
                    }
                }
            }
            try await withBackends(2, kind: .raw) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let port = director.port
                    try await onThread {
                        let client = BlockingClient(port: port)
                        let seen = try client.request("GET", "/head", headers: [("Connection", "keep-alive")])
                        #expect(seen.text.hasPrefix("GET /head HTTP/1.1\r\nHost: test\r\n"))
                        #expect(seen.text.hasSuffix("X-Forwarded-For: 127.0.0.1\r\n\r\n"))
                        #expect(!seen.text.lowercased().contains("connection"))
                        let chunked = try client.request("GET", "/chunked")
                        #expect(chunked.status == 200 && chunked.text == "hello world")
                        let hop = try client.request("GET", "/hop")
                        #expect(hop.text == "ok" && hop.header("X-Kept") == "yes")
                        #expect(
                            hop.header("X-Hop") == nil && hop.header("Keep-Alive") == nil
                                && hop.header("Connection") == nil)
                        try client.send("GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
                        let early = try client.readResponse()
                        #expect(early.status == 103 && early.header("Link") != nil)
                        #expect(try client.readResponse().text == "final")
                        let split = try client.request("GET", "/split")
                        #expect(split.text == "split" && split.header("X-Real-Server") != nil)
                        #expect(client.connects == 1)
                        // HTTP/1.0 with a body until close: the client gets HTTP/1.1 and Connection: close.
                        try client.send("GET /http10 HTTP/1.1\r\nHost: x\r\n\r\n")
                        let status = try client.peekStatusLine()
                        #expect(status.hasPrefix("HTTP/1.1 200"))
                        let old = try client.readResponse()
                        #expect(old.text == "until close" && old.header("Connection") == "close")
                        // Not HTTP from every real server: 502 after the retry.
                        let bad = try client.request("GET", "/garbage")
                        #expect(bad.status == 502)
                    }
                }
            }
        }

        @Test("pipelined requests are answered in order")
        func pipelining() async throws {
            try await withBackends(2) { backends in
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let texts = try await onThread { () -> [String] in
                        let client = BlockingClient(port: port)
                        try client.send(
                            String(
                                repeating: "GET /delay/20 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                count: 5))
                        return try (0..<10).map { _ in try client.readResponse().text }
                    }
                    #expect(texts == ["rs0", "rs1", "rs0", "rs1", "rs0", "rs1", "rs0", "rs1", "rs0", "rs1"])
                }
            }
        }
    }
}

extension IntegrationTests {
    @Suite("IPv6")
    struct IPv6Tests {
        @Test("an http service listens on [::1] and proxies to IPv6 and IPv4 real servers")
        func ipv6() async throws {
            let v6 = try await TestBackend(name: "v6", bindHost: "::1")
            let v4 = try await TestBackend(name: "v4")
            let yaml = """
                threads: 1
                services:
                  - name: dual
                    listen: "[::1]:0"
                    scheduler: rr
                    servers: ["[::1]:\(v6.port)", "127.0.0.1:\(v4.port)"]
                """
            let result: Result<[String], Error>
            do {
                let director = try await RunningDirector.start(yaml)
                let port = director.port
                do {
                    result = .success(
                        try await onThread { () -> [String] in
                            let client = BlockingClient(port: port, host: "::1")
                            return try (0..<4).map { _ in try client.request("GET", "/").text }
                        })
                } catch {
                    result = .failure(error)
                }
                await director.stop()
            } catch {
                result = .failure(error)
            }
            await v6.shutdown()
            await v4.shutdown()
            #expect(try result.get() == ["v6", "v4", "v6", "v4"])
            #expect(v6.count == 2 && v4.count == 2)
        }
    }
}

extension IntegrationTests {
    @Suite("Idle timeouts", .serialized)
    struct IdleTimeoutTests {
        @Test("an idle keep-alive client and an idle tcp tunnel are closed after timeouts.idle, an active one is not")
        func idle() async throws {
            try await withBackends(1) { backends in
                let yaml = serviceYAML(backends: backends, extra: "timeouts: {idle: 1s}")
                try await withDirector(yaml) { director in
                    let port = director.port
                    let (idleClosed, activeAlive) = try await onThread { () -> (Bool, Bool) in
                        let idle = BlockingClient(port: port, timeout: 4)
                        _ = try idle.request("GET", "/")
                        let active = BlockingClient(port: port, timeout: 4)
                        for _ in 0..<8 {  // a request every 250 ms keeps it alive for 2 s
                            _ = try active.request("GET", "/")
                            usleep(250_000)
                        }
                        let closed = idle.waitForClose()
                        let stillServed = (try? active.request("GET", "/"))?.status == 200 && active.connects == 1
                        return (closed, stillServed)
                    }
                    #expect(idleClosed)
                    #expect(activeAlive)
                }
            }
            try await withBackends(1, kind: .echo) { backends in
                let yaml = serviceYAML(proto: "tcp", backends: backends, extra: "timeouts: {idle: 1s}")
                try await withDirector(yaml) { director in
                    let port = director.port
                    let closed = try await onThread { () -> Bool in
                        let client = BlockingClient(port: port, timeout: 4)
                        try client.connect()
                        try client.send("ping")
                        _ = try client.bytes(4)
                        return client.waitForClose()
                    }
                    #expect(closed)
                }
            }
        }
    }
}
