import Foundation
import Glibc
import SwiftVSCore
import SwiftVSTestSupport
import Synchronization
import Testing

@testable import SwiftVSDirector

/// `count` consecutive loopback ports that nothing listens on now (below the ephemeral range: `freePortBlock`).
func freePortRange(_ count: Int) -> ClosedRange<Int> {
    let base = (try? freePortBlock(count)) ?? 20_000
    return base...(base + count - 1)
}

/// Requests at about `rate` per second from `clients` keep-alive clients for `seconds` (bounded in count and
/// time); every status but 200 is a failure.
func pacedLoad(
    port: Int, rate: Double, seconds: Double, clients: Int = 4, failures: Counter, done: Counter
)
    async throws
{
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<clients {
            group.addTask {
                try await onThread {
                    let client = BlockingClient(port: port, timeout: 10)
                    defer { client.close() }
                    let gap = Double(clients) / rate
                    let start = Date()
                    var next = start
                    for _ in 0..<Int(rate * seconds / Double(clients) + 1) {
                        let wait = next.timeIntervalSinceNow
                        if wait > 0 { usleep(useconds_t(wait * 1e6)) }
                        next = next.addingTimeInterval(gap)
                        if Date().timeIntervalSince(start) > seconds { break }
                        let response = try? client.request("GET", "/")
                        if response?.status != 200 {
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
}

extension IntegrationTests {
    @Suite("Autoscaling: replicas the director starts", .serialized, .timeLimit(.minutes(4)))
    struct AutoscaleTests {
        static func yaml(
            ports: ClosedRange<Int>, command: [String]? = nil, extra: String = "", min: Int = 1,
            metrics: String = "[{type: requests_per_second, average: 10}]", autoscaleExtra: String = ""
        ) -> String {
            let argv =
                command
                ?? [
                    swiftvsBinary.path, "realserver", "--listen", "{host}:{port}", "--workers", "4",
                    "--service-time", "20ms",
                ]
            let list = argv.map { "\"\($0)\"" }.joined(separator: ", ")
            return """
                threads: 1
                services:
                  - name: api
                    listen: 127.0.0.1:0
                    scheduler: wlc
                    slow_start: 1s
                \(extra.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n"))
                    autoscale:
                      min_replicas: \(min)
                      max_replicas: 3
                      sync_period: 500ms
                      drain_timeout: 5s
                      stop_timeout: 2s
                      metrics: \(metrics)
                \(autoscaleExtra.split(separator: "\n").map { "      \($0)" }.joined(separator: "\n"))
                      behavior:
                        scale_down: {stabilization_window: 3s}
                      process:
                        command: [\(list)]
                        ports: \(ports.lowerBound)-\(ports.upperBound)
                        restart_delay: 200ms
                        max_restart_delay: 2s

                """
        }

        /// Runs the director with its autoscaler (as `swiftvs director` does, outside a service group).
        static func withAutoscaled(
            _ yaml: String, _ body: (RunningDirector, ReplicaController) async throws -> Void
        )
            async throws
        {
            try await withDirector(yaml) { director in
                let service = AutoscaleService(director: director.director)
                let task = Task { try await service.run() }
                do {
                    let found = try await Self.until(5) {
                        director.director.autoscaling.controller(for: "api") as? ReplicaController
                    }
                    try await body(director, try #require(found))
                } catch {
                    task.cancel()
                    _ = try? await task.value
                    throw error
                }
                task.cancel()
                _ = try? await task.value
                // Every replica the director started has stopped.
                #expect(director.director.autoscaling.all.isEmpty)
            }
        }

        static func until<T>(_ seconds: Double, _ value: () -> T?) async throws -> T? {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                if let v = value() { return v }
                try await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }

        @Test(
            "A load step adds replicas that serve only after their check passed; the fall drains them with 0 failures")
        func riseAndFall() async throws {
            let ports = freePortRange(3)
            try await Self.withAutoscaled(Self.yaml(ports: ports)) { director, controller in
                #expect(try await secondsUntil(10) { controller.status().ready == 1 } != nil)
                let failures = Counter(), done = Counter()
                // 40 req/s against a target of 10 per replica: 4 wanted, 3 at most.
                let step = Task {
                    try await pacedLoad(port: director.port, rate: 40, seconds: 8, failures: failures, done: done)
                }
                // Every 20 ms: a replica the director has never had in rotation has been sent nothing.
                let early = Counter()
                var everIn: Set<String> = []
                let rose = try await secondsUntil(8) {
                    for (address, view) in director.service.serverViews() {
                        if view.inRotation { everIn.insert(address.description) }
                        if !everIn.contains(address.description) && view.total > 0 { early.add() }
                    }
                    return controller.status().ready == 3
                }
                #expect(early.value == 0, "a replica got requests before its check passed")
                #expect(rose != nil, "\(controller.status())")
                // While the load goes on: every replica gets requests, each only once in rotation.
                let served = try await secondsUntil(5) {
                    let views = director.service.serverViews()
                    return views.count == 3 && views.values.allSatisfy { $0.total > 0 }
                }
                #expect(served != nil, "\(director.service.serverViews())")
                let peak = controller.status()
                #expect(peak.decisions.contains { $0.to == 3 })
                // What adm scale shows of it, through the real binary and the admin API.
                let admin = try await director.startAdmin(token: "autoscale-token")
                let shown = try await runSwiftVSAsync([
                    "adm", "scale", "--admin", "127.0.0.1:\(admin)", "--token", "autoscale-token",
                ])
                #expect(shown.code == 0, "\(shown.stderr)")
                #expect(shown.stdout.contains("api: 3 replicas"), "\(shown.stdout)")
                #expect(shown.stdout.contains("requests_per_second") && shown.stdout.contains("Pods"))
                #expect(
                    shown.stdout.contains("ScalingActive")
                        && (shown.stdout.contains("serving") || shown.stdout.contains("warming")))
                try await step.value
                let bounded = try await runSwiftVSAsync([
                    "adm", "scale", "api", "--max", "2", "--admin", "127.0.0.1:\(admin)", "--token", "autoscale-token",
                ])
                #expect(bounded.code == 0, "\(bounded.stderr)")
                #expect(controller.status().max == 2)
                let refused = try await runSwiftVSAsync([
                    "adm", "scale", "api", "--min", "3", "--admin", "127.0.0.1:\(admin)", "--token", "autoscale-token",
                ])
                #expect(refused.code == 1 && refused.stderr.contains("min must be 0...max (2)"), "\(refused.stderr)")
                let metrics = try await runSwiftVSAsync([
                    "adm", "metrics", "--admin", "127.0.0.1:\(admin)", "--token", "autoscale-token",
                ])
                #expect(metrics.stdout.contains("swiftvs_autoscale_max_replicas{service=\"api\"} 2"))
                // The stats page's feed carries the replicas it charts.
                // (curl off the cooperative pool: this director answers on it, and the CI's parallel run loads it.)
                let overview = try await curlAsync(
                    "http://127.0.0.1:\(admin)/api/overview", ["-H", "Authorization: Bearer autoscale-token"])
                #expect(
                    overview.status == 200 && overview.body.contains("\"scale\"")
                        && overview.body.contains("\"desired\""), "\(overview.status) \(overview.body.prefix(300))")
                let file = "\(NSTemporaryDirectory())swiftvs-metrics-\(UUID().uuidString.prefix(8)).txt"
                defer { unlink(file) }
                try metrics.stdout.write(toFile: file, atomically: true, encoding: .utf8)
                let promtool = try tool("sh", ["-c", "promtool check metrics < \(file)"])
                #expect(promtool.code == 0, "\(promtool.out) \(promtool.err)")

                // The load falls to 3 req/s: after the 3 s window the surplus drains and stops.
                let fall = Task {
                    try await pacedLoad(
                        port: director.port, rate: 3, seconds: 10, clients: 1, failures: failures, done: done)
                }
                let back = try await secondsUntil(12) {
                    let status = controller.status()
                    return status.current == 1 && status.replicas.count == 1
                }
                try await fall.value
                #expect(back != nil, "\(controller.status())")
                #expect(failures.value == 0, "\(failures.value) failed of \(done.value)")
                #expect(director.service.serverViews().count == 1)
            }
        }

        @Test("From zero: the first request waits for the replica it wakes and is answered; idle, the replicas go")
        func scaleFromZero() async throws {
            let ports = freePortRange(3)
            let yaml = Self.yaml(
                ports: ports, extra: "queue: {timeout: 10s}", min: 0,
                metrics: "[{type: concurrency, average: 5}]", autoscaleExtra: "scale_to_zero_after: 2s")
            try await Self.withAutoscaled(yaml) { director, controller in
                #expect(controller.status().current == 0)
                for round in 0..<2 {
                    let start = Date()
                    let port = director.port
                    let status = try await onThread {
                        let client = BlockingClient(port: port, timeout: 10)
                        defer { client.close() }
                        return try client.request("GET", "/").status
                    }
                    #expect(status == 200, "round \(round)")
                    let waited = Date().timeIntervalSince(start)
                    // The wait is reported: the queue's served count and time.
                    let queue = director.service.queue
                    #expect(queue.served.load(ordering: .relaxed) == round + 1)
                    #expect(queue.waitedNanos.load(ordering: .relaxed) > 0)
                    #expect(waited < 5, "a cold start took \(waited) s")
                    // Idle for scale_to_zero_after: back to zero replicas, none left running.
                    let zero = try await secondsUntil(10) {
                        let status = controller.status()
                        return status.current == 0 && status.replicas.isEmpty
                    }
                    #expect(zero != nil, "\(controller.status())")
                }
            }
        }

        @Test("CPU utilization (HPA's Resource metric) against requests.cpu: CPU-bound replicas scale out and back")
        func cpuUtilization() async throws {
            let ports = freePortRange(3)
            let yaml = Self.yaml(
                ports: ports,
                command: [swiftvsBinary.path, "realserver", "--listen", "{host}:{port}", "--cpu-time", "10ms"],
                metrics: "[{type: cpu, utilization: 50}]", autoscaleExtra: "requests: {cpu: 100m}")
            try await Self.withAutoscaled(yaml) { director, controller in
                #expect(try await secondsUntil(10) { controller.status().ready == 1 } != nil)
                // 20 req/s × 10 ms = 200 millicores on one replica: 200 % of its 100m request against 50 %.
                let failures = Counter(), done = Counter()
                let load = Task {
                    try await pacedLoad(
                        port: director.port, rate: 20, seconds: 8, clients: 2, failures: failures, done: done)
                }
                let rose = try await secondsUntil(8) { controller.status().ready >= 2 }
                let during = controller.status()
                print(
                    "DEBUG rose=\(String(describing: rose)) ready=\(during.ready) decisions=\(during.decisions.count)")
                try await load.value
                #expect(rose != nil, "\(controller.status())")
                #expect(during.decisions.contains { $0.reason == "cpu above target" }, "\(during)")
                #expect(during.metrics.first?.type == "Resource")
                // Idle: back to min_replicas after the 3 s window.
                let back = try await secondsUntil(15) { controller.status().current == 1 }
                #expect(back != nil, "\(controller.status())")
                #expect(failures.value == 0, "\(failures.value) failed of \(done.value)")
            }
        }

        @Test(
            "swiftvs bench --replicas-from reads the autoscaler during the load: replicas and decisions in the report")
        func benchReadsReplicas() async throws {
            let ports = freePortRange(3)
            try await Self.withAutoscaled(Self.yaml(ports: ports)) { director, controller in
                #expect(try await secondsUntil(10) { controller.status().ready == 1 } != nil)
                let admin = try await director.startAdmin()
                let dir = try temporaryDirectory("bench-replicas")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let run = try await runSwiftVSAsync([
                    "bench", "http", "http://127.0.0.1:\(director.port)/", "--rate", "40", "-d", "5s", "--quiet",
                    "--replicas-from", "127.0.0.1:\(admin)", "--json", "\(dir)/out.json", "--html", "\(dir)/out.html",
                ])
                #expect(run.code == 0, "\(run.stderr)")
                #expect(run.stdout.contains("Replicas       api: 1 →"), "\(run.stdout)")
                let json = try String(contentsOfFile: "\(dir)/out.json", encoding: .utf8)
                struct Report: Decodable {
                    struct Series: Decodable {
                        struct Point: Decodable {
                            var t: Double, current: Int, desired: Int, ready: Int
                            var metrics: [String: Double]?
                        }
                        struct Decision: Decodable { var t: Double, from: Int, to: Int, reason: String }
                        var service: String
                        var samples: [Point]
                        var decisions: [Decision]
                    }
                    struct Phase: Decodable { var replicas: [Series] }
                    var phases: [Phase]
                }
                let series = try #require(
                    try JSONDecoder().decode(Report.self, from: Data(json.utf8)).phases.first?.replicas.first)
                #expect(series.service == "api" && series.samples.count >= 4)
                #expect(series.decisions.contains { $0.from == 1 && $0.to >= 2 }, "\(series.decisions)")
                #expect(series.samples.contains { ($0.metrics ?? [:]).values.contains { $0 > 0 } }, "metric values")
                let html = try String(contentsOfFile: "\(dir)/out.html", encoding: .utf8)
                #expect(html.contains("Replicas (the director") && html.contains("Autoscaler metrics"))
            }
        }

        @Test("A replica killed with SIGKILL is replaced; a command that exits at once backs off and shows crashed")
        func crashes() async throws {
            let ports = freePortRange(3)
            try await Self.withAutoscaled(Self.yaml(ports: ports)) { _, controller in
                let serving = try await Self.until(10) { controller.status().replicas.first { $0.state != "starting" } }
                let pid = try #require(serving?.pid)
                kill(pid, SIGKILL)
                let replaced = try await Self.until(10) {
                    controller.status().replicas.first {
                        $0.restarts == 1 && $0.state != "starting" && $0.state != "crashed" && $0.pid != pid
                    }
                }
                #expect(replaced != nil, "\(controller.status())")
                #expect(replaced?.lastExit == "killed by signal 9")
            }
            let crashing = Self.yaml(ports: freePortRange(3), command: ["/bin/sh", "-c", "exit 3", "{port}"])
            try await Self.withAutoscaled(crashing) { _, controller in
                let crashed = try await Self.until(10) {
                    controller.status().replicas.first { $0.state == "crashed" && $0.restarts >= 3 }
                }
                let replica = try #require(crashed, "\(controller.status())")
                #expect(replica.detail.hasPrefix("exit 3, restart in"))
                // 200 ms, then 400, 800, 1.6 s: three restarts take more than a second, not a tight loop.
                #expect(replica.restarts <= 5)
            }
        }
    }
}
