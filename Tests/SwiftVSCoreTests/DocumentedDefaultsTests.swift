import Foundation
import SwiftVSConfigKit
import SwiftVSCore
import Testing

/// Defaults are declared once, on the config structs; docs/config.md reports them. This holds the two together.
@Suite("docs/config.md states the defaults the config structs declare")
struct DocumentedDefaultsTests {
    /// key → the default column of its row in docs/config.md.
    static func documented(_ file: String = "docs/config.md") throws -> [String: String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(file)
        var out: [String: String] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where line.hasPrefix("| `") {
            // A `\|` inside a cell (`tcp` \| `http`) is Markdown's escaped pipe, not a column.
            let cells = line.replacingOccurrences(of: "\\|", with: "\u{1}")
                .split(separator: "|", omittingEmptySubsequences: false).map {
                    $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\u{1}", with: "|")
                }
            guard cells.count > 4 else { continue }
            let key = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            if out[key] == nil { out[key] = cells[3].trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
        }
        return out
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }

    @Test("a virtual service's and the top level's defaults")
    func serviceDefaults() throws {
        let docs = try Self.documented()
        let service = VirtualServiceConfig(name: "x", listen: .loopback(port: 1), servers: [])
        let timeouts = service.timeouts
        let expected: [String: String] = [
            "protocol": service.proto.rawValue,
            "scheduler": service.scheduler.rawValue,
            "retries": "\(service.retries)",
            "timeouts.connect": Self.seconds(timeouts.connect),
            "timeouts.header_read": Self.seconds(timeouts.headerRead),
            "timeouts.idle": Self.seconds(timeouts.idle),
            "timeouts.server": Self.seconds(timeouts.server),
            "timeouts.body": Self.seconds(timeouts.body),
            "limits.max_header_bytes": "\(service.limits.maxHeaderBytes)",
            "limits.max_headers": "\(service.limits.maxHeaders)",
            "forwarded_for": "\(service.forwardedFor)",
            "max_idle_per_server": "\(service.maxIdlePerServer)",
            "quorum": "\(service.quorum)",
            "quorum_hysteresis": "\(service.quorumHysteresis)",
            "queue.size": "\(service.queue.size)",
            "queue.timeout": Self.seconds(service.queue.timeout),
            "slow_start": Self.seconds(service.slowStart),
            "forward": service.forward.rawValue,
            "masquerade": "\(service.masquerade)",
            "drain_timeout": Self.seconds(DirectorConfig(threads: nil, services: [], admin: nil).drainTimeout),
        ]
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(
                docs[key] == value,
                "docs/config.md gives \(key) the default \(docs[key] ?? "nothing"); the code \(value)")
        }
    }

    @Test("the autoscale section's defaults (docs/autoscale.md)")
    func autoscaleDefaults() throws {
        let docs = try Self.documented("docs/autoscale.md")
        let config = AutoscaleConfig(maxReplicas: 1, provider: ProcessProviderConfig(command: [], ports: 1...1))
        let provider = try #require(config.process)
        let expected: [String: String] = [
            "min_replicas": "\(config.minReplicas)",
            "sync_period": Self.seconds(config.syncPeriod),
            "tolerance": "\(config.tolerances.scaleUp)",
            "downscale_stabilization": Self.seconds(config.downscaleStabilization),
            "cpu_initialization_period": Self.seconds(config.cpuInitializationPeriod),
            "initial_readiness_delay": Self.seconds(config.initialReadinessDelay),
            "drain_timeout": Self.seconds(config.drainTimeout),
            "stop_timeout": Self.seconds(config.stopTimeout),
            "metrics": "[{type: cpu, utilization: 80}]",
            "process.host": provider.host,
            "process.weight": "\(provider.weight)",
            "process.restart_delay": Self.seconds(provider.restartDelay),
            "process.max_restart_delay": Self.seconds(provider.maxRestartDelay),
        ]
        #expect(config.metrics == [AutoscaleMetric(source: .cpu, target: .utilization(80))])
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(
                docs[key] == value,
                "docs/autoscale.md gives \(key) the default \(docs[key] ?? "nothing"); the code \(value)")
        }
    }
}
