import Dispatch
import Foundation
import Logging
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// The kernel path's driver (`forward: nat`): owns one nf_tables table, writes every change of the services' real
/// servers (health, `adm`, reload, autoscaler) into it as one transaction, reads its counters and conntrack's flows
/// back into the servers' counters every second, and removes the table on exit. The decisions are `NATPlan` and
/// `NATRuleset`'s; this runs `nft -j` on a thread of its own, off the event loops and the cooperative pool.
///
/// nftables is reached through its JSON API by the `nft` command, at run time: SwiftVS builds and runs without it,
/// and only a config with `forward: nat` needs it.
public final class KernelForwarding: Sendable {
    public let table: String
    let logger: Logger
    let nft: String

    struct State {
        var services: [VirtualService] = []
        var dirty = false
        var stopping = false
        var running = false
        /// The least-connection family's weights by service, recomputed every second.
        var weights: [String: [Int: Int]] = [:]
        /// Each service's connection total at the last tick, for the flows a second brings.
        var totals: [String: Int] = [:]
        /// Transactions applied, and the last failure (logged once until it changes).
        var applied = 0
        var lastError: String?
        var conntrackMissing = false
        /// Real servers (service name, address) whose flows get no reply through the director, as last warned.
        var noReply: Set<String> = []
    }

    let state = Mutex(State())
    let wake = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)

    init(table: String, nft: String, logger: Logger) {
        self.table = table
        self.nft = nft
        self.logger = logger
    }

    /// A forwarder for `services`' `forward: nat`, after checking what it needs (root, nft, nf_tables); the error
    /// names `key`.
    static func make(
        key: String, table: String = NATRuleset.defaultTable, logger: Logger
    ) throws(DirectorError)
        -> KernelForwarding
    {
        guard let nft = Self.locate("nft") else {
            throw DirectorError(
                code: .config,
                message: "\(key): nat programs the kernel through nftables, and nft is not installed "
                    + "(Debian: apt-get install nftables)")
        }
        let probe = Spawn.capture([nft, "-j", "list", "tables"], seconds: 10)
        guard probe.code == 0 else {
            let why = probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            let root =
                geteuid() != 0
                ? "it needs root (or CAP_NET_ADMIN: the systemd unit grants it)" : "nf_tables is not usable here"
            throw DirectorError(
                code: .config, message: "\(key): nat programs the kernel's nf_tables and \(root): \(why)")
        }
        return KernelForwarding(table: table, nft: nft, logger: logger)
    }

    static func locate(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Installs the table (replacing one a crashed run left) with `services`' rules, and starts following them.
    func start(_ services: [VirtualService]) throws(DirectorError) {
        self.follow(services)
        if let error = self.apply(replace: true) {
            throw DirectorError(code: .config, message: "forward: nat: the kernel refused the rules: \(error)")
        }
        self.state.withLock { $0.running = true }
        let thread = Thread { [self] in self.run() }
        thread.name = "swiftvs-kernel"
        thread.start()
        let names = services.filter { $0.config.forward == .nat }.map(\.name)
        self.logger.info(
            "kernel forwarding on",
            metadata: ["table": "ip \(self.table)", "services": "\(names.joined(separator: ", "))"])
    }

    /// The services whose changes reach the kernel (start, reload).
    func follow(_ services: [VirtualService]) {
        let nat = services.filter { $0.config.forward == .nat }
        for service in nat {
            service.natListener.withLock { $0 = { [weak self] in self?.changed() } }
        }
        self.state.withLock {
            $0.services = nat
            $0.dirty = true
        }
        self.wake.signal()
    }

    /// Something changed: the worker writes the table again.
    func changed() {
        self.state.withLock { $0.dirty = true }
        self.wake.signal()
    }

    /// Stops the worker and deletes the table; flows already translated carry on in conntrack.
    func stop() {
        let running = self.state.withLock { state -> Bool in
            state.stopping = true
            return state.running
        }
        if running {
            self.wake.signal()
            _ = self.finished.wait(timeout: .now() + 10)
        }
        let result = self.run(NATRuleset.deletion(table: self.table))
        if let result {
            self.logger.warning("kernel forwarding: could not remove the table", metadata: ["error": "\(result)"])
        } else {
            self.logger.info("kernel forwarding off", metadata: ["table": "ip \(self.table)"])
        }
    }

    /// Transactions applied so far (the stats page and tests).
    var applied: Int { self.state.withLock { $0.applied } }

    private func run() {
        var lastTick = Monotonic.seconds()
        while true {
            _ = self.wake.wait(timeout: .now() + .milliseconds(250))
            let (stopping, dirty) = self.state.withLock { state in
                defer { state.dirty = false }
                return (state.stopping, state.dirty)
            }
            if stopping { break }
            if dirty { _ = self.apply(replace: false) }
            let now = Monotonic.seconds()
            if now - lastTick >= 1 {
                lastTick = now
                self.tick()
            }
        }
        self.finished.signal()
    }

    /// Writes every followed service into the table, in one transaction; the error, or nil.
    private func apply(replace: Bool) -> String? {
        let (services, weights) = self.state.withLock { ($0.services, $0.weights) }
        let views = services.compactMap { service -> NATService? in
            guard var view = service.natService else { return nil }
            view.dynamicWeights = weights[service.name]
            return view
        }
        let error = self.run(NATRuleset.commands(views, table: self.table, replace: replace))
        let report = self.state.withLock { state -> Bool in
            if error == nil { state.applied += 1 }
            defer { state.lastError = error }
            return error != state.lastError
        }
        if report {
            if let error {
                self.logger.error("kernel forwarding: nft refused the rules", metadata: ["error": "\(error)"])
            } else if !replace {
                self.logger.notice("kernel forwarding: rules applied again after an error")
            }
        }
        return error
    }

    /// Runs one nft transaction; its error, or nil.
    private func run(_ commands: JSONValue) -> String? {
        let path = NSTemporaryDirectory() + "swiftvs-nft-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).json"
        do {
            try commands.text.write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            return "cannot write \(path): \(error)"
        }
        defer { unlink(path) }
        let result = Spawn.capture([self.nft, "-j", "-f", path], seconds: 30)
        guard result.code == 0 else {
            return "nft exited \(result.code): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
        return nil
    }

    /// Every second: the kernel's counters and conntrack's flows into the servers' counters, and the
    /// least-connection family's weights for the next second.
    private func tick() {
        let services = self.state.withLock { $0.services }
        guard !services.isEmpty else { return }
        let listing = Spawn.capture([self.nft, "-j", "list", "counters", "table", "ip", self.table], seconds: 10)
        let counters = listing.code == 0 ? KernelStats.counters(json: Data(listing.stdout)) : [:]
        var flows: [KernelStats.FlowKey: (active: Int, inactive: Int)] = [:]
        var unanswered: [KernelStats.FlowKey: (active: Int, inactive: Int)] = [:]
        if let conntrack = Self.locate("conntrack") {
            // Connections still waiting for the real server's SYN-ACK: a server that answers, but not through the
            // director, leaves them there.
            let waiting = Spawn.capture([conntrack, "-L", "-p", "tcp", "--state", "SYN_SENT"], seconds: 10)
            if waiting.code == 0 { unanswered = KernelStats.flows(conntrack: waiting.text) }
            // Established TCP flows only (and UDP's, if a udp service is forwarded): a full dump each second cost
            // ~50 µs of the director's CPU per new connection at 6000 connections/s, most of them in TIME_WAIT.
            var listings = [[conntrack, "-L", "-p", "tcp", "--state", "ESTABLISHED"]]
            if services.contains(where: { $0.config.proto == .udp }) {
                listings.append([conntrack, "-L", "-p", "udp"])
            }
            for argv in listings {
                let listed = Spawn.capture(argv, seconds: 10)
                if listed.code == 0 { flows.merge(KernelStats.flows(conntrack: listed.text)) { $1 } }
            }
        } else {
            let first = self.state.withLock { state -> Bool in
                defer { state.conntrackMissing = true }
                return !state.conntrackMissing
            }
            if first {
                self.logger.notice(
                    """
                    kernel forwarding: conntrack is not installed, so active/inactive flows are not counted and the \
                    least-connection schedulers keep their configured weights (Debian: apt-get install conntrack)
                    """)
            }
        }
        var changed = false
        for service in services {
            guard let view = service.natService else { continue }
            var counts: [Int: KernelCounts] = [:]
            for backend in view.backends {
                var count = KernelCounts()
                let name = { (what: String) in NATRuleset.counterName(service: view.name, id: backend.id, what) }
                count.connections = counters[name("new")]?.packets ?? 0
                count.packetsIn = counters[name("in")]?.packets ?? 0
                count.bytesIn = counters[name("in")]?.bytes ?? 0
                count.packetsOut = counters[name("out")]?.packets ?? 0
                count.bytesOut = counters[name("out")]?.bytes ?? 0
                let flow = flows[
                    KernelStats.FlowKey(virtual: view.listen.description, server: backend.endpoint.description)]
                count.active = flow?.active ?? 0
                count.inactive = flow?.inactive ?? 0
                counts[backend.id] = count
            }
            service.storeKernelCounts(counts)
            if !view.masquerade { self.checkRouteBack(view, counts: counts, unanswered: unanswered) }
            guard Self.leastConnection.contains(view.scheduler), !flows.isEmpty || !counts.isEmpty else { continue }
            let total = counts.values.reduce(0) { $0 + $1.connections }
            let weights = self.state.withLock { state -> [Int: Int]? in
                let expected = max(0, total - (state.totals[view.name] ?? total))
                state.totals[view.name] = total
                let new = NATPlan.leastConnectionWeights(
                    view.backends, active: counts.mapValues(\.active), expected: expected, scheduler: view.scheduler)
                guard Self.differ(new, state.weights[view.name]) else { return nil }
                state.weights[view.name] = new
                return new
            }
            if weights != nil { changed = true }
        }
        if changed { _ = self.apply(replace: false) }
    }

    /// The kernel path needs the real servers to route their replies back through the director. One that does
    /// not leaves the connections sent to it waiting for an answer (SYN_SENT in conntrack) and never has one
    /// established: say so, once, naming the service's key that fixes it.
    private func checkRouteBack(
        _ view: NATService, counts: [Int: KernelCounts], unanswered: [KernelStats.FlowKey: (active: Int, inactive: Int)]
    ) {
        for backend in view.backends {
            let key = "\(view.name) \(backend.endpoint)"
            let waiting =
                unanswered[KernelStats.FlowKey(virtual: view.listen.description, server: backend.endpoint.description)]?
                .inactive ?? 0
            let stuck = waiting >= 3 && (counts[backend.id]?.active ?? 0) == 0
            let warn = self.state.withLock { state -> Bool? in
                if stuck { return state.noReply.insert(key).inserted ? true : nil }
                return state.noReply.remove(key) != nil ? false : nil
            }
            guard let warn else { continue }
            if warn {
                self.logger.error(
                    """
                    kernel forwarding: service \(view.name) (forward: nat): real server \(backend.endpoint) gets \
                    connections but none is answered through the director (\(waiting) waiting for its reply): it must \
                    route back through the director (its default gateway), or set masquerade: true on service \(view.name)
                    """,
                    metadata: ["service": "\(view.name)", "server": "\(backend.endpoint)"])
            } else {
                self.logger.notice(
                    "kernel forwarding: real server answers through the director again",
                    metadata: ["service": "\(view.name)", "server": "\(backend.endpoint)"])
            }
        }
    }

    static let leastConnection: Set<SchedulerKind> = [.lc, .wlc, .sed, .nq, .twos, .lblc, .lblcr]

    /// Whether new weights move any server's share by more than 2 points (smaller moves are not worth a write).
    static func differ(_ new: [Int: Int], _ old: [Int: Int]?) -> Bool {
        guard let old, Set(old.keys) == Set(new.keys) else { return true }
        let newSum = Double(new.values.reduce(0, +))
        let oldSum = Double(old.values.reduce(0, +))
        guard newSum > 0, oldSum > 0 else { return newSum != oldSum }
        return new.contains { abs(Double($0.value) / newSum - Double(old[$0.key]!) / oldSum) > 0.02 }
    }
}
