import Foundation
import SwiftVSSystem
import SwiftVSTestSupport
import Testing

@testable import SwiftVSBench

extension BenchIntegration {
    /// scenarios/conference-study.yaml with short phases: both runs complete, the report has both, the autoscaled
    /// run goes above one replica under the load and back to one after it, every process it started is gone, and the
    /// HTML report opens in Chromium without errors with points on its replica chart.
    @Suite("The conference study, short")
    struct ConferenceStudy {
        @Test(
            .enabled(if: FileManager.default.fileExists(atPath: "/usr/share/jmeter/bin/ApacheJMeter.jar")),
            .timeLimit(.minutes(5)))
        func shortStudy() async throws {
            let dir = try temporaryDirectory("study")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let singles = try freePortBlock(6)
            let apiPorts = try freePortBlock(10)
            let signalPorts = try freePortBlock(10)
            let names = ["front_port", "admin_port", "web_port", "registry_port", "api_port", "signal_port"]
            var sets: [String] = []
            for (i, name) in names.enumerated() { sets += ["--set", "\(name)=\(singles + i)"] }
            sets += [
                "--set", "api_ports=\(apiPorts)-\(apiPorts + 9)", "--set",
                "signal_ports=\(signalPorts)-\(signalPorts + 9)",
                "--set", "users=6", "--set", "duration=15", "--set", "rooms=40", "--set", "ramp=3s", "--set",
                "hold=12s",
                "--set", "cool_down=25s",
            ]
            let scenario = repositoryRoot.appendingPathComponent("scenarios/conference-study.yaml").path
            let run = try await toolAsync(
                swiftvsBinary.path,
                [
                    "bench", "scenario", scenario, "--json", "\(dir)/r.json", "--html", "\(dir)/r.html", "--logs", dir,
                    "--quiet",
                ]
                    + sets, seconds: 280)
            #expect(run.code == 0, "\(run.out.suffix(3000))\(run.err.suffix(2000))")
            let report = try JSONDecoder().decode(
                BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/r.json")))
            #expect(
                report.phases.map(\.name)
                    == ["fixed-web-api", "fixed-signaling", "autoscaled-web-api", "autoscaled-signaling", "cool-down"])
            for phase in report.phases where phase.name != "cool-down" {
                #expect(phase.counters.succeeded > 100 && phase.lossPercent < 1, "\(phase.name): \(phase.lossByCause)")
                #expect(phase.nodes.map(\.name) == ["master", "worker-1", "worker-2"], "\(phase.name)")
            }
            let under = try #require(report.phases.first { $0.name == "autoscaled-web-api" })
            let most = under.replicas.flatMap(\.samples).map(\.current).max() ?? 0
            #expect(most > 1, "the autoscaled run reached \(most) replicas: \(under.replicas.map(\.decisions))")
            // Per replica, as the director measured them: CPU and memory of each replica it ran.
            let replicas = under.replicas.flatMap(\.perReplica)
            #expect(replicas.count > 2 && replicas.allSatisfy { ($0.maxMiB ?? 0) > 1 }, "\(replicas.map(\.name))")
            let after = try #require(report.phases.first { $0.name == "cool-down" })
            for series in after.replicas {
                #expect(series.samples.last?.current == 1, "\(series.service) back to one: \(series.decisions)")
            }
            // Nothing it started still runs: no port of the study answers.
            for port in Array(singles..<(singles + 6)) + Array(apiPorts..<(apiPorts + 10))
                + Array(signalPorts..<(signalPorts + 10))
            {
                #expect(ListenFailure.probe(host: "127.0.0.1", port: port) == nil, "127.0.0.1:\(port) is still held")
            }
            // The report in Chromium.
            let check = try await toolAsync(
                "python3",
                [
                    repositoryRoot.appendingPathComponent("Tests/browser/report_check.py").path, "\(dir)/r.html",
                    "\(dir)/r.png",
                ],
                seconds: 90)
            #expect(check.code == 0, "\(check.err)")
            let line = try #require(check.out.split(separator: "\n").last { $0.hasPrefix("{") })
            let found = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            #expect((found["errors"] as? [String])?.isEmpty == true, "\(found)")
            #expect((found["replicaPoints"] as? Int ?? 0) >= 5, "\(found)")
        }
    }
}
