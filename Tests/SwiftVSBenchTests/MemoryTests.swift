import Foundation
import SwiftVSSystem
import SwiftVSTestSupport
import Testing

@testable import SwiftVSBench

@Suite("Bench memory: resident memory sampled with CPU, and --watch by name")
struct MemoryTests {
    /// A process that allocates and touches a known amount shows up with that resident memory, within 10 %.
    @Test func residentMemoryOfAKnownAllocation() async throws {
        let mib = 256
        let script = """
            import sys, time
            b = bytearray(\(mib) * 1024 * 1024)
            for i in range(0, len(b), 4096): b[i] = 1
            print("ready", flush=True)
            time.sleep(60)
            """
        let child = try ChildProcess("/usr/bin/env", ["python3", "-c", script])
        defer {
            _ = child.stop()
            child.removeOutput()
        }
        try await waitUntilAsync("the allocator is ready", seconds: 30) { child.stdout.contains("ready") }
        let pid = child.pid
        let sampler = CPUSampler(targets: [WatchTarget(name: "allocator", resolve: { [pid] })])
        sampler.sample(t: 0)
        try await Task.sleep(for: .milliseconds(200))
        sampler.sample(t: 0.2)
        let rss = try #require(sampler.series[0].samples.last?.rssMiB)
        #expect(abs(rss - Double(mib)) <= Double(mib) * 0.1, "resident \(rss) MiB for \(mib) MiB allocated")
        #expect(sampler.series[0].maxMiB == rss)
        let machine = try #require(sampler.machine.samples.last?.rssMiB)
        #expect(machine >= rss, "the machine's used memory holds the allocation")
        // In the reports: text and HTML.
        let spec = LoadSpec(targets: [BenchTarget(host: "127.0.0.1", port: 1, path: "/", url: "http://127.0.0.1:1/")])
        let phase = PhaseReport(
            name: "p", spec: spec, elapsedSeconds: 1, counters: LoadCounters(), unfinished: 0, latency: .empty,
            percentiles: [], timeline: [], cpu: sampler.series, machineCPU: sampler.machine)
        var report = BenchReport(title: "t", startedAt: "", command: "", cores: 2)
        report.phases = [phase]
        #expect(report.text().contains("Memory         mean / max MiB"))
        #expect(BenchHTML.render(report).contains("id=\"memory-0\""))
    }

    /// `--watch NAME` never sums unrelated processes of one name: with two running, it asks for a PID.
    @Test func watchByNameRefusesAnAmbiguousName() throws {
        let a = try ChildProcess("/usr/bin/env", ["sleep", "30"])
        let b = try ChildProcess("/usr/bin/env", ["sleep", "30"])
        defer {
            _ = a.stop()
            _ = b.stop()
            a.removeOutput()
            b.removeOutput()
        }
        try waitUntilBlocking("both sleep") { ProcFiles.pids(named: "sleep").count >= 2 }
        #expect {
            _ = try WatchTarget.parse("sleep")
        } throws: { error in
            "\(error)".contains("processes are named sleep") && "\(error)".contains(String(a.pid))
        }
        // One process of a name is followed.
        let only = try WatchTarget.parse(String(a.pid))
        #expect(only.resolve() == [a.pid])
    }
}
