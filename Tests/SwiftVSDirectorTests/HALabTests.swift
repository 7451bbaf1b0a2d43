import Foundation
import Synchronization
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// High availability in the project's network-namespace lab (scripts/ha-lab.sh): two directors in front of two real
/// servers, LVS-NAT style, speaking VRRPv3 on raw sockets at 0.1 s adverts. Needs root (CI runs as root).
extension IntegrationTests {
    @Suite(
        "HA lab (network namespaces, root)", .serialized, .timeLimit(.minutes(4)),
        .enabled(if: getuid() == 0, "needs root for network namespaces and raw VRRP sockets"))
    struct HALabTests {
        static let vip = "10.201.0.100"

        static let namespaces = NamespaceLab(prefix: "svs-")

        @discardableResult
        static func lab(_ arguments: [String]) throws -> String { try namespaces.script(arguments) }

        /// A process inside a lab node; its PID is the program's own (`ip netns exec` execs).
        static func start(_ node: String, _ argv: [String]) throws -> ChildProcess { try namespaces.start(node, argv) }

        static func hasVIP(_ node: String) -> Bool {
            guard
                let child = try? ChildProcess(
                    "/usr/sbin/ip", ["-n", "svs-\(node)", "-br", "addr", "show", "dev", "eth0"])
            else {
                return false
            }
            defer { child.removeOutput() }
            child.wait(seconds: 5)
            return child.stdout.contains(vip + "/")
        }

        /// `swiftvs adm ha --json` on a lab director (its admin API on the node's loopback); empty on failure.
        static func haStatus(_ node: String) -> String {
            guard
                let status = try? start(node, [swiftvsBinary.path, "adm", "ha", "--json", "--admin", "127.0.0.1:9100"])
            else { return "" }
            defer { status.removeOutput() }
            status.wait(seconds: 5)
            return status.stdout
        }

        /// The lab's two real servers (`swiftvs realserver` on real1 and real2, port 8080, named after their node).
        static func realServers() throws -> [ChildProcess] {
            try (1...2).map {
                try start(
                    "real\($0)",
                    [swiftvsBinary.path, "realserver", "--listen", "10.201.1.1\($0):8080", "--name", "real\($0)"])
            }
        }

        /// One GET from the client to the VIP; the body, or nil.
        static func get() -> String? {
            guard let child = try? start("client", ["curl", "-s", "-m", "0.5", "http://\(vip)/"]) else { return nil }
            defer { child.removeOutput() }
            return child.wait(seconds: 5) == 0 && child.stdout.hasPrefix("real") ? child.stdout : nil
        }

        static func directorConfig(priority: Int, ha: Bool = true, sync: String? = nil) -> String {
            var yaml = """
                admin: \(sync == nil ? "off" : "127.0.0.1:9100")
                services:
                  - name: web
                    listen: \(vip):80
                    protocol: http
                    scheduler: rr
                    servers: [{address: "10.201.1.11:8080"}, {address: "10.201.1.12:8080"}]

                """
            if sync != nil { yaml += "    persistence: {timeout: 300}\n" }
            if ha {
                yaml += """
                    ha:
                      instances:
                        - {name: front, interface: eth0, vrid: 51, priority: \(priority), advert_interval: 100ms, virtual_ips: [\(vip)/24]}
                        - {name: back, interface: eth1, vrid: 52, priority: \(priority), advert_interval: 100ms, virtual_ips: [10.201.1.1/24]}

                    """
                if let sync { yaml += sync }
            }
            return yaml
        }

        static func director(_ node: String, priority: Int, ha: Bool = true, sync: String? = nil) throws -> ChildProcess
        {
            let path = NSTemporaryDirectory() + "swiftvs-halab-\(node)-\(priority)-\(ha).yaml"
            try directorConfig(priority: priority, ha: ha, sync: sync).write(
                toFile: path, atomically: true, encoding: .utf8)
            return try start(node, [swiftvsBinary.path, "director", "--config", path])
        }

        static func time(limit: Double, _ condition: () -> Bool) -> Double? {
            NamespaceLab.time(limit: limit, condition)
        }

        /// Samples where the VIP is, every 20 ms, until stopped; records any moment it was on both directors.
        final class Sampler: @unchecked Sendable {
            let both = Atomic<Int>(0)
            let samples = Atomic<Int>(0)
            let stopped = Atomic<Bool>(false)
            var thread: Thread?

            func start() {
                let thread = Thread {
                    while !self.stopped.load(ordering: .relaxed) {
                        do {
                            // lb1, lb2, lb1 again: the reads are a few ms apart, so "both" counts only if lb1 held
                            // the VIP on each side of the read of lb2.
                            let one = HALabTests.hasVIP("lb1")
                            let two = HALabTests.hasVIP("lb2")
                            let oneAgain = HALabTests.hasVIP("lb1")
                            self.samples.add(1, ordering: .relaxed)
                            if one && two && oneAgain { self.both.add(1, ordering: .relaxed) }
                        }
                        usleep(20_000)
                    }
                }
                thread.start()
                self.thread = thread
            }
        }

        @Test(
            "two SwiftVS directors: SIGTERM moves the VIP within 1 s, SIGKILL within 2 s, the restarted master preempts; never on both"
        )
        func failover() async throws {
            try await onThread { try Self.failoverBody() }
        }

        static func failoverBody() throws {
            try lab(["up"])
            defer { _ = try? lab(["down"]) }
            let reals = try realServers()
            defer {
                reals.forEach {
                    $0.stop(); $0.removeOutput()
                }
            }
            var lb1 = try director("lb1", priority: 150)
            let lb2 = try director("lb2", priority: 100)
            defer { lb2.stop(); lb2.removeOutput() }
            #expect(
                time(limit: 5) { hasVIP("lb1") && get() != nil } != nil, "lb1 (priority 150) holds the VIP and serves")
            #expect(!hasVIP("lb2"))
            let sampler = Sampler()
            sampler.start()
            defer { sampler.stopped.store(true, ordering: .relaxed) }

            // Graceful: lb1 resigns with priority 0, lb2 takes over after its skew time.
            kill(lb1.pid, SIGTERM)
            let term = time(limit: 3) { hasVIP("lb2") && !hasVIP("lb1") && get() != nil }
            #expect(term != nil && term! < 1, Comment(rawValue: "SIGTERM: lb2 answered after \(term ?? -1) s"))
            #expect(lb1.wait(seconds: 40) == 0)
            lb1.removeOutput()
            // The handover kept the VIP on lb1's loopback while it drained; it is gone once lb1 has exited.
            let loopback = try ChildProcess("/usr/sbin/ip", ["-n", "svs-lb1", "-br", "addr", "show", "dev", "lo"])
            loopback.wait(seconds: 5)
            #expect(!loopback.stdout.contains(vip), Comment(rawValue: loopback.stdout))
            loopback.removeOutput()

            // The restarted master (higher priority) preempts.
            lb1 = try director("lb1", priority: 150)
            let preempt = time(limit: 5) { hasVIP("lb1") && !hasVIP("lb2") && get() != nil }
            #expect(preempt != nil, "lb1 preempted after its restart")

            // Crash: lb2 takes over after Master_Down_Interval (0.3 s + skew). A killed process cannot drop its
            // addresses; as the lab's keepalived runs do, they are deleted at once, as a crashed host loses them.
            kill(lb1.pid, SIGKILL)
            lb1.wait(seconds: 5)
            for (address, device) in [("\(vip)/24", "eth0"), ("10.201.1.1/24", "eth1")] {
                let del = try ChildProcess("/usr/sbin/ip", ["-n", "svs-lb1", "addr", "del", address, "dev", device])
                del.wait(seconds: 5)
                del.removeOutput()
            }
            let crash = time(limit: 4) { hasVIP("lb2") && get() != nil }
            #expect(crash != nil && crash! < 2, Comment(rawValue: "SIGKILL: lb2 answered after \(crash ?? -1) s"))
            lb1.removeOutput()
            lb1 = try director("lb1", priority: 150)
            #expect(time(limit: 5) { hasVIP("lb1") && !hasVIP("lb2") } != nil, "the restarted lb1 preempted again")
            usleep(300_000)
            sampler.stopped.store(true, ordering: .relaxed)
            lb1.stop()
            lb1.removeOutput()
            #expect(sampler.samples.load(ordering: .relaxed) > 10, "the sampler watched the failovers")
            #expect(sampler.both.load(ordering: .relaxed) == 0, "the VIP was never on both directors")
            print(
                "HA lab: SIGTERM -> lb2 answering in \(term ?? -1) s; SIGKILL -> \(crash ?? -1) s; preempt \(preempt ?? -1) s"
            )
        }

        @Test(
            "a graceful failover under constant load loses under 1% of requests, and a sticky client keeps its real server (persistence sync)"
        )
        func failoverUnderLoad() async throws {
            try await onThread { try Self.loadBody() }
        }

        static func loadBody() throws {
            try lab(["up"])
            defer { _ = try? lab(["down"]) }
            let reals = try realServers()
            defer {
                reals.forEach {
                    $0.stop(); $0.removeOutput()
                }
            }
            let sync = { (me: Int, peer: Int) in
                "  sync: {listen: \"10.201.1.\(me):9700\", peers: [\"10.201.1.\(peer):9700\"]}\n"
            }
            let lb1 = try director("lb1", priority: 150, sync: sync(2, 3))
            defer { lb1.stop(); lb1.removeOutput() }
            let lb2 = try director("lb2", priority: 100, sync: sync(3, 2))
            defer { lb2.stop(); lb2.removeOutput() }
            #expect(time(limit: 5) { hasVIP("lb1") && get() != nil } != nil)
            // Another client first (real1's address, through the back VIP), so the client's rr pick is the second
            // server: without sync, lb2's first pick for it would be the first.
            let other = try start("real1", ["curl", "-s", "-m", "1", "http://\(vip)/"])
            other.wait(seconds: 5)
            let otherServer = other.stdout.split(separator: ":").first.map(String.init)
            other.removeOutput()
            let before = try #require(get()?.split(separator: ":").first.map(String.init))
            #expect(
                otherServer != nil && otherServer != before,
                "rr gave the client lb1's second pick, which is not what a fresh lb2 would pick first")
            // The template reaches lb2.
            let synced = time(limit: 3) {
                haStatus("lb2").range(of: "\"received\" *: *[1-9]", options: .regularExpression) != nil
            }
            #expect(synced != nil, "lb2 received the client's template")

            // Constant load from the client (open loop, one request per connection); SIGTERM lb1 two seconds in.
            let json = NSTemporaryDirectory() + "swiftvs-halab-bench.json"
            let bench = try start(
                "client",
                [
                    swiftvsBinary.path, "bench", "http", "http://\(vip)/", "--rate", "200", "--close",
                    "-d", "6s", "--timeout", "3s", "-t", "1", "--interval", "100ms", "--json", json, "--quiet",
                ])
            usleep(2_000_000)
            kill(lb1.pid, SIGTERM)
            #expect(bench.wait(seconds: 30) == 0, Comment(rawValue: bench.stderr))
            bench.removeOutput()
            let report =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
            let phase = (report?["phases"] as? [[String: Any]])?.first
            let loss = phase?["lossPercent"] as? Double ?? 100
            let counters = phase?["counters"] as? [String: Any]
            let failedBuckets = (phase?["timeline"] as? [[String: Any]] ?? []).filter {
                ($0["failed"] as? Int ?? 0) > 0
            }
            .map { "t=\($0["t"] ?? "") failed=\($0["failed"] ?? "")" }
            print("HA under load: buckets with failures: \(failedBuckets)")
            let lb2HasVIP = hasVIP("lb2")
            if loss >= 1 || !lb2HasVIP {
                // What the directors said, before the defers delete it: their VRRP transitions name the cause.
                print("HA under load: lb1 (\(lb1.isRunning ? "running" : "exited")) said:\n\(lb1.stderr.suffix(4000))")
                print("HA under load: lb2 (\(lb2.isRunning ? "running" : "exited")) said:\n\(lb2.stderr.suffix(4000))")
            }
            #expect(
                loss < 1,
                Comment(rawValue: "lost \(loss)% of \(counters?["attempted"] ?? 0): \(phase?["lossByCause"] ?? "")"))
            #expect(lb2HasVIP)
            // Same real server after the failover: lb2 adopted lb1's template.
            let after = get()?.split(separator: ":").first.map(String.init)
            // keepalived's second round of gratuitous ARPs, garp_master_delay (5 s) after lb2 became master.
            let secondRound = time(limit: 10) {
                haStatus("lb2").range(of: "\"garpRounds\" *: *[2-9]", options: .regularExpression) != nil
            }
            #expect(secondRound != nil, "lb2 sent its second round of gratuitous ARPs")
            #expect(after == before, Comment(rawValue: "before \(before), after \(after ?? "none")"))
            unlink(json)
            print(
                "HA under load: lost \(loss)% of \(counters?["attempted"] ?? 0); client on \(before) before and \(after ?? "-") after"
            )
        }

        @Test(
            "interop: SwiftVS and keepalived (vrrp_version 3) in one VRID take over from each other; keepalived does not complain"
        )
        func keepalivedInterop() async throws {
            try await onThread { try Self.interopBody() }
        }

        static func interopBody() throws {
            guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/keepalived") else {
                throw ClientError("keepalived is not installed (scripts/test.sh installs it)")
            }
            try lab(["up"])
            defer { _ = try? lab(["down"]) }
            let reals = try realServers()
            defer {
                reals.forEach {
                    $0.stop(); $0.removeOutput()
                }
            }
            // lb2: keepalived moves the VIPs; a SwiftVS director without `ha` serves on them (ip_nonlocal_bind).
            let base = NSTemporaryDirectory() + "swiftvs-halab-keepalived"
            try lab(["keepalived-conf", "lb2", "100"]).write(toFile: base + ".conf", atomically: true, encoding: .utf8)
            let keepalived = try start(
                "lb2",
                [
                    "/usr/sbin/keepalived", "-f", base + ".conf", "-n", "-l", "-D", "-P",
                    "-p", base + ".pid", "-r", base + "-vrrp.pid", "-i", "lb2",
                ])
            defer { keepalived.stop(seconds: 10); keepalived.removeOutput() }
            let server2 = try director("lb2", priority: 0, ha: false)
            defer { server2.stop(); server2.removeOutput() }

            // keepalived alone becomes master.
            #expect(time(limit: 5) { hasVIP("lb2") && get() != nil } != nil, "keepalived took the VIP")
            // SwiftVS (150) starts and takes over from keepalived (100).
            var lb1 = try director("lb1", priority: 150)
            let takeover = time(limit: 5) { hasVIP("lb1") && !hasVIP("lb2") && get() != nil }
            #expect(takeover != nil, "SwiftVS preempted keepalived")
            // SwiftVS resigns on SIGTERM: keepalived takes over after its skew time.
            kill(lb1.pid, SIGTERM)
            let back = time(limit: 3) { hasVIP("lb2") && !hasVIP("lb1") && get() != nil }
            #expect(back != nil && back! < 1, Comment(rawValue: "keepalived answered after \(back ?? -1) s"))
            lb1.wait(seconds: 40)
            lb1.removeOutput()
            // And once more the other way.
            lb1 = try director("lb1", priority: 150)
            #expect(time(limit: 5) { hasVIP("lb1") && !hasVIP("lb2") } != nil)
            lb1.stop()
            lb1.removeOutput()
            keepalived.stop(seconds: 10)
            let log = keepalived.stdout + keepalived.stderr
            #expect(
                log.contains("Entering MASTER STATE") && log.contains("Entering BACKUP STATE"),
                Comment(rawValue: String(log.suffix(3000))))
            #expect(log.contains("higher priority 150"), "keepalived read SwiftVS's adverts")
            for complaint in ["invalid", "bad ", "checksum", "ttl", "wrong", "error", "mismatch"] {
                #expect(
                    !log.lowercased().contains(complaint),
                    Comment(rawValue: "keepalived logged '\(complaint)':\n\(log.suffix(3000))"))
            }
            print(
                "HA interop: SwiftVS took over from keepalived in \(takeover ?? -1) s; keepalived from SwiftVS in \(back ?? -1) s"
            )
        }
    }
}
