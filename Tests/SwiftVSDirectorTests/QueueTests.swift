import SwiftVSTestSupport
import Foundation
import Synchronization
import Testing

@testable import SwiftVSDirector

extension IntegrationTests {
    @Suite("maxconn and the request queue", .serialized, .timeLimit(.minutes(2)))
    struct QueueTests {
        /// `count` clients at once, each one request on its own connection; the statuses and the seconds each took.
        static func burst(
            port: Int, count: Int, path: String, method: String = "GET"
        ) async throws
            -> [(status: Int, seconds: Double)]
        {
            try await withThrowingTaskGroup(of: (Int, Double).self) { group in
                for _ in 0..<count {
                    group.addTask {
                        try await onThread {
                            let client = BlockingClient(port: port, timeout: 10)
                            defer { client.close() }
                            let start = Date()
                            let body: [UInt8]? = method == "POST" ? Array("payload".utf8) : nil
                            let status = (try? client.request(method, path, body: body))?.status ?? 0
                            return (status, Date().timeIntervalSince(start))
                        }
                    }
                }
                var out: [(Int, Double)] = []
                for try await result in group { out.append(result) }
                return out.map { (status: $0.0, seconds: $0.1) }
            }
        }

        /// GET goes through the relay engine, a POST with a body through the NIO proxy: both drivers queue.
        @Test(
            "maxconn 2 on 2 servers: 20 concurrent slow requests all succeed, never more than 2 on a server",
            arguments: ["GET", "POST"])
        func queuedRequestsSucceed(method: String) async throws {
            try await withBackends(2) { backends in
                let yaml = serviceYAML(
                    backends: backends, extra: "maxconn: 2\nqueue: {size: 100, timeout: 10s}")
                try await withDirector(yaml) { director in
                    let results = try await Self.burst(
                        port: director.port, count: 20, path: "/delay/200", method: method)
                    #expect(results.allSatisfy { $0.status == 200 }, "\(results.map(\.status))")
                    for backend in backends {
                        #expect(backend.peakInFlight.load(ordering: .relaxed) <= 2, "\(backend.name) took more than 2")
                    }
                    // 20 requests of 200 ms through 4 slots: 5 rounds, so the last waited about 800 ms.
                    #expect(results.map(\.seconds).max()! >= 0.7)
                    let queue = director.service.queue
                    #expect(queue.served.load(ordering: .relaxed) >= 14)
                    #expect(queue.length.load(ordering: .relaxed) == 0)
                    #expect(director.service.stats.noServer.load(ordering: .relaxed) == 0)
                }
            }
        }

        @Test("A full queue answers the excess 503 at once; a request that waits past queue.timeout gets 503 too")
        func fullQueueAndTimeout() async throws {
            try await withBackends(1) { backends in
                let yaml = serviceYAML(
                    backends: backends, extra: "maxconn: 1\nqueue: {size: 2, timeout: 800ms}")
                try await withDirector(yaml) { director in
                    // 1 in service, 2 queued, the other 5 refused at once.
                    let results = try await Self.burst(port: director.port, count: 8, path: "/delay/2000")
                    let refused = results.filter { $0.status == 503 && $0.seconds < 0.6 }
                    #expect(refused.count == 5, "\(results)")
                    // The two queued waited out the 800 ms timeout behind the 2 s request.
                    let waited = results.filter { $0.status == 503 && $0.seconds >= 0.75 }
                    #expect(waited.count == 2, "\(results)")
                    #expect(results.filter { $0.status == 200 }.count == 1)
                    let queue = director.service.queue
                    #expect(queue.refused.load(ordering: .relaxed) == 5)
                    #expect(queue.timedOut.load(ordering: .relaxed) == 2)
                    #expect(queue.length.load(ordering: .relaxed) == 0)
                    // The server is free again and the line empty: the next request goes straight through.
                    let client = BlockingClient(port: director.port, timeout: 5)
                    defer { client.close() }
                    #expect(try client.request("GET", "/").status == 200)
                }
            }
        }
    }
}
