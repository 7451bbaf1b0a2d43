import Foundation
import NIOPosix
@testable import SwiftVSBench
import SwiftVSTestSupport
import Testing
@testable import SwiftVSCore
import SwiftVSSystem

/// The `swiftvs` binary end to end: `bench http` against a director, the interruption scenario, and the HTML report
/// in headless Chromium.
/// Everything here measures time or load; it runs one test at a time so that one test's load cannot skew another's
/// timing.
@Suite("Bench integration", .serialized)
struct BenchIntegration {}

extension BenchIntegration {
    @Suite("Bench end to end", .serialized)
    struct EndToEndTests {
        static let repository = repositoryRoot

        func temporary(_ name: String) -> String {
            NSTemporaryDirectory() + "swiftvs-bench-test-\(getpid())-\(name)"
        }

        /// Runs `swiftvs ARGS` to completion (at most `seconds`); returns the exit code and the output.
        func swiftvs(_ arguments: [String], seconds: Double = 120) async throws -> (Int32, String) {
            let log = self.temporary("out-\(UUID().uuidString).log")
            defer { unlink(log) }
            let process = try ManagedProcess(executable: swiftvsBinary.path, arguments: arguments, logPath: log)
            var code = await process.wait(seconds: seconds)
            if code == nil { code = await process.stop(signal: SIGKILL) }
            return (code ?? -1, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }

        func waitForHTTP(_ port: Int) async throws {
            var spec = LoadSpec(targets: [try BenchTarget.parse("http://127.0.0.1:\(port)/")])
            spec.requests = 1
            spec.connections = 1
            spec.threads = 1
            for _ in 0..<100 {
                let report = try await LoadPhase(
                    name: "ready", spec: spec, group: MultiThreadedEventLoopGroup.singleton
                ).run()
                if report.counters.succeeded == 1 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestSupportError("nothing answered on \(port)")
        }

        @Test("swiftvs bench http against a director prints throughput, loss, CPU and response time")
        func benchAgainstDirector() async throws {
            let rsPort = try freePort()
            let port = try freePort()
            let rs = try ManagedProcess(
                executable: swiftvsBinary.path, arguments: ["realserver", "--listen", "127.0.0.1:\(rsPort)"])
            defer { Task { await rs.stop() } }
            let config = self.temporary("director.yaml")
            try """
            admin: off
            services:
              - {name: web, listen: "127.0.0.1:\(port)", protocol: http, servers: [{address: "127.0.0.1:\(rsPort)"}]}
            """.write(toFile: config, atomically: true, encoding: .utf8)
            defer { unlink(config) }
            let director = try ManagedProcess(
                executable: swiftvsBinary.path, arguments: ["director", "--config", config])
            defer { Task { await director.stop() } }
            try await self.waitForHTTP(port)
            let json = self.temporary("bench.json")
            defer { unlink(json) }
            let (code, output) = try await self.swiftvs([
                "bench", "http", "http://127.0.0.1:\(port)/", "-c", "8", "-d", "2s", "--watch", String(director.pid),
                "--json", json, "--quiet",
            ])
            #expect(code == 0, Comment(rawValue: output))
            for figure in [
                "Throughput", "Loss           0.00%", "Response time  ms: min", "CPU", "swiftvs[\(director.pid)]",
                "machine",
            ] {
                #expect(output.contains(figure), Comment(rawValue: "missing '\(figure)' in:\n\(output)"))
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: json))
            let report = try JSONDecoder().decode(BenchReport.self, from: data)
            let phase = try #require(report.phases.first)
            #expect(phase.counters.succeeded > 100 && phase.counters.failed == 0)
            #expect(phase.cpu.contains { $0.name == "swiftvs[\(director.pid)]" && $0.samples.count >= 1 })
            #expect(phase.timeline.count >= 2)
        }

        @Test("scenarios/interruption.yaml: zero lost GETs through http with retries, the tcp loss measured")
        func interruptionScenario() async throws {
            var sets: [String] = []
            for name in ["rs1_port", "rs2_port", "rs3_port", "http_port", "tcp_port"] {
                sets += ["--set", "\(name)=\(try freePort())"]
            }
            sets += ["--set", "duration=8s", "--set", "kill_at=3s", "--set", "restore_at=6s", "--set", "rate=300"]
            let json = self.temporary("interruption.json")
            defer { unlink(json) }
            let clock = ContinuousClock()
            let started = clock.now
            let (code, output) = try await self.swiftvs(
                [
                    "bench", "scenario", Self.repository.appendingPathComponent("scenarios/interruption.yaml").path,
                    "--json", json, "--quiet",
                ] + sets, seconds: 60)
            let took = clock.now - started
            #expect(code == 0, Comment(rawValue: output))
            #expect(took < .seconds(60))
            let report = try JSONDecoder().decode(BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
            let http = try #require(report.phases.first { $0.name == "http" })
            let tcp = try #require(report.phases.first { $0.name == "tcp" })
            #expect(http.counters.failed == 0, Comment(rawValue: "http lost \(http.lossByCause)"))
            #expect(http.counters.succeeded > 2000)
            #expect(http.faults.map(\.action) == ["kill rs1", "start rs1"])
            #expect(tcp.faults.map(\.action) == ["kill rs1", "start rs1"])
            #expect(tcp.counters.succeeded > 2000)
            // Nodes: the processes' CPU and memory summed per node, sample by sample.
            #expect(http.nodes.map(\.name) == ["master", "worker-1", "worker-2"])
            for node in http.nodes {
                #expect(!node.samples.isEmpty && (node.maxMiB ?? 0) > 1, "\(node.name)")
            }
            let workerOne = try #require(http.nodes.first { $0.name == "worker-1" })
            let rs1 = try #require(http.cpu.first { $0.name == "rs1" })
            #expect((workerOne.maxMiB ?? 0) >= (rs1.maxMiB ?? 0))
            // The tcp service has no retries: what it lost is whatever was in flight on rs1 when it died, and is
            // reported, not asserted to be zero.
            #expect(tcp.faults[0].lost == tcp.counters.failed - tcp.faults[1].lost)
            print(
                "interruption: http lost \(http.counters.failed); tcp lost \(tcp.counters.failed) \(tcp.lossByCause), "
                    + "full rate after \(tcp.faults[0].secondsToFullRate) s; scenario took \(took)")
        }

        @Test("the HTML report opens in headless Chromium without errors, with its charts drawn")
        func htmlInChromium() async throws {
            let server = try await TrustServer(
                .init(delay: .milliseconds(2)), group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await server.shutdown() } }
            var spec = LoadSpec(targets: [try BenchTarget.parse("http://127.0.0.1:\(server.port)/")])
            spec.model = .open(ratePerSecond: 200)
            spec.duration = 3
            spec.threads = 1
            spec.interval = 0.5
            let phase = LoadPhase(
                name: "chart", spec: spec, group: MultiThreadedEventLoopGroup.singleton,
                watch: [WatchTarget.current])
            let marker = Task {
                try await Task.sleep(for: .seconds(1.5))
                phase.mark("kill rs1")
            }
            let result = try await phase.run()
            _ = try await marker.value
            var report = BenchReport(title: "chart test", startedAt: "now", command: "test", cores: 2)
            report.phases = [result]
            let html = self.temporary("report.html")
            let png = self.temporary("report.png")
            defer { unlink(html); unlink(png) }
            try ReportWriter.write(report, json: nil, html: html)
            let log = self.temporary("chromium.log")
            defer { unlink(log) }
            let checker = try ManagedProcess(
                executable: "/usr/bin/env",
                arguments: [
                    "python3", Self.repository.appendingPathComponent("Tests/browser/report_check.py").path, html, png,
                ],
                logPath: log)
            var code = await checker.wait(seconds: 90)
            if code == nil { code = await checker.stop(signal: SIGKILL) }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            try #require(
                code == 0,
                Comment(
                    rawValue: "report_check.py failed (scripts/test.sh installs chromium, "
                        + "chromium-driver and selenium):\n\(output)"))
            let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") })
            let found = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            #expect(found["title"] as? String == "chart test")
            // Throughput, response time, CPU, memory (the fault marked on each of those four), percentiles.
            #expect(found["charts"] as? Int == 5, Comment(rawValue: "\(found)"))
            #expect((found["chartIds"] as? [String])?.contains("memory-0") == true, Comment(rawValue: "\(found)"))
            #expect((found["drawnSeries"] as? Int ?? 0) >= 6, Comment(rawValue: "\(found)"))
            #expect(found["faultMarkers"] as? Int == 4)
            #expect((found["errors"] as? [String])?.isEmpty == true, Comment(rawValue: "\(found)"))
            let attributes = try FileManager.default.attributesOfItem(atPath: png)
            #expect((attributes[.size] as? Int ?? 0) > 10_000, "a screenshot with something on it")
        }
    }
}
