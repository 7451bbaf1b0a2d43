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
        static let client = repositoryRoot.appendingPathComponent("Tests/kernel/nat_client.py").path
        static let udpEcho = repositoryRoot.appendingPathComponent("Tests/kernel/udp_echo.py").path
        static let prefix = "svk-"
        static let vip = "10.201.0.100"

        static let namespaces = NamespaceLab(prefix: prefix)

        @discardableResult
        static func lab(_ arguments: [String]) throws -> String { try namespaces.script(arguments) }

        static func start(_ node: String, _ argv: [String]) throws -> ChildProcess { try namespaces.start(node, argv) }

        static func run(_ node: String, _ argv: [String], seconds: Double = 30) throws -> (code: Int32, out: String) {
            try namespaces.run(node, argv, seconds: seconds)
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

        /// Brings the lab up with the three real servers (and the virtual addresses on lb1 with `vips`), runs
        /// `body`, and takes it all down again.
        static func inLab(vips: Bool, _ body: ([ChildProcess]) throws -> Void) throws {
            try lab(["up"])
            defer { _ = try? lab(["down"]) }
            let reals = try realServers()
            defer {
                reals.forEach {
                    $0.stop()
                    $0.removeOutput()
                }
            }
            if vips { try holdVIPs() }
            try body(reals)
        }

        static func writeConfig(_ yaml: String, _ name: String) throws -> String {
            let path = NSTemporaryDirectory() + "swiftvs-kernelnat-\(name).yaml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        static func director(_ path: String, node: String = "lb1") throws -> ChildProcess {
            try start(node, [swiftvsBinary.path, "director", "--config", path])
        }

        /// A director in lb1 from `yaml`, once its rules are in the kernel (the services chain shows `ready`);
        /// throws with what it said if they do not appear within 10 s.
        static func startDirector(_ yaml: String, _ name: String, ready: String) throws -> ChildProcess {
            let director = try director(try writeConfig(yaml, name))
            guard wait(10, { ruleset().contains(ready) }) else {
                director.stop()
                defer { director.removeOutput() }
                throw ClientError("no rules with '\(ready)' after 10 s: \(director.stderr)")
            }
            return director
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

        static func wait(_ limit: Double, _ condition: () -> Bool) -> Bool {
            NamespaceLab.time(limit: limit, condition) != nil
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
                        if !listing.contains("dport \(self.port) dnat ") { self.empty.add(1, ordering: .relaxed) }
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
            try inLab(vips: true) { _ in
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
                      - {name: fullnat, listen: "\(vip):86", protocol: tcp, forward: nat, scheduler: rr, masquerade: true, \(servers)}
                      - {name: lc, listen: "\(vip):87", protocol: tcp, forward: nat, scheduler: lc, \(servers)}
                      - {name: fo, listen: "\(vip):88", protocol: tcp, forward: nat, scheduler: fo, \(servers)}
                      - {name: dh, listen: "\(vip):89", protocol: tcp, forward: nat, scheduler: dh, \(servers)}
                      - name: dns
                        listen: "\(vip):5353"
                        protocol: udp
                        forward: nat
                        scheduler: rr
                        servers: [{address: "10.201.1.11:9053"}, {address: "10.201.1.12:9053"}, {address: "10.201.1.13:9053"}]

                    """
                let director = try startDirector(yaml, "schedulers", ready: "dport 5353")
                defer { director.stop(); director.removeOutput() }

                // rr: exact thirds; wrr 3:2:1 exact; sh and mh with the port flag (one client address): hashed,
                // within 15 %; wlc (weights recomputed from conntrack every second) near 3:2:1, within 25 %.
                let n = 3000
                let expected: [(Int, String, [Double], Double)] = [
                    (80, "rr", [1000, 1000, 1000], 0),
                    (81, "wrr", [1500, 1000, 500], 0),
                    (82, "sh", [1500, 1000, 500], 0.15),
                    (83, "mh", [1500, 1000, 500], 0.15),
                    (84, "wlc", [1500, 1000, 500], 0.25),
                    (87, "lc", [1000, 1000, 1000], 0.25),
                    (88, "fo", [3000, 0, 0], 0),
                ]
                for (port, name, shares, tolerance) in expected {
                    let result = try client(["tcp", vip, "\(port)", "\(n)", "60"])
                    let counts = Self.counts(result)
                    #expect(result["failed"] as? Int == 0, "\(name): \(result["failed"] ?? "")")
                    for (index, share) in shares.enumerated() {
                        let got = counts["real\(index + 1)"] ?? 0
                        #expect(
                            within(got, share, tolerance),
                            "\(name): real\(index + 1) got \(got) of \(n), expected \(share)"
                        )
                    }
                    // The real servers see the client's own address: nothing between rewrote the source.
                    #expect(result["clients"] as? [String] == ["10.201.0.10"], "\(name): \(result["clients"] ?? "")")
                    print("kernel NAT \(name): \(counts.sorted { $0.key < $1.key })")
                }

                // Persistence: one client keeps its real server; another client (lb2's address) is placed anew.
                let sticky = Self.counts(try client(["tcp", vip, "85", "50"]))
                #expect(sticky.count == 1 && sticky.values.first == 50, "\(sticky)")

                // dh hashes the destination: on a NAT service that is the virtual address, so one server takes all.
                let dh = Self.counts(try client(["tcp", vip, "89", "300"]))
                #expect(dh.count == 1 && dh.values.first == 300, "\(dh)")

                // Full NAT (masquerade): the real servers see the director's back address instead.
                let fullNAT = try client(["tcp", vip, "86", "30"])
                #expect(fullNAT["clients"] as? [String] == ["10.201.1.2"], "\(fullNAT["clients"] ?? "")")
                #expect(Self.counts(fullNAT) == ["real1": 10, "real2": 10, "real3": 10])

                // UDP: flows spread; every reply comes from the virtual address.
                let udp = try client(["udp", vip, "5353", "30"])
                #expect(Self.counts(udp) == ["real1": 10, "real2": 10, "real3": 10], "\(udp)")
                #expect(udp["replies_from"] as? [String] == ["\(vip):5353"], "\(udp)")
                #expect(udp["lost"] as? Int == 0)

                // adm list --stats: the kernel's counters per real server (connections, packets, bytes).
                #expect(
                    wait(5) { (try? adm(["list", "--stats"]))?.contains("TCP  \(vip):80              \(n) ") == true })
                let stats = try adm(["list", "--stats"])
                #expect(stats.contains("InPkts"), Comment(rawValue: stats))
                let rrLine = stats.split(separator: "\n").first { $0.contains("\(vip):80 ") } ?? ""
                let fields = rrLine.split(separator: " ")
                #expect(fields.count > 4 && (Int(fields[3]) ?? 0) >= 5 * n, Comment(rawValue: String(rrLine)))
                print("kernel NAT stats:\n\(stats)")
            }
        }

        static let threeServers = """
            servers: [{address: "10.201.1.11:8080"}, {address: "10.201.1.12:8080"}, {address: "10.201.1.13:8080"}]
            """

        @Test(
            "a real server killed under load: after its check fails no new connection goes to it, open ones to the others carry on, the map is never empty; weight 0 drains"
        )
        func failureAndDrain() async throws {
            try await onThread { try Self.failureBody() }
        }

        static func failureBody() throws {
            try inLab(vips: true) { reals in
                let yaml = """
                    admin: 127.0.0.1:9100
                    services:
                      - name: web
                        listen: "\(vip):80"
                        protocol: tcp
                        forward: nat
                        scheduler: rr
                        health: {check: tcp, interval: 100ms, timeout: 100ms, rise: 2, fall: 1}
                        \(threeServers)

                    """
                let director = try startDirector(yaml, "failure", ready: "mod 3")
                defer { director.stop(); director.removeOutput() }
                let sampler = RulesetSampler(port: 80)
                sampler.start()

                // Long-lived connections on every server, a request on each every 100 ms, for 8 s.
                let held = try start("client", ["python3", client, "hold", vip, "80", "9", "8"])
                defer { held.removeOutput() }
                #expect(wait(5) { held.stdout.contains("\"open\"") }, Comment(rawValue: held.stderr))
                // New connections all along (bounded: 20 000 or 7 s).
                let load = try start("client", ["python3", client, "tcp", vip, "80", "20000", "7"])
                defer { load.removeOutput() }
                usleep(1_000_000)
                // real2 dies (its HTTP server; its UDP echo is another process).
                reals[2].stop()
                #expect(wait(5) { !ruleset().contains("10.201.1.12") }, "the map lost real2 after its check failed")
                print("kernel NAT failure: real2 out of the map \(Date())")
                let afterDown = try client(["tcp", vip, "80", "300"])
                #expect(counts(afterDown)["real2"] == nil && afterDown["failed"] as? Int == 0, "\(counts(afterDown))")
                // Weight 0 on real1: out of the map for new flows; its open connections go on.
                // Through the admin socket (the TCP port is read-only without a token).
                let weight = try run("lb1", [swiftvsBinary.path, "adm", "weight", "web", "10.201.1.11:8080", "0"])
                #expect(weight.code == 0, Comment(rawValue: weight.out))
                #expect(wait(5) { !ruleset().contains("10.201.1.11") })
                let afterWeight = try client(["tcp", vip, "80", "300"])
                #expect(counts(afterWeight) == ["real3": 300], "\(counts(afterWeight))")

                #expect(load.wait(seconds: 30) == 0)
                #expect(held.wait(seconds: 30) == 0, Comment(rawValue: held.stderr))
                sampler.stop()
                let result =
                    try JSONSerialization.jsonObject(
                        with: Data(held.stdout.split(separator: "\n").last.map { Data($0.utf8) } ?? Data()))
                    as? [String: Any]
                let byServer = result?["by_server"] as? [String: [String: Int]] ?? [:]
                // The connections to real1 (weight 0) and real3 all kept their server; real2's broke with it.
                #expect(byServer["real1"]?["ok"] == 3 && byServer["real3"]?["ok"] == 3, "\(byServer)")
                #expect(byServer["real2"]?["broken"] == 3, "\(byServer)")
                #expect(sampler.samples.load(ordering: .relaxed) > 20)
                #expect(sampler.empty.load(ordering: .relaxed) == 0, "a listing showed no translation")
                let loadResult =
                    (try? JSONSerialization.jsonObject(
                        with: Data((load.stdout.split(separator: "\n").last ?? "").utf8))) as? [String: Any]
                print(
                    "kernel NAT failure: load \(counts(loadResult ?? [:])) failed \(loadResult?["failed"] ?? "-"); held \(byServer); "
                        + "ruleset read \(sampler.samples.load(ordering: .relaxed)) times, \(sampler.empty.load(ordering: .relaxed)) without the translation"
                )
            }
        }

        @Test(
            "a crash leaves the table, the restart replaces it; a reload of schedulers and weights applies at once; exit removes the table"
        )
        func lifecycle() async throws {
            try await onThread { try Self.lifecycleBody() }
        }

        static func lifecycleBody() throws {
            try inLab(vips: true) { _ in
                let config = { (scheduler: String, weights: [Int]) in
                    """
                    admin: 127.0.0.1:9100
                    services:
                      - name: web
                        listen: "\(vip):80"
                        protocol: tcp
                        forward: nat
                        scheduler: \(scheduler)
                        servers: [\(weights.enumerated().map { "{address: \"10.201.1.1\($0.offset + 1):8080\", weight: \($0.element)}" }.joined(separator: ", "))]

                    """
                }
                let path = try writeConfig(config("rr", [1, 1, 1]), "lifecycle")
                var director = try Self.director(path)
                try #require(wait(10) { ruleset().contains("mod 3") }, Comment(rawValue: director.stderr))
                _ = try client(["tcp", vip, "80", "30"])
                // A crash cannot remove the table: it stays, and keeps forwarding.
                kill(director.pid, SIGKILL)
                director.wait(seconds: 5)
                director.removeOutput()
                #expect(tableExists())
                #expect(counts(try client(["tcp", vip, "80", "3"])).count == 3)
                // The restart replaces it: one table, the counters from zero.
                director = try Self.director(path)
                defer { director.stop(); director.removeOutput() }
                #expect(
                    wait(10) { (try? adm(["list", "--stats"]))?.contains("TCP  \(vip):80              0 ") == true })
                let tables = try run("lb1", ["nft", "list", "tables"]).out
                #expect(tables.components(separatedBy: "swiftvs").count == 2, Comment(rawValue: tables))

                // Reload to wrr 2:1:1 while the ruleset is read: applied in one step, never empty.
                let sampler = RulesetSampler(port: 80)
                sampler.start()
                try config("wrr", [2, 1, 1]).write(toFile: path, atomically: true, encoding: .utf8)
                kill(director.pid, SIGHUP)
                #expect(wait(10) { ruleset().contains("mod 4") })
                let after = counts(try client(["tcp", vip, "80", "400"]))
                #expect(after == ["real1": 200, "real2": 100, "real3": 100], "\(after)")
                sampler.stop()
                #expect(sampler.empty.load(ordering: .relaxed) == 0)

                // SIGTERM: the table goes with the director.
                #expect(director.stop() == 0)
                #expect(!tableExists())
                print(
                    "kernel NAT lifecycle: reload read \(sampler.samples.load(ordering: .relaxed)) times, never empty")
            }
        }

        /// conntrackd's config for one director of the lab: FTFW over UDP on the back link, states written straight
        /// into the peer's kernel table (no external cache, so a new master needs no commit).
        static func conntrackdConfig(me: Int, peer: Int, directory: String) -> String {
            """
            Sync {
                Mode FTFW {
                    DisableExternalCache on
                }
                UDP {
                    IPv4_address 10.201.1.\(me)
                    IPv4_Destination_Address 10.201.1.\(peer)
                    Port 3780
                    Interface eth1
                    Checksum on
                }
            }
            General {
                HashSize 32768
                HashLimit 131072
                LogFile \(directory)/conntrackd-\(me).log
                LockFile \(directory)/conntrackd-\(me).lock
                UNIX {
                    Path \(directory)/conntrackd-\(me).ctl
                }
                NetlinkBufferSize 2097152
                NetlinkBufferSizeMaxGrowth 8388608
                Filter From Userspace {
                    Protocol Accept {
                        TCP
                        UDP
                    }
                    Address Ignore {
                        IPv4_address 127.0.0.1
                        IPv4_address 10.201.0.2
                        IPv4_address 10.201.0.3
                        IPv4_address 10.201.1.2
                        IPv4_address 10.201.1.3
                    }
                }
            }

            """
        }

        @Test(
            "HA: the virtual addresses move to the backup under long-lived connections; with sh they all keep their real server; rr's survivors are counted, without and with conntrackd",
            arguments: [false, true])
        func failover(conntrackd: Bool) async throws {
            try await onThread { try Self.failoverBody(conntrackd: conntrackd) }
        }

        static func failoverBody(conntrackd: Bool) throws {
            if conntrackd && !FileManager.default.isExecutableFile(atPath: "/usr/sbin/conntrackd") {
                throw ClientError("conntrackd is not installed (scripts/test.sh installs it)")
            }
            try inLab(vips: false) { _ in
                let config = { (priority: Int) in
                    """
                    admin: off
                    services:
                      - {name: hashed, listen: "\(vip):80", protocol: tcp, forward: nat, scheduler: sh, scheduler_flags: [port], \(threeServers)}
                      - {name: counted, listen: "\(vip):81", protocol: tcp, forward: nat, scheduler: rr, \(threeServers)}
                    ha:
                      instances:
                        - {name: front, interface: eth0, vrid: 51, priority: \(priority), advert_interval: 100ms, virtual_ips: [\(vip)/24]}
                        - {name: back, interface: eth1, vrid: 52, priority: \(priority), advert_interval: 100ms, virtual_ips: [10.201.1.1/24]}

                    """
                }
                // A flow the new master picks up mid-stream is tracked from its next packet; TCP window tracking would
                // call those packets invalid without be_liberal (docs/kernel-nat.md).
                for node in ["lb1", "lb2"] {
                    _ = try run(node, ["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1"])
                }
                var syncs: [ChildProcess] = []
                defer {
                    syncs.forEach {
                        $0.stop(); $0.removeOutput()
                    }
                }
                if conntrackd {
                    let directory = try temporaryDirectory("conntrackd")
                    for (me, peer, node) in [(2, 3, "lb1"), (3, 2, "lb2")] {
                        let path = "\(directory)/conntrackd-\(me).conf"
                        try conntrackdConfig(me: me, peer: peer, directory: directory).write(
                            toFile: path, atomically: true, encoding: .utf8)
                        syncs.append(try start(node, ["/usr/sbin/conntrackd", "-C", path]))
                    }
                }
                let lb1 = try director(try writeConfig(config(150), "ha-lb1"), node: "lb1")
                defer { lb1.stop(); lb1.removeOutput() }
                let lb2 = try director(try writeConfig(config(100), "ha-lb2"), node: "lb2")
                defer { lb2.stop(); lb2.removeOutput() }
                let hasVIP = { (node: String) in
                    ((try? run(node, ["ip", "-br", "addr", "show", "dev", "eth0"], seconds: 5))?.out ?? "").contains(
                        vip + "/")
                }
                try #require(
                    wait(10) {
                        hasVIP("lb1") && ruleset("lb1").contains("dport 81") && ruleset("lb2").contains("dport 81")
                    },
                    Comment(rawValue: lb1.stderr + lb2.stderr))
                // One connection to the rr service first: lb1's numgen counter is then one ahead of lb2's, as it is
                // with any traffic before a failover (equal counters would keep rr's flows by luck).
                // (Until 20 in a row get through: for a second or two after the election, connections were seen to
                // time out; docs/kernel-nat.md notes it.)
                #expect(wait(15) { (try? client(["tcp", vip, "81", "20", "3"]))?["failed"] as? Int == 0 })
                // Long-lived connections on both services, a request on each every 100 ms for 6 s; lb1 resigns at ~1 s.
                let hashed = try start("client", ["python3", client, "hold", vip, "80", "12", "6"])
                defer { hashed.removeOutput() }
                let counted = try start("client", ["python3", client, "hold", vip, "81", "12", "6"])
                defer { counted.removeOutput() }
                #expect(wait(5) { hashed.stdout.contains("\"open\"") && counted.stdout.contains("\"open\"") })
                usleep(1_000_000)
                kill(lb1.pid, SIGTERM)
                #expect(wait(3) { hasVIP("lb2") && !hasVIP("lb1") }, "lb2 took the virtual addresses")
                #expect(hashed.wait(seconds: 30) == 0, Comment(rawValue: hashed.stderr))
                #expect(counted.wait(seconds: 30) == 0, Comment(rawValue: counted.stderr))
                let result = { (child: ChildProcess) -> [String: Any] in
                    (try? JSONSerialization.jsonObject(
                        with: Data((child.stdout.split(separator: "\n").last ?? "").utf8)))
                        as? [String: Any] ?? [:]
                }
                let sh = result(hashed)
                let rr = result(counted)
                #expect(sh["kept"] as? Int == 12, "sh: \(sh)")
                if conntrackd {
                    // The flows' states reached lb2's table before the failover: rr's flows keep their server too.
                    #expect(rr["kept"] as? Int == 12, "rr with conntrackd: \(rr)")
                }
                print(
                    "kernel NAT HA failover \(conntrackd ? "with" : "without") conntrackd: sh kept \(sh["kept"] ?? "-")/12 (moved \(sh["moved"] ?? "-"), "
                        + "broken \(sh["broken"] ?? "-")); rr kept \(rr["kept"] ?? "-")/12 (moved \(rr["moved"] ?? "-"), "
                        + "broken \(rr["broken"] ?? "-"))")
            }
        }

        @Test(
            "wlc in the kernel: after real1 gathered 30 long-lived connections, the next 30 go to the others (the weights follow conntrack's counts)"
        )
        func leastConnection() async throws {
            try await onThread { try Self.leastConnectionBody() }
        }

        static func leastConnectionBody() throws {
            try inLab(vips: true) { _ in
                let yaml = """
                    admin: 127.0.0.1:9100
                    services:
                      - {name: web, listen: "\(vip):80", protocol: tcp, forward: nat, scheduler: wlc, \(threeServers)}

                    """
                let director = try startDirector(yaml, "wlc", ready: "dport 80")
                defer { director.stop(); director.removeOutput() }
                let setWeight = { (server: String, weight: Int) throws in
                    let result = try run("lb1", [swiftvsBinary.path, "adm", "weight", "web", server, "\(weight)"])
                    #expect(result.code == 0, Comment(rawValue: result.out))
                }
                // real2 and real3 at weight 0 while 30 long-lived connections open: all on real1.
                try setWeight("10.201.1.12:8080", 0)
                try setWeight("10.201.1.13:8080", 0)
                #expect(wait(5) { !ruleset().contains("10.201.1.12") && !ruleset().contains("10.201.1.13") })
                let first = try start("client", ["python3", client, "hold", vip, "80", "30", "12"])
                defer { first.stop(); first.removeOutput() }
                #expect(wait(10) { first.stdout.contains("\"open\"") }, Comment(rawValue: first.stderr))
                try setWeight("10.201.1.12:8080", 1)
                try setWeight("10.201.1.13:8080", 1)
                // The next second's weights see real1's 30 open flows: it gets (almost) none of the next ones.
                #expect(
                    wait(5) {
                        let list = (try? adm(["list"])) ?? ""
                        return list.split(separator: "\n").contains {
                            $0.contains("10.201.1.11:8080") && $0.contains(" 30 ")
                        }
                    }, "adm list shows real1's 30 active flows")
                usleep(1_500_000)
                let second = try client(["hold", vip, "80", "30", "0.2"])
                let placed = second["first"] as? [String: Int] ?? [:]
                // Exact wlc would give real1 none (30 open against 0 and 0: the others fill to 20 first) and 15 each to
                // the others; the kernel's weights give real1 a sliver.
                #expect((placed["real1"] ?? 0) <= 3, "\(placed)")
                #expect(abs((placed["real2"] ?? 0) - (placed["real3"] ?? 0)) <= 6, "\(placed)")
                print(
                    "kernel NAT wlc: after 30 open on real1, the next 30 went \(placed.sorted { $0.key < $1.key }) (exact wlc: 0/15/15)"
                )
            }
        }

        @Test("without root, forward: nat is refused at start with the key named and nft's own words")
        func refusedWithoutRoot() throws {
            let path = try Self.writeConfig(
                """
                admin: off
                services:
                  - {name: web, listen: "10.201.0.100:80", protocol: tcp, forward: nat, servers: ["10.201.1.11:8080"]}

                """, "noroot")
            let run = try tool(
                "setpriv",
                ["--reuid=65534", "--regid=65534", "--clear-groups", swiftvsBinary.path, "director", "--config", path],
                seconds: 30)
            #expect(run.code != 0)
            #expect(
                run.err.contains("services[0].forward: nat programs the kernel's nf_tables and it needs root"),
                Comment(rawValue: run.err))
        }

        @Test("a real server that does not route back through the director is named, with the key that fixes it")
        func routeBack() async throws {
            try await onThread { try Self.routeBackBody() }
        }

        static func routeBackBody() throws {
            try inLab(vips: true) { _ in
                // real3 has no way back to the client but its own: no default route.
                _ = try run("real3", ["ip", "route", "del", "default"])
                let yaml = """
                    admin: off
                    services:
                      - {name: web, listen: "\(vip):80", protocol: tcp, forward: nat, scheduler: rr, \(threeServers)}

                    """
                let director = try startDirector(yaml, "routeback", ready: "dport 80")
                defer { director.stop(); director.removeOutput() }
                let result = try client(["tcp", vip, "80", "12", "20"])
                #expect(counts(result) == ["real1": 4, "real2": 4], "\(result)")
                #expect(
                    wait(5) {
                        director.stderr.contains("real server 10.201.1.13:8080 gets connections but none is answered")
                            && director.stderr.contains("or set masquerade: true on service web")
                    }, Comment(rawValue: director.stderr))
            }
        }
    }
}
