import Foundation
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

let nftUsable = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")

/// The kernel path against nft itself.
@Suite(
    "Kernel NAT ruleset (nft, root)", .enabled(if: nftUsable, "needs root and nft (scripts/test.sh installs nftables)"))
struct KernelNATRulesetTests {
    static func service(
        _ kind: SchedulerKind, _ weights: [Int], down: Set<Int> = [], persistence: PersistenceConfig? = nil
    )
        -> NATService
    {
        NATService(
            name: "web", listen: try! Endpoint(host: "10.0.0.100", port: 80), scheduler: kind,
            persistence: persistence,
            backends: weights.enumerated().map {
                NATBackend(
                    id: $0.offset, endpoint: try! Endpoint(host: "10.0.1.\($0.offset + 11)", port: 8080),
                    weight: $0.element, inRotation: !down.contains($0.offset))
            })
    }

    /// nft itself reads the commands, in a network namespace of its own (root only; CI runs as root).
    @Test(
        "nft accepts every scheduler's commands, persistence and masquerade included, and lists them back")
    func nftAccepts() async throws {
        var services: [NATService] = []
        for (index, kind) in SchedulerKind.allCases.enumerated() {
            var service = Self.service(kind, [2, 1, 1], down: [1])
            service.name = "svc \(kind.rawValue)"
            service.listen = try Endpoint(host: "10.0.0.100", port: 1000 + index)
            services.append(service)
        }
        var persistent = Self.service(.wrr, [1, 1], persistence: PersistenceConfig())
        persistent.name = "sticky"
        persistent.persistence?.prefixV4 = 24
        persistent.listen = try Endpoint(host: "10.0.0.100", port: 2000)
        persistent.masquerade = true
        persistent.proto = .udp
        services.append(persistent)
        let dir = try temporaryDirectory("nat-plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/rules.json"
        try NATRuleset.commands(services, replace: true).text.write(toFile: path, atomically: true, encoding: .utf8)
        // Twice: the second run finds the first's table and replaces it.
        let run = try await toolAsync(
            "unshare", ["-n", "sh", "-c", "nft -j -f \(path) && nft -j -f \(path) && nft list ruleset"])
        #expect(run.code == 0, Comment(rawValue: run.err))
        #expect(run.out.contains("dnat ip to numgen inc mod 3 map"), Comment(rawValue: run.out))
        #expect(run.out.contains("jhash ip saddr mod 256 seed 0x53565331 map"))
        #expect(run.out.contains("ip saddr & 255.255.255.0 == @"))
        #expect(run.out.contains("update @"))
        #expect(run.out.contains("udp dport 2000"))
        #expect(run.out.contains("masquerade"))
    }
}
