@testable import SwiftVSBench
import SwiftVSConfigKit
import SwiftVSSystem
import Testing
@testable import SwiftVSCore

@Suite("Bench core: sweep, faults, /proc, scenarios, HTML")
struct ReportTests {
    @Test func sweepFindsTheHighestSustainedRateAndBisects() {
        var sweep = RateSweep(rates: RateSweep.ladder(from: 1000, to: 4000, step: 1000), refineSteps: 2)
        // The target sustains up to 2600 req/s.
        var offered: [Double] = []
        while let rate = sweep.next() {
            offered.append(rate)
            let achieved = min(rate, 2600)
            sweep.record(offered: rate, achieved: achieved, lossPercent: rate > 2600 ? 5 : 0)
        }
        // Up the ladder to the first failure (3000), then bisect: 2500 (good), 2750 (bad).
        #expect(offered == [1000, 2000, 3000, 2500, 2750])
        #expect(sweep.judge(offered: 1000, achieved: 985, lossPercent: 0.5))
        #expect(!sweep.judge(offered: 1000, achieved: 970, lossPercent: 0), "under 98% answered")
        #expect(!sweep.judge(offered: 1000, achieved: 1000, lossPercent: 1), "1% loss is not under 1%")
        let report = SweepReport(
            name: "s", url: "u", maxLossPercent: 1,
            steps: [
                SweepStep(
                    offeredRate: 1000, achievedRate: 1000, lossPercent: 0, p99Ms: 1, sustained: true, cpuPercent: [:]),
                SweepStep(
                    offeredRate: 2500, achievedRate: 2500, lossPercent: 0, p99Ms: 1, sustained: true, cpuPercent: [:]),
                SweepStep(
                    offeredRate: 3000, achievedRate: 2600, lossPercent: 5, p99Ms: 1, sustained: false, cpuPercent: [:]),
            ])
        #expect(report.bestRate == 2500)
        let gain = ComparisonReport(name: "g", baseline: "a", candidate: "b", baselineRate: 3160, candidateRate: 3600)
        #expect(abs((gain.gainPercent ?? 0) - 13.92) < 0.01, "the study's 3600 vs 3160 req/s")
    }

    @Test func faultAnalysisCountsLossAndRecovery() {
        // 100 req/s steady; a fault at 3 s costs errors in the buckets ending at 4 and 5 s; a second fault at 7 s
        // costs nothing.
        let timeline = (1...9).map { t -> TimelinePoint in
            let failed = (t == 4 || t == 5) ? 10 : 0
            return TimelinePoint(
                t: Double(t), succeeded: 100 - failed, failed: failed,
                requestsPerSecond: Double(100 - failed), megabytesPerSecond: 0, p50Ms: 1, p99Ms: 1,
                maxMs: 1)
        }
        let out = FaultAnalysis.analyze(timeline: timeline, interval: 1, faults: [(3, "kill rs1"), (7, "start rs1")])
        #expect(
            out == [
                FaultReport(at: 3, action: "kill rs1", lost: 20, secondsToFullRate: 2),
                FaultReport(at: 7, action: "start rs1", lost: 0, secondsToFullRate: 0),
            ])
    }

    @Test func procParsers() {
        // A command name with a space and a parenthesis, as /proc allows.
        let pid = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 30 0 0 20 0 4 0 100 0 0"
        #expect(ProcStat.processTicks(pid) == 180)
        #expect(ProcStat.processName(pid) == "my (odd) name")
        #expect(ProcStat.percent(ticks: 250, previous: 150, seconds: 1, ticksPerSecond: 100) == 100)
    }

    func load(_ yaml: String, set: [String: String] = [:]) throws(ConfigError) -> Scenario {
        try ScenarioLoader.load(
            yaml: yaml, source: "s.yaml", builtins: ["swiftvs": "/bin/swiftvs", "tmp": "/tmp/x"],
            overrides: set, defaultThreads: 2)
    }

    @Test func scenarioVariablesAndSteps() throws {
        let scenario = try self.load(
            """
            title: t
            vars: {port: "9001", rate: "100"}
            processes:
              rs1: {command: "${swiftvs} realserver --listen 127.0.0.1:${port}", ready: "http://127.0.0.1:${port}/"}
            steps:
              - start: rs1
              - load:
                  url: http://127.0.0.1:${port}/
                  rate: ${rate}
                  duration: 5s
                  keepalive: false
                  faults: [{at: 2s, kill: rs1}, {at: 1s, signal: {process: rs1, signal: STOP}}]
            """, set: ["port": "9100"])
        #expect(scenario.processes[0].command == "/bin/swiftvs realserver --listen 127.0.0.1:9100")
        guard case .load(let load) = scenario.steps[1] else {
            Issue.record("expected a load step")
            return
        }
        #expect(load.spec.model == .open(ratePerSecond: 100))
        #expect(load.spec.connections == 1000, "open loop without keep-alive: up to 1000 connections")
        #expect(load.faults.map(\.at) == [1, 2], "faults sorted by time")
        #expect(load.faults[0].action == .signal(process: "rs1", signal: Signals.parse("STOP")!))
    }

    @Test func scenarioNodesAndTheirSums() throws {
        let scenario = try self.load(
            """
            processes:
              a: {command: "true", ready: 1s}
              b: {command: "true", ready: 1s}
              c: {command: "true", ready: 1s}
            nodes:
              master: [a]
              worker: [b, c]
            steps: [{start: a}]
            """)
        #expect(
            scenario.nodes == [
                ScenarioNode(name: "master", processes: ["a"]), ScenarioNode(name: "worker", processes: ["b", "c"]),
            ])
        let b = CPUSeries(
            name: "b", pids: [2],
            samples: [CPUPoint(t: 1, percent: 10, rssMiB: 5), CPUPoint(t: 2, percent: 20, rssMiB: 6)])
        let c = CPUSeries(
            name: "c", pids: [3],
            samples: [CPUPoint(t: 1, percent: 1, rssMiB: 50), CPUPoint(t: 2, percent: 2, rssMiB: 60)])
        let worker = CPUSeries.sum(name: "worker", of: [b, c])
        #expect(worker.samples == [CPUPoint(t: 1, percent: 11, rssMiB: 55), CPUPoint(t: 2, percent: 22, rssMiB: 66)])
        #expect(worker.maxMiB == 66 && worker.pids == [2, 3])
        for (yaml, path, message) in [
            ("nodes: {m: [zz]}", "nodes.m[0]", "no process 'zz'"),
            ("nodes: {m: [a], n: [a]}", "nodes.n[0]", "already on node 'm'"),
            ("nodes: {m: a}", "nodes.m", "expected a list"),
        ] {
            #expect {
                _ = try self.load("processes: {a: {command: 'true', ready: 1s}}\n\(yaml)\nsteps: [{start: a}]")
            } throws: { error in
                "\(error)".contains(path) && "\(error)".contains(message)
            }
        }
    }

    @Test(
        "bad scenarios: every problem named by key path",
        arguments: [
            ("steps: [{start: rs9}]", "steps[0].start", "no process named 'rs9'"),
            ("steps: [{lod: {url: http://a/}}]", "steps[0].lod", "did you mean 'load'"),
            ("steps: [{load: {url: https://a/}}]", "steps[0].load.url", "https is not supported"),
            (
                "steps: [{load: {url: http://a/, duration: 2s, faults: [{at: 5s, run: x}]}}]", "steps[0].load.faults",
                "after the phase ends"
            ),
            ("steps:\n  - load:\n      url: http://a/${nope}", "steps[0].load.url", "unknown variable '${nope}'"),
            ("steps: [{sweep: {name: s, url: http://a/}}]", "steps[0].sweep.rates", "required"),
            ("steps: [{compare: {baseline: a, candidate: b}}]", "steps[0].compare", "not a sweep that runs before"),
            ("steps: [{load: {url: http://a/, connections: 0}}]", "steps[0].load.connections", "must be 1...100000"),
            ("processes: {a: {ready: x}}\nsteps: []", "processes.a.command", "required"),
            (
                "steps: [{signal: {process: a, signal: BOGUS}}]\nprocesses: {a: {command: x}}",
                "steps[0].signal.signal",
                "unknown signal"
            ),
        ])
    func badScenario(yaml: String, path: String, message: String) {
        do {
            _ = try self.load(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(
                error.problems.contains { $0.path == path && $0.message.contains(message) },
                Comment(rawValue: "\(error)"))
        }
    }

    @Test func htmlHasChartsAndFaultMarkers() throws {
        var spec = LoadSpec(targets: [try BenchTarget.parse("http://127.0.0.1:1/")])
        spec.interval = 1
        let timeline = (1...5).map {
            TimelinePoint(
                t: Double($0), succeeded: 100, failed: 0, requestsPerSecond: 100,
                megabytesPerSecond: 1, p50Ms: 1, p99Ms: 2, maxMs: 3)
        }
        let phase = PhaseReport(
            name: "p <1>", spec: spec, elapsedSeconds: 5, counters: LoadCounters(), unfinished: 0,
            latency: .empty,
            percentiles: [
                PercentilePoint(percentile: 0, ms: 1),
                PercentilePoint(percentile: 99.9, ms: 5),
            ],
            timeline: timeline, cpu: [CPUSeries(name: "rs1", pids: [1], samples: [CPUPoint(t: 1, percent: 5)])],
            machineCPU: CPUSeries(name: "machine"),
            faults: [FaultReport(at: 2, action: "kill rs1")])
        var report = BenchReport(title: "T & <t>", startedAt: "now", command: "c", cores: 2)
        report.phases = [phase]
        let html = BenchHTML.render(report)
        #expect(html.contains("<title>T &amp; &lt;t&gt;</title>"))
        for id in ["throughput-0", "latency-0", "cpu-0", "percentiles-0"] { #expect(html.contains("id=\"\(id)\"")) }
        #expect(html.components(separatedBy: "class=\"fault\"").count - 1 == 3, "the fault on each time chart")
        #expect(!html.contains("<script"), "no scripts, nothing fetched")
        #expect(BenchHTML.niceCeiling(3700) == 5000 && BenchHTML.niceCeiling(0.18) == 0.2)
    }
}

extension String {
    func components(separatedBy separator: String) -> [Substring] {
        self.split(separator: separator, omittingEmptySubsequences: false)
    }
}
