import NIOCore
import NIOPosix
import Testing
@testable import SwiftVSBench
@testable import SwiftVSCore

extension BenchIntegration {
    /// Does the bench report what the server did? Each test runs against a `TrustServer` whose behaviour is known.
    @Suite("Bench trust", .serialized)
    struct TrustTests {
        func spec(_ port: Int, _ configure: (inout LoadSpec) -> Void) throws -> LoadSpec {
            var spec = LoadSpec(targets: [try BenchTarget.parse("http://127.0.0.1:\(port)/")])
            spec.threads = 2
            configure(&spec)
            return spec
        }

        func run(_ spec: LoadSpec) async throws -> (PhaseReport, Double) {
            let clock = ContinuousClock()
            let start = clock.now
            let report = try await LoadPhase(name: "trust", spec: spec, group: MultiThreadedEventLoopGroup.singleton)
                .run()
            let wall =
                Double((clock.now - start).components.attoseconds) / 1e18
                + Double((clock.now - start).components.seconds)
            return (report, wall)
        }

        @Test("a fixed 10 ms delay gives p50 within 1 ms of 10 ms")
        func fixedDelay() async throws {
            // The server gets a loop of its own, so its timers do not wait behind the bench's work.
            let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await TrustServer(.init(delay: .milliseconds(10)), group: serverGroup)
            // Two users, so responses do not arrive in bursts that the bench (a debug build, in CI) reads one after
            // another: that would add the bench's own processing time to the later ones.
            let (report, _) = try await self.run(
                try self.spec(server.port) {
                    $0.connections = 2; $0.duration = 2; $0.threads = 1
                })
            await server.shutdown()
            try await serverGroup.shutdownGracefully()
            #expect(report.counters.failed == 0)
            #expect(report.counters.succeeded > 300, "2 users at 10 ms for 2 s answer about 400 requests")
            #expect(abs(report.latency.p50Ms - 10) < 1, Comment(rawValue: "p50 = \(report.latency.p50Ms) ms"))
            #expect(report.latency.minMs >= 9.9)
        }

        @Test("every 10th request failing gives 10% loss, counted as non-2xx/3xx")
        func everyTenthFails() async throws {
            let server = try await TrustServer(.init(failEvery: 10), group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await server.shutdown() } }
            let (report, _) = try await self.run(
                try self.spec(server.port) {
                    $0.connections = 4; $0.requests = 2000; $0.duration = 30
                })
            #expect(report.counters.attempted == 2000)
            #expect(report.counters.failures(.status) == 200)
            #expect(report.counters.failed == 200)
            #expect(report.lossPercent == 10)
            #expect(report.counters.statusClasses == [0, 1800, 0, 0, 200])
        }

        @Test("a server that stops accepting: connect errors counted, the run still ends on time")
        func stopsAccepting() async throws {
            let server = try await TrustServer(.init(), group: MultiThreadedEventLoopGroup.singleton)
            let stopper = Task {
                try await Task.sleep(for: .seconds(1))
                await server.stopAccepting()
            }
            let (report, wall) = try await self.run(
                try self.spec(server.port) {
                    $0.model = .open(ratePerSecond: 200)
                    $0.keepAlive = false
                    $0.connections = 100
                    $0.duration = 3
                })
            _ = try await stopper.value
            #expect(
                report.counters.succeeded > 150 && report.counters.succeeded < 260,
                Comment(rawValue: "about 1 s of 200 req/s answered, got \(report.counters.succeeded)"))
            #expect(report.counters.failures(.connectRefused) > 300, Comment(rawValue: "\(report.lossByCause)"))
            #expect(wall < 4.5, Comment(rawValue: "3 s run took \(wall) s"))
        }

        @Test("a server that never answers: response timeouts counted, the run still ends on time")
        func neverAnswers() async throws {
            let server = try await TrustServer(.init(hang: true), group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await server.shutdown() } }
            let (report, wall) = try await self.run(
                try self.spec(server.port) {
                    $0.connections = 4
                    $0.duration = 2
                    $0.responseTimeout = 0.5
                })
            #expect(report.counters.succeeded == 0)
            // 4 users, each timing out every 0.5 s for 2 s: about 16.
            #expect(report.counters.failures(.responseTimeout) >= 12, Comment(rawValue: "\(report.lossByCause)"))
            #expect(wall < 3.5, Comment(rawValue: "2 s run took \(wall) s"))
        }

        @Test("open loop: a 1 s stall shows in the percentiles (coordinated omission corrected); closed loop hides it")
        func coordinatedOmission() async throws {
            let stall = TrustServer.Behaviour(delay: .milliseconds(1), stall: (from: 1.0, length: 1.0))
            let openServer = try await TrustServer(stall, group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await openServer.shutdown() } }
            let (open, _) = try await self.run(
                try self.spec(openServer.port) {
                    $0.model = .open(ratePerSecond: 200)
                    $0.connections = 4
                    $0.duration = 3
                })
            // 200 requests fall due during the stall and wait up to 1 s each: over a third of all requests are slow.
            #expect(open.counters.failed == 0)
            #expect(open.latency.p90Ms > 250, Comment(rawValue: "open-loop p90 \(open.latency.p90Ms) ms"))
            #expect(open.latency.maxMs > 900)

            let closedServer = try await TrustServer(stall, group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await closedServer.shutdown() } }
            let (closed, _) = try await self.run(
                try self.spec(closedServer.port) {
                    $0.connections = 4; $0.duration = 3
                })
            // The same stall, measured the naive way: only the 4 requests in flight were slow.
            #expect(closed.latency.p90Ms < 20, Comment(rawValue: "closed-loop p90 \(closed.latency.p90Ms) ms"))
            #expect(closed.latency.maxMs > 900)
        }

        @Test("a weighted mix of URLs is sent in proportion")
        func mix() async throws {
            let server = try await TrustServer(.init(), group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await server.shutdown() } }
            var spec = LoadSpec(targets: [
                try BenchTarget.parse("http://127.0.0.1:\(server.port)/a@3"),
                try BenchTarget.parse("http://127.0.0.1:\(server.port)/b@1"),
            ])
            spec.requests = 400
            spec.connections = 1
            spec.threads = 1
            let (report, _) = try await self.run(spec)
            #expect(report.counters.succeeded == 400)
            #expect(report.counters.connectionsOpened == 1, "both URLs share one keep-alive connection")
            #expect(server.pathA.load(ordering: .relaxed) == 300, "3:1 of 400")
        }
    }
}
