import Foundation
import SwiftVSSystem
import SwiftVSTestSupport
import Testing

@testable import SwiftVSBench

@Suite("JMeter: JTL files in and out, and the scenario's jmeter step")
struct JMeterTests {
    @Test func jtlBecomesAPhase() throws {
        let text = """
            timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,bytes,Latency
            1000000,10,page,200,OK,users 1-1,text,true,100,10
            1000100,20,"create, room",201,Created,users 1-1,text,true,50,20
            1000900,30,page,503,Service Unavailable,users 1-2,text,false,10,30
            1001500,5,page,Non HTTP response code: java.net.ConnectException,x,users 1-2,text,false,0,5
            1002000,40,page,200,OK,users 1-1,text,true,100,40
            """
        let samples = try JTL.parse(text)
        #expect(samples.count == 5 && samples[1].label == "create, room")
        let spec = LoadSpec(targets: [BenchTarget(host: "jmeter", port: 0, path: "p", url: "jmeter:p")])
        let phase = JTL.phase(name: "web", samples: samples, spec: spec)
        #expect(phase.counters.attempted == 5 && phase.counters.succeeded == 3 && phase.counters.failed == 2)
        #expect(phase.counters.failures(.status) == 1 && phase.counters.failures(.connectRefused) == 1)
        #expect(phase.errorsByCode == ["503": 1, "Non HTTP response code: java.net.ConnectException": 1])
        #expect(phase.counters.statusClasses[1] == 3 && phase.counters.statusClasses[4] == 1)
        #expect(abs(phase.latency.p50Ms - 20) < 0.1 && abs(phase.elapsedSeconds - 2.04) < 0.001)
        #expect(phase.timeline.count == 3 && phase.timeline.map(\.succeeded).reduce(0, +) == 3)
        #expect(phase.text().contains("Errors by code 503 1"))
        // The bench's own samples as a JTL that this reader (and JMeter's tools) read back.
        let written = JTL.write(samples)
        #expect(try JTL.parse(written) == samples)
        #expect(throws: BenchSpecError.self) { try JTL.parse("a,b\n1,2\n") }
    }

    /// `swiftvs bench http --jtl`: every request in JMeter's result format, adding up to the report.
    @Test func benchWritesAJTL() async throws {
        let dir = try temporaryDirectory("jtl")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try freePort()
        let server = try ChildProcess(swiftvsBinary.path, ["realserver", "--listen", "127.0.0.1:\(port)"])
        defer {
            _ = server.stop()
            server.removeOutput()
        }
        try await waitUntilAsync("the real server serves") {
            (try? await curlAsync("http://127.0.0.1:\(port)/").status) == 200
        }
        let run = try await toolAsync(
            swiftvsBinary.path,
            [
                "bench", "http", "http://127.0.0.1:\(port)/a", "--rate", "200", "-d", "1s", "--quiet", "--json",
                "\(dir)/r.json", "--jtl", "\(dir)/r.jtl",
            ], seconds: 60)
        #expect(run.code == 0, "\(run.err)")
        let report = try JSONDecoder().decode(
            BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/r.json")))
        let text = try String(contentsOfFile: "\(dir)/r.jtl", encoding: .utf8)
        #expect(text.hasPrefix(JTL.header))
        let samples = try JTL.parse(text)
        let phase = try #require(report.phases.first)
        #expect(samples.count == phase.counters.succeeded + phase.counters.failed && samples.count > 150)
        #expect(samples.allSatisfy { $0.label == "/a" && $0.responseCode == "200" && $0.success })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(samples.allSatisfy { now - $0.timeStamp < 60_000 && $0.timeStamp <= now })
    }

    /// Without JMeter the step fails at once, saying what is missing.
    @Test func missingJMeterFailsClearly() async throws {
        let dir = try temporaryDirectory("jmeter-missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        steps:
          - jmeter: {name: web, plan: /nonexistent.jmx, home: /nonexistent/jmeter}
        """.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        // "At once" is the 60 s bound below (a hang fails it), not a stopwatch: under CI's load the start alone took
        // over 30 s once.
        let run = try await toolAsync(
            swiftvsBinary.path, ["bench", "scenario", "\(dir)/s.yaml", "--quiet"], seconds: 60)
        #expect(run.code == 1)
        #expect(
            (run.out + run.err).contains("JMeter is missing (no /nonexistent/jmeter/bin/ApacheJMeter.jar)"),
            "\(run.out)\(run.err)")
    }
}

extension BenchIntegration {
    /// JMeter under load is CPU-bound for its whole run; it runs with the measuring suite, one test at a time.
    @Suite("JMeter step")
    struct JMeterStepRun {
        /// The scenario step against the conference's web tier and api (scenarios/jmeter/conference-web.jmx): the
        /// report's counts and p50 are the JTL's.
        @Test(
            .enabled(if: FileManager.default.fileExists(atPath: "/usr/share/jmeter/bin/ApacheJMeter.jar")),
            .timeLimit(.minutes(3)))
        func jmeterStepFoldsItsResultsIn() async throws {
            let dir = try temporaryDirectory("jmeter")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let port = try freePort()
            let plan = repositoryRoot.appendingPathComponent("scenarios/jmeter/conference-web.jmx").path
            try """
            processes:
              conference: {command: "${swiftvs} conference --listen 127.0.0.1:\(port)", ready: "http://127.0.0.1:\(port)/healthz"}
            nodes: {master: [conference]}
            steps:
              - start: conference
              - jmeter:
                  name: web
                  plan: \(plan)
                  properties: {host: 127.0.0.1, port: "\(port)", users: "2", rampup: "1", duration: "6"}
                  timeout: 60s
            """.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
            let run = try await toolAsync(
                swiftvsBinary.path,
                ["bench", "scenario", "\(dir)/s.yaml", "--json", "\(dir)/r.json", "--logs", dir, "--quiet"],
                seconds: 120)
            #expect(run.code == 0, "\(run.out)\(run.err)")
            let report = try JSONDecoder().decode(
                BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/r.json")))
            let phase = try #require(report.phases.first { $0.name == "web" })
            let samples = try JTL.parse(try String(contentsOfFile: "\(dir)/web.jtl", encoding: .utf8))
            #expect(samples.count > 20 && phase.counters.attempted == samples.count)
            #expect(phase.counters.failed == samples.filter { !$0.success }.count && phase.counters.failed == 0)
            #expect(Set(samples.map(\.label)) == ["page", "script", "style", "create room", "room info"])
            let sorted = samples.filter(\.success).map(\.elapsed).sorted()
            let p50 = Double(sorted[(sorted.count - 1) / 2])
            #expect(
                abs(phase.latency.p50Ms - p50) <= max(1, p50 * 0.05), "report \(phase.latency.p50Ms) ms, JTL \(p50) ms")
            #expect(phase.cpu.contains { $0.name == "jmeter" && ($0.maxMiB ?? 0) > 10 })
            #expect(phase.nodes.first?.name == "master")
        }
    }
}
