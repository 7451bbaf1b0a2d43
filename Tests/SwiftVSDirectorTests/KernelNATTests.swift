import Foundation
import Synchronization
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

/// The kernel path in the project's network-namespace lab (scripts/ha-lab.sh, prefix `svk-`): a client on the front
/// subnet, the director(s) with the virtual addresses, three real servers on the back subnet whose gateway is the
/// director, LVS-NAT style. Needs root and nft (CI runs as root; scripts/test.sh installs nftables and conntrack).
extension IntegrationTests {
    @Suite(
        "Kernel NAT lab (network namespaces, root)", .serialized, .timeLimit(.minutes(4)),
        .enabled(if: nftUsable, "needs root and nft for network namespaces and nf_tables"))
    struct KernelNATLabTests {
        static let script = repositoryRoot.appendingPathComponent("scripts/ha-lab.sh").path
        static let client = repositoryRoot.appendingPathComponent("Tests/kernel/nat_client.py").path
        static let udpEcho = repositoryRoot.appendingPathComponent("Tests/kernel/udp_echo.py").path
        static let prefix = "svk-"
        static let vip = "10.201.0.100"

        @discardableResult
        static func lab(_ arguments: [String]) throws -> String {
            let child = try ChildProcess("/usr/bin/env", ["LAB_PREFIX=\(prefix)", "/bin/bash", script] + arguments)
            defer { child.removeOutput() }
            let code = child.wait(seconds: 30)
            guard code == 0 else {
                throw ClientError("ha-lab.sh \(arguments.joined(separator: " ")): \(code) \(child.stderr)")
            }
            return child.stdout
        }

        /// A process inside a lab node; its PID is the program's own (`ip netns exec` execs).
        static func start(_ node: String, _ argv: [String]) throws -> ChildProcess {
            try ChildProcess("/usr/sbin/ip", ["netns", "exec", prefix + node] + argv)
        }

        /// Runs a command in a node to completion: exit code and output.
        static func run(_ node: String, _ argv: [String], seconds: Double = 30) throws -> (code: Int32, out: String) {
            let child = try start(node, argv)
            defer { child.removeOutput() }
            let code = child.wait(seconds: seconds)
            return (code, child.stdout + (code == 0 ? "" : child.stderr))
        }

        /// One of nat_client.py's modes from the client node, its JSON.
        static func client(
            _ arguments: [String], node: String = "client", seconds: Double = 90
        ) throws
            -> [String: Any]
        {
            let (code, out) = try run(node, ["python3", client] + arguments, seconds: seconds)
            guard code == 0, let line = out.split(separator: "\n").last,
                let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { throw ClientError("nat_client.py \(arguments): \(code) \(out)") }
            return json
        }

        static func counts(_ json: [String: Any]) -> [String: Int] { json["servers"] as? [String: Int] ?? [:] }

        /// The three real servers: `swiftvs realserver` on 8080 and a UDP echo on 9053, named after their node.
        static func realServers() throws -> [ChildProcess] {
            try (1...3).flatMap { n in
                [
                    try start(
                        "real\(n)",
                        [swiftvsBinary.path, "realserver", "--listen", "10.201.1.1\(n):8080", "--name", "real\(n)"]),
                    try start("real\(n)", ["python3", udpEcho, "real\(n)", "10.201.1.1\(n)", "9053"]),
                ]
            }
        }

        /// The virtual addresses on lb1, as the VRRP master would hold them (the front VIP and the reals' gateway).
        static func holdVIPs(_ node: String = "lb1") throws {
            for (address, device) in [("\(vip)/24", "eth0"), ("10.201.1.1/24", "eth1")] {
                _ = try run(node, ["ip", "addr", "replace", address, "dev", device])
            }
        }

        static func writeConfig(_ yaml: String, _ name: String) throws -> String {
            let path = NSTemporaryDirectory() + "swiftvs-kernelnat-\(name).yaml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        static func director(_ path: String, node: String = "lb1") throws -> ChildProcess {
            try start(node, [swiftvsBinary.path, "director", "--config", path])
        }

        /// The services chain as nft lists it in `node` (empty if there is no table).
        static func ruleset(_ node: String = "lb1") -> String {
            (try? run(node, ["nft", "list", "chain", "ip", "swiftvs", "services"], seconds: 10))?.out ?? ""
        }

        static func tableExists(_ node: String = "lb1") -> Bool {
            ((try? run(node, ["nft", "list", "tables"], seconds: 10))?.out ?? "").contains("table ip swiftvs")
        }

        static func adm(_ arguments: [String], node: String = "lb1") throws -> String {
            try run(node, [swiftvsBinary.path, "adm"] + arguments + ["--admin", "127.0.0.1:9100"], seconds: 10).out
        }

        /// Polls every 20 ms until `condition` holds; false after `limit` seconds.
        static func wait(_ limit: Double, _ condition: () -> Bool) -> Bool {
            let start = Date()
            while Date().timeIntervalSince(start) < limit {
                if condition() { return true }
                usleep(20_000)
            }
            return false
        }

        /// Reads the services chain every few ms while changes happen; counts listings without a translation for
        /// the virtual address (a moment with an empty or half-written map would show as one).
        final class RulesetSampler: @unchecked Sendable {
            let samples = Atomic<Int>(0)
            let empty = Atomic<Int>(0)
            let stopped = Atomic<Bool>(false)
            let done = DispatchSemaphore(value: 0)
            let port: Int

            init(port: Int) { self.port = port }

            func start() {
                Thread {
                    while !self.stopped.load(ordering: .relaxed) {
                        let listing = KernelNATLabTests.ruleset()
                        self.samples.add(1, ordering: .relaxed)
                        if !listing.contains("dport \(self.port) dnat ip to") { self.empty.add(1, ordering: .relaxed) }
                    }
                    self.done.signal()
                }.start()
            }

            func stop() {
                self.stopped.store(true, ordering: .relaxed)
                self.done.wait()
            }
        }

        static func within(_ count: Int, _ expected: Double, _ tolerance: Double) -> Bool {
            abs(Double(count) - expected) <= expected * tolerance
        }

        @Test(
            "each kernel scheduler's spread over 3000 connections, the client's own address at the real servers, persistence, UDP flows, adm list --stats"
        )
        func schedulers() async throws {
            try await onThread { try Self.schedulersBody() }
        }

        static func schedulersBody() throws {
            try lab(["up"])
            defer { _ = try? lab(["down"]) }
            let reals = try realServers()
            defer {
                reals.forEach {
                    $0.stop(); $0.removeOutput()
                }
            }
            try holdVIPs()
            let servers =
                "servers: [{address: \"10.201.1.11:8080\", weight: 3}, {address: \"10.201.1.12:8080\", weight: 2}, {address: \"10.201.1.13:8080\", weight: 1}]"
            let yaml = """
                admin: 127.0.0.1:9100
                services:
                  - {name: rr, listen: "\(vip):80", protocol: tcp, forward: nat, scheduler: rr, \(servers)}
                  - {name: wrr, listen: "\(vip):81", protocol: tcp, forward: nat, scheduler: wrr, \(servers)}
                  - {name: sh, listen: "\(vip):82", protocol: tcp, forward: nat, scheduler: sh, scheduler_flags: [port], \(servers)}
                  - {name: mh, listen: "\(vip):83", protocol: tcp, forward: nat, scheduler: mh, scheduler_flags: [port], \(servers)}
                  - {name: wlc, listen: "\(vip):84", protocol: tcp, forward: nat, scheduler: wlc, \(servers)}
                  - {name: sticky, listen: "\(vip):85", protocol: tcp, forward: nat, scheduler: rr, persistence: {timeout: 60}, \(servers)}
                  - name: dns
                    listen: "\(vip):5353"
                    protocol: udp
                    forward: nat
                    scheduler: rr
                    servers: [{address: "10.201.1.11:9053"}, {address: "10.201.1.12:9053"}, {address: "10.201.1.13:9053"}]

                """
            let director = try director(try writeConfig(yaml, "schedulers"))
            defer { director.stop(); director.removeOutput() }
            try #require(wait(10) { ruleset().contains("dport 5353") }, Comment(rawValue: director.stderr))

            // rr: exact thirds; wrr 3:2:1 exact; sh and mh with the port flag (one client address): hashed,
            // within 15 %; wlc (weights recomputed from conntrack every second) near 3:2:1, within 25 %.
            let n = 3000
            let expected: [(Int, String, [Double], Double)] = [
                (80, "rr", [1000, 1000, 1000], 0),
                (81, "wrr", [1500, 1000, 500], 0),
                (82, "sh", [1500, 1000, 500], 0.15),
                (83, "mh", [1500, 1000, 500], 0.15),
                (84, "wlc", [1500, 1000, 500], 0.25),
            ]
            for (port, name, shares, tolerance) in expected {
                let result = try client(["tcp", vip, "\(port)", "\(n)", "60"])
                let counts = Self.counts(result)
                #expect(result["failed"] as? Int == 0, "\(name): \(result["failed"] ?? "")")
                for (index, share) in shares.enumerated() {
                    let got = counts["real\(index + 1)"] ?? 0
                    #expect(
                        within(got, share, tolerance), "\(name): real\(index + 1) got \(got) of \(n), expected \(share)"
                    )
                }
                // The real servers see the client's own address: nothing between rewrote the source.
                #expect(result["clients"] as? [String] == ["10.201.0.10"], "\(name): \(result["clients"] ?? "")")
                print("kernel NAT \(name): \(counts.sorted { $0.key < $1.key })")
            }

            // Persistence: one client keeps its real server; another client (lb2's address) is placed anew.
            let sticky = Self.counts(try client(["tcp", vip, "85", "50"]))
            #expect(sticky.count == 1 && sticky.values.first == 50, "\(sticky)")

            // UDP: flows spread; every reply comes from the virtual address.
            let udp = try client(["udp", vip, "5353", "30"])
            #expect(Self.counts(udp) == ["real1": 10, "real2": 10, "real3": 10], "\(udp)")
            #expect(udp["replies_from"] as? [String] == ["\(vip):5353"], "\(udp)")
            #expect(udp["lost"] as? Int == 0)

            // adm list --stats: the kernel's counters per real server (connections, packets, bytes).
            #expect(wait(5) { (try? adm(["list", "--stats"]))?.contains("TCP  \(vip):80              \(n) ") == true })
            let stats = try adm(["list", "--stats"])
            #expect(stats.contains("InPkts"), Comment(rawValue: stats))
            let rrLine = stats.split(separator: "\n").first { $0.contains("\(vip):80 ") } ?? ""
            let fields = rrLine.split(separator: " ")
            #expect(fields.count > 4 && (Int(fields[3]) ?? 0) >= 5 * n, Comment(rawValue: String(rrLine)))
            print("kernel NAT stats:\n\(stats)")
        }
    }
}
