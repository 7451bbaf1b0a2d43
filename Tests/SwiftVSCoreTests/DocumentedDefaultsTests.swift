import Foundation
import SwiftVSConfigKit
import SwiftVSCore
import Testing

/// Defaults are declared once, on the config structs; docs/config.md reports them. This holds the two together.
@Suite("docs/config.md states the defaults the config structs declare")
struct DocumentedDefaultsTests {
    /// key → the default column of its row in docs/config.md.
    static func documented() throws -> [String: String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/config.md")
        var out: [String: String] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
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
            "drain_timeout": Self.seconds(DirectorConfig(threads: nil, services: [], admin: nil).drainTimeout),
        ]
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(
                docs[key] == value,
                "docs/config.md gives \(key) the default \(docs[key] ?? "nothing"); the code \(value)")
        }
    }
}
