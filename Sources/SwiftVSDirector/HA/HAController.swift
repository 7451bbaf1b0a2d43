import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SwiftVSCore
import SwiftVSSystem

#if canImport(Glibc)
import Glibc
#endif

/// What `GET /api/ha` and `swiftvs adm ha` show.
public struct HAStatus: Codable, Sendable, Equatable {
    public var transport: String
    public var instances: [HAInstanceStatus]
    public var trackers: [String]
    public var sync: SyncStatus?
}

public struct HAInstanceStatus: Codable, Sendable, Equatable {
    public var name: String
    public var vrid: Int
    public var interface: String?
    public var state: VRRPStateMachine.State
    public var priority: Int
    public var configuredPriority: Int
    public var advertIntervalMs: Int
    /// The address of the current master, as far as this director knows.
    public var master: String?
    public var virtualIPs: [String]
    public var lastTransition: String?
    public var lastTransitionReason: String?
    /// Seconds since the last transition.
    public var secondsInState: Double
    public var advertsSent: Int
    public var advertsReceived: Int
    public var badPackets: Int
    public var lastBadPacket: String?
    /// Rounds of gratuitous ARPs sent (two per takeover: at once and `garp_master_delay` later).
    public var garpRounds: Int
    /// Times adding a virtual IP failed (each retried every advert interval while master).
    public var addressFailures: Int
}

/// Runs the VRRP instances of one director on a thread of its own: a poll loop over the instances' sockets with the
/// state machines' deadlines as its timeout. Performs the machines' actions: adverts, virtual IPs and gratuitous ARP,
/// notify commands; keeps the instances of the sync group together; lowers the priority when tracked services or
/// scripts fail.
public final class HAController: Sendable {
    let config: HAConfig
    let logger: Logger
    let director: Director?
    private let statusBox = Mutex<HAStatus>(HAStatus(transport: "", instances: [], trackers: [], sync: nil))
    let persistenceSync: PersistenceSync?
    private let wake: (read: Int32, write: Int32)
    private let stopRequested = Atomic<Bool>(false)
    /// Addresses handed over on shutdown, still on the loopback until the director has drained.
    let handedOver = Mutex<[(VirtualIP, String, String?)]>([])
    private let finished = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let done = Atomic<Bool>(false)

    public init(config: HAConfig, director: Director?, logger: Logger) throws {
        self.config = config
        self.director = director
        self.logger = logger
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HAError.errno("pipe") }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        self.wake = (fds[0], fds[1])
        self.persistenceSync = director.flatMap { d in
            config.sync.map { PersistenceSync(config: $0, director: d, logger: logger) }
        }
    }

    public var status: HAStatus {
        var status = self.statusBox.withLock { $0 }
        status.sync = self.persistenceSync?.status
        return status
    }

    /// Opens the sockets (throwing a clear error if it may not) and starts the loop thread.
    public func start() throws {
        var instances: [Instance] = []
        do {
            for instance in self.config.instances {
                instances.append(try Instance(config: instance, transport: self.config.transport))
            }
        } catch {
            for instance in instances { instance.transport.close() }
            throw error
        }
        let loop = Loop(controller: self, instances: instances)
        let thread = Thread { loop.run() }
        thread.name = "swiftvs-vrrp"
        thread.start()
    }

    /// Resigns (priority 0 adverts, virtual IPs removed) and returns when the loop has stopped.
    public func stop() async {
        self.stopRequested.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(self.wake.write, &byte, 1)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resume = self.finished.withLock { box -> Bool in
                if self.done.load(ordering: .acquiring) { return true }
                box = continuation
                return false
            }
            if resume { continuation.resume() }
        }
    }

    /// Removes the handed-over addresses from the loopback; call after the director has drained.
    public func finishHandOver() {
        let items = self.handedOver.withLock { items in
            defer { items = [] }
            return items
        }
        // The interface's setting is restored once, with the value from before the first change.
        var restored: Set<String> = []
        for (vip, interface, previous) in items {
            let first = !restored.contains(interface)
            restored.insert(interface)
            VirtualAddresses.finishHandOver(vip, interface: interface, arpIgnore: first ? previous : nil)
        }
    }

    fileprivate func loopFinished() {
        let continuation = self.finished.withLock { box -> CheckedContinuation<Void, Never>? in
            self.done.store(true, ordering: .releasing)
            defer { box = nil }
            return box
        }
        continuation?.resume()
    }

    fileprivate var shouldStop: Bool { self.stopRequested.load(ordering: .acquiring) }
    fileprivate var wakeFD: Int32 { self.wake.read }
    fileprivate func publish(_ status: HAStatus) { self.statusBox.withLock { $0 = status } }

    /// Whether every virtual service of the director has a real server in rotation.
    fileprivate func servicesHealthy() -> Bool {
        guard let director = self.director else { return true }
        return director.services.allSatisfy { $0.status().healthyWeight > 0 }
    }
}

/// One VRRP instance: its configuration, state machine, socket and counters. Used only on the loop thread.
final class Instance {
    let config: VRRPInstanceConfig
    var machine: VRRPStateMachine
    let transport: VRRPTransport
    var sent = 0
    var received = 0
    var bad = 0
    var lastBad: String?
    var lastTransition: (at: UInt64, text: String, reason: String)?
    var lastBadLog: UInt64 = 0
    /// When the second round of gratuitous ARPs is due (`garp_master_delay` after becoming master).
    var secondGARP: UInt64?
    var garpRounds = 0
    /// A virtual IP could not be added on becoming master (`ip` failed): retried from the loop until it holds.
    var addressRetry: UInt64?
    /// Failed attempts to add this instance's virtual IPs (shown by `adm ha`).
    var addressFailures = 0

    init(config: VRRPInstanceConfig, transport kind: HAConfig.Transport) throws {
        self.config = config
        switch kind {
        case .raw:
            self.transport = try RawVRRPTransport(
                interface: config.interface ?? "",
                unicastPeers: config.unicastPeers.map(\.addressBytes))
        case .udp:
            guard let listen = config.udpListen else { throw HAError("\(config.name): udp.listen is missing") }
            self.transport = try UDPVRRPTransport(listen: listen, peers: config.udpPeers)
        }
        self.machine = VRRPStateMachine(
            vrid: UInt8(config.vrid), priority: UInt8(config.priority), advertInterval: config.advertCentiseconds,
            preempt: config.preempt, preemptDelay: UInt64(config.preemptDelay * 1e9),
            primaryAddress: self.transport.sourceAddress)
    }

    var advert: (UInt8) -> VRRPAdvert {
        { priority in
            VRRPAdvert(
                vrid: UInt8(self.config.vrid), priority: priority, maxAdvertInterval: self.config.advertCentiseconds,
                addresses: self.config.virtualIPs.map(\.address))
        }
    }
}

/// The loop thread's state.
private final class Loop: @unchecked Sendable {  // confined to its thread
    let controller: HAController
    let instances: [Instance]
    var trackers: [Tracker] = []
    var nextTrack: UInt64 = 0
    var children: [pid_t] = []
    var logger: Logger { self.controller.logger }

    init(controller: HAController, instances: [Instance]) {
        self.controller = controller
        self.instances = instances
        let config = controller.config
        if config.trackServices {
            self.trackers.append(
                Tracker(
                    name: "services", weight: config.trackServicesWeight, rise: 1, fall: 1,
                    interval: 0.5, timeout: 0, command: nil))
        }
        for script in config.trackScripts {
            self.trackers.append(
                Tracker(
                    name: script.command, weight: script.weight, rise: script.rise, fall: script.fall,
                    interval: script.interval, timeout: script.timeout, command: script.command))
        }
    }

    func run() {
        let now = Monotonic.nanoseconds()
        for (i, _) in self.instances.enumerated() { self.handle(i, .startup, now: now) }
        self.publish(now)
        while !self.controller.shouldStop {
            let now = Monotonic.nanoseconds()
            let timers = self.instances.compactMap(\.secondGARP) + self.instances.compactMap(\.addressRetry)
            let deadlines = self.instances.compactMap(\.machine.deadline) + timers + [self.nextTrack]
            let next = deadlines.min() ?? now + 100_000_000
            let timeoutMs = next > now ? Int32(min(1000, (next - now + 999_999) / 1_000_000)) : 0
            var fds = [pollfd(fd: self.controller.wakeFD, events: Int16(POLLIN), revents: 0)]
            fds += self.instances.map { pollfd(fd: $0.transport.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), timeoutMs)
            let after = Monotonic.nanoseconds()
            for (i, instance) in self.instances.enumerated() where fds[i + 1].revents & Int16(POLLIN) != 0 {
                while let result = instance.transport.receive() {
                    switch result {
                    case .success(let (advert, source)):
                        guard advert.vrid == instance.machine.vrid else { continue }
                        instance.received += 1
                        self.handle(i, .advert(advert, from: source), now: after)
                    case .failure(let error):
                        instance.bad += 1
                        instance.lastBad = error.description
                        if after - instance.lastBadLog > 10_000_000_000 {
                            instance.lastBadLog = after
                            self.logger.warning(
                                "bad VRRP packet",
                                metadata: [
                                    "instance": "\(instance.config.name)", "reason": "\(error)",
                                ])
                        }
                    }
                }
            }
            for (i, instance) in self.instances.enumerated() {
                if let deadline = instance.machine.deadline, deadline <= after { self.handle(i, .timer, now: after) }
                if let due = instance.secondGARP, due <= after {
                    instance.secondGARP = nil
                    if instance.machine.state == .master { self.announce(instance) }
                }
                if let due = instance.addressRetry, due <= after {
                    instance.addressRetry = nil
                    if instance.machine.state == .master { self.takeAddresses(instance) }
                }
            }
            if after >= self.nextTrack { self.track(after) }
            self.reapChildren()
            self.publish(after)
        }
        let end = Monotonic.nanoseconds()
        for (i, _) in self.instances.enumerated() { self.handle(i, .shutdown, now: end) }
        // A resigning master keeps its addresses until the backup's first advert (or its down interval).
        while self.instances.contains(where: { $0.machine.state == .resigning }) {
            let now = Monotonic.nanoseconds()
            let next = self.instances.compactMap(\.machine.deadline).min() ?? now
            var fds = self.instances.map { pollfd(fd: $0.transport.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), next > now ? Int32((next - now) / 1_000_000 + 1) : 0)
            let after = Monotonic.nanoseconds()
            for (i, instance) in self.instances.enumerated() where fds[i].revents & Int16(POLLIN) != 0 {
                while let result = instance.transport.receive() {
                    if case .success(let (advert, source)) = result, advert.vrid == instance.machine.vrid {
                        instance.received += 1
                        self.handle(i, .advert(advert, from: source), now: after)
                    }
                }
            }
            for (i, instance) in self.instances.enumerated() {
                if let deadline = instance.machine.deadline, deadline <= after { self.handle(i, .timer, now: after) }
            }
        }
        self.publish(Monotonic.nanoseconds())
        for instance in self.instances { instance.transport.close() }
        self.controller.loopFinished()
    }

    func handle(_ index: Int, _ event: VRRPStateMachine.Event, now: UInt64) {
        let instance = self.instances[index]
        let actions = instance.machine.handle(event, now: now)
        for action in actions {
            switch action {
            case .sendAdvert(let priority):
                do {
                    try instance.transport.send(instance.advert(priority))
                    instance.sent += 1
                } catch {
                    self.logger.warning(
                        "cannot send VRRP advert",
                        metadata: [
                            "instance": "\(instance.config.name)",
                            "error": "\(error)",
                        ])
                }
            case .takeAddresses:
                self.takeAddresses(instance)
            case .takeAddressesAfterHandover:
                // Our advert is on its way to the old master, which drops the addresses when it arrives (keepalived
                // within a few ms); one advert interval, at most 100 ms, covers it.
                usleep(useconds_t(min(100_000, Int(instance.config.advertCentiseconds) * 10_000)))
                self.takeAddresses(instance)
            case .releaseAddresses:
                self.releaseAddresses(instance)
            case .handOverAddresses:
                guard let interface = instance.config.interface else { break }
                for vip in instance.config.virtualIPs {
                    let previous = VirtualAddresses.handOver(vip, interface: interface)
                    self.controller.handedOver.withLock { $0.append((vip, interface, previous)) }
                }
            case .transition(let from, let to, let reason):
                instance.lastTransition = (now, "\(from.rawValue) -> \(to.rawValue)", reason)
                self.logger.notice(
                    "VRRP \(to.rawValue)",
                    metadata: [
                        "instance": "\(instance.config.name)", "vrid": "\(instance.config.vrid)",
                        "from": "\(from.rawValue)", "priority": "\(instance.machine.priority)", "reason": "\(reason)",
                    ])
                self.notify(instance, state: to)
                // The sync group: the other instances follow a move to MASTER or BACKUP.
                if to == .master || to == .backup {
                    for (j, _) in self.instances.enumerated()
                    where j != index
                        && self.instances[j].machine.state != to && self.instances[j].machine.state != .fault
                        && self.instances[j].machine.state != .initialize
                    {
                        self.handle(j, .group(to), now: now)
                    }
                }
            }
        }
    }

    func takeAddresses(_ instance: Instance) {
        guard let interface = instance.config.interface, !instance.config.virtualIPs.isEmpty else { return }
        var failed = false
        for vip in instance.config.virtualIPs where !VirtualAddresses.add(vip, interface: interface) {
            // A master without its address takes the traffic nowhere, and the backup sees a healthy master: try
            // again every advert interval until it holds, rather than once.
            failed = true
            instance.addressFailures += 1
            self.logger.error(
                "cannot add virtual IP; retrying every advert interval while master",
                metadata: ["vip": "\(vip)", "interface": "\(interface)", "failures": "\(instance.addressFailures)"])
        }
        instance.addressRetry =
            failed ? Monotonic.nanoseconds() &+ UInt64(instance.config.advertCentiseconds) * 10_000_000 : nil
        self.announce(instance)
        let delay = self.controller.config.garpMasterDelay
        instance.secondGARP = delay > 0 ? Monotonic.nanoseconds() &+ UInt64(delay * 1e9) : nil
    }

    /// Gratuitous ARPs for the instance's virtual IPs (`garp_repeat` each): on becoming master, and again
    /// `garp_master_delay` later.
    func announce(_ instance: Instance) {
        guard let interface = instance.config.interface else { return }
        instance.garpRounds += 1
        for vip in instance.config.virtualIPs {
            for _ in 0..<self.controller.config.garpRepeat {
                _ = VirtualAddresses.gratuitousARP(vip, interface: interface)
            }
        }
    }

    func releaseAddresses(_ instance: Instance) {
        instance.addressRetry = nil
        instance.secondGARP = nil
        guard let interface = instance.config.interface else { return }
        for vip in instance.config.virtualIPs { VirtualAddresses.remove(vip, interface: interface) }
    }

    /// keepalived's notify: `COMMAND INSTANCE NAME STATE PRIORITY`, not waited for.
    func notify(_ instance: Instance, state: VRRPStateMachine.State) {
        guard let command = self.controller.config.notify else { return }
        let line = "\(command) INSTANCE \(instance.config.name) \(state.rawValue) \(instance.machine.priority)"
        if let pid = Self.spawnShell(line) { self.children.append(pid) }
    }

    static func spawnShell(_ command: String) -> pid_t? { try? Spawn.start(["/bin/sh", "-c", command]) }

    func reapChildren() {
        self.children.removeAll { pid in
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) != 0
        }
    }

    // MARK: tracking

    func track(_ now: UInt64) {
        self.nextTrack = now + 100_000_000
        var changed = false
        for tracker in self.trackers {
            if let result = tracker.poll(now: now, servicesHealthy: { self.controller.servicesHealthy() }) {
                changed = changed || result
            }
        }
        guard changed || self.trackers.contains(where: { $0.justStarted }) else { return }
        for tracker in self.trackers { tracker.justStarted = false }
        let down = self.trackers.filter { !$0.up }
        let fault = down.contains { $0.weight == nil }
        let delta = down.compactMap(\.weight).reduce(0, +)
        for (i, instance) in self.instances.enumerated() {
            if fault != (instance.machine.state == .fault) {
                if fault {
                    self.logger.warning(
                        "VRRP fault: tracked check down",
                        metadata: [
                            "instance": "\(instance.config.name)", "down": "\(down.map(\.name))",
                        ])
                }
                self.handle(i, .fault(fault), now: now)
            }
            guard instance.config.priority < 255 else { continue }
            let effective = UInt8(max(1, min(254, instance.config.priority + delta)))
            if effective != instance.machine.priority { self.handle(i, .priority(effective), now: now) }
        }
    }

    func publish(_ now: UInt64) {
        let instances = self.instances.map { instance in
            HAInstanceStatus(
                name: instance.config.name, vrid: instance.config.vrid, interface: instance.config.interface,
                state: instance.machine.state, priority: Int(instance.machine.priority),
                configuredPriority: instance.config.priority,
                advertIntervalMs: Int(instance.config.advertCentiseconds) * 10,
                master: instance.machine.masterAddress.map(VRRPStateMachine.format),
                virtualIPs: instance.config.virtualIPs.map(\.description),
                lastTransition: instance.lastTransition?.text, lastTransitionReason: instance.lastTransition?.reason,
                secondsInState: instance.lastTransition.map { Double(now - $0.at) / 1e9 } ?? 0,
                advertsSent: instance.sent, advertsReceived: instance.received, badPackets: instance.bad,
                lastBadPacket: instance.lastBad, garpRounds: instance.garpRounds,
                addressFailures: instance.addressFailures)
        }
        let trackers = self.trackers.map { "\($0.name): \($0.up ? "up" : "down")" }
        self.controller.publish(
            HAStatus(
                transport: self.controller.config.transport.rawValue, instances: instances,
                trackers: trackers, sync: nil))
    }
}

/// A tracked check (the director's services, or a script): its rise/fall is a `HealthTracker`, as a real server's is.
private final class Tracker {
    let name: String
    let weight: Int?
    let interval: UInt64
    let timeout: UInt64
    let command: String?
    var health: HealthTracker
    var nextRun: UInt64 = 0
    var running: (pid: pid_t, started: UInt64)?
    var justStarted = true

    var up: Bool { self.health.state == .up }

    init(name: String, weight: Int?, rise: Int, fall: Int, interval: Double, timeout: Double, command: String?) {
        self.name = name
        self.weight = weight
        self.interval = UInt64(interval * 1e9)
        self.timeout = UInt64(timeout * 1e9)
        self.command = command
        self.health = HealthTracker(rise: rise, fall: fall, now: 0)
    }

    /// Advances the check; returns whether `up` changed (nil if no result yet).
    func poll(now: UInt64, servicesHealthy: () -> Bool) -> Bool? {
        guard let command = self.command else {
            guard now >= self.nextRun else { return nil }
            self.nextRun = now + self.interval
            return self.record(servicesHealthy() ? .passed("services healthy") : .failed("a service is down"), now: now)
        }
        if let (pid, started) = self.running {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                self.running = nil
                return self.record(status == 0 ? .passed("exit 0") : .failed(ExitStatus.describe(status)), now: now)
            }
            if now - started > self.timeout {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                self.running = nil
                return self.record(.failed("timed out"), now: now)
            }
            return nil
        }
        guard now >= self.nextRun else { return nil }
        self.nextRun = now + self.interval
        if let pid = Loop.spawnShell(command) {
            self.running = (pid, now)
        } else {
            return self.record(.failed("cannot start"), now: now)
        }
        return nil
    }

    func record(_ result: CheckResult, now: UInt64) -> Bool {
        self.health.record(result, now: Double(now) / 1e9) != nil
    }
}

/// Registered before the director in the service group, so it stops after the director has drained: then the
/// addresses handed over on shutdown leave the loopback.
public struct HAHandOverService: Service {
    let controller: HAController

    public init(controller: HAController) {
        self.controller = controller
    }

    public func run() async throws {
        try? await gracefulShutdown()
        self.controller.finishHandOver()
    }
}

/// Runs the HA controller as a service: VRRP starts with the director and resigns first on SIGTERM, so the peer
/// takes the virtual IPs within its skew time while this director drains.
public struct HAService: Service {
    let controller: HAController

    public init(controller: HAController) {
        self.controller = controller
    }

    public func run() async throws {
        do {
            try await self.controller.persistenceSync?.start()
            try self.controller.start()
        } catch let error as DirectorError {
            throw error
        } catch {
            throw DirectorError(code: .ha, message: "\(error)")
        }
        try? await gracefulShutdown()
        await self.controller.stop()
        await self.controller.persistenceSync?.stop()
    }
}
