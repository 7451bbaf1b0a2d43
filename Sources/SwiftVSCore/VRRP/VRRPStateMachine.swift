/// One VRRP router's instance (RFC 5798 §6), as a pure state machine: it is given events with the time (monotonic
/// nanoseconds, from the driver) and returns actions for the driver to perform. No sockets, clocks or timers.
///
/// Timers follow the RFC with centisecond intervals: Skew_Time = (256 − Priority) × Master_Adver_Interval / 256,
/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time. Preemption and keepalived's `preempt_delay`
/// (no preemption until that long after start-up); priority 255 is the address owner, and a master that shuts down
/// sends priority 0 so that a backup takes over after its skew time rather than the whole down interval.
public struct VRRPStateMachine: Sendable {
    public enum State: String, Sendable, Codable {
        case initialize = "INIT"
        case backup = "BACKUP"
        case master = "MASTER"
        /// Not from the RFC: keepalived's FAULT, for an instance whose interface or tracked services are down. It
        /// sends nothing, holds no addresses, and returns to BACKUP when the fault clears.
        case fault = "FAULT"
        /// Not from the RFC: a master shutting down that has sent priority 0 and keeps the addresses until the
        /// backup announces itself (at most Master_Down_Interval), so no client finds them on neither director.
        case resigning = "RESIGNING"
    }

    public enum Event: Sendable, Equatable {
        case startup
        case shutdown
        /// The deadline the machine asked for has passed.
        case timer
        case advert(VRRPAdvert, from: [UInt8])
        /// A fault begins (true) or ends (false).
        case fault(Bool)
        /// The effective priority changed (tracking); 1...254 for a non-owner.
        case priority(UInt8)
        /// Another instance of the same sync group became MASTER or BACKUP: follow it (keepalived's
        /// `vrrp_sync_group`), so the front and back VIPs stay on one director.
        case group(State)
    }

    public enum Action: Sendable, Equatable {
        /// Send an advertisement with this priority.
        case sendAdvert(priority: UInt8)
        /// Take the virtual addresses: add them, send gratuitous ARP.
        case takeAddresses
        /// Take them after a short pause: we preempt a live master, which drops them when our advert reaches it;
        /// the pause keeps the two from holding them at once.
        case takeAddressesAfterHandover
        /// Give them up.
        case releaseAddresses
        /// Shutting down: take the addresses off the wire but keep them local until the director has drained, so
        /// the answers to requests still in flight can leave (LVS-DR's VIP on the loopback).
        case handOverAddresses
        /// The state changed, and why (for logs, notify commands, `swiftvs adm ha`).
        case transition(from: State, to: State, reason: String)
    }

    public let vrid: UInt8
    /// The configured priority; `priority` is the effective one (after tracking).
    public let basePriority: UInt8
    public private(set) var priority: UInt8
    /// Our advertisement interval, centiseconds.
    public let advertInterval: UInt16
    public let preempt: Bool
    /// Nanoseconds after start-up during which a backup does not preempt a lower-priority master.
    public let preemptDelay: UInt64
    /// Our primary address on the link (ties between equal priorities go to the higher address).
    public let primaryAddress: [UInt8]

    public private(set) var state: State = .initialize
    /// The master's interval as last advertised, centiseconds.
    public private(set) var masterAdvertInterval: UInt16
    /// When the driver must deliver `.timer` next (monotonic ns); nil when no timer runs.
    public private(set) var deadline: UInt64?
    public private(set) var startedAt: UInt64 = 0
    /// The last master heard from (its address), if any.
    public private(set) var masterAddress: [UInt8]?
    var faulted = false
    /// The master resigned (priority 0): the running timer is the skew time.
    var masterResigned = false
    /// When another router last advertised as master (any priority but 0): if that is recent when we become
    /// master, it still holds the addresses until our advert reaches it.
    var otherMasterSeen: UInt64?

    public init(
        vrid: UInt8, priority: UInt8, advertInterval: UInt16, preempt: Bool = true, preemptDelay: UInt64 = 0,
        primaryAddress: [UInt8]
    ) {
        self.vrid = vrid
        self.basePriority = priority
        self.priority = priority
        self.advertInterval = max(1, min(advertInterval, 4095))
        self.masterAdvertInterval = self.advertInterval
        self.preempt = preempt
        self.preemptDelay = preemptDelay
        self.primaryAddress = primaryAddress
    }

    static let centisecond: UInt64 = 10_000_000

    /// Skew_Time in nanoseconds.
    public var skewTime: UInt64 {
        UInt64(256 - Int(self.priority)) * UInt64(self.masterAdvertInterval) * Self.centisecond / 256
    }

    /// Master_Down_Interval in nanoseconds.
    public var masterDownInterval: UInt64 { 3 * UInt64(self.masterAdvertInterval) * Self.centisecond + self.skewTime }

    var advertNanoseconds: UInt64 { UInt64(self.advertInterval) * Self.centisecond }

    public mutating func handle(_ event: Event, now: UInt64) -> [Action] {
        switch (self.state, event) {
        case (.initialize, .startup):
            self.startedAt = now
            if self.faulted { return self.move(to: .fault, "started with a fault") }
            if self.priority == 255 { return self.becomeMaster(now, "address owner (priority 255)") }
            self.masterAdvertInterval = self.advertInterval
            self.deadline = now + self.masterDownInterval
            // Addresses left behind by a crash of this director are not ours until we are master again.
            return [.releaseAddresses] + self.move(to: .backup, "started")
        case (.initialize, .fault(let on)):
            self.faulted = on
            return []
        case (.initialize, _):
            return []

        case (.master, .shutdown):
            // Resign, but keep serving on the addresses until the new master's first advert: it takes them after its
            // skew time, and clients move with its gratuitous ARP.
            self.deadline = now + 3 * UInt64(self.advertInterval) * Self.centisecond + self.skewTime
            return [.sendAdvert(priority: 0)] + self.move(to: .resigning, "shutting down: priority 0 sent")
        case (.resigning, .advert(let advert, _)):
            guard advert.vrid == self.vrid, advert.priority > 0 else { return [] }
            self.deadline = nil
            return [.handOverAddresses] + self.move(to: .initialize, "shut down: a new master took over")
        case (.resigning, .timer):
            guard let deadline = self.deadline, now >= deadline else { return [] }
            self.deadline = nil
            return [.handOverAddresses] + self.move(to: .initialize, "shut down: no new master announced itself")
        case (.resigning, _):
            return []
        case (_, .shutdown):
            self.deadline = nil
            return self.move(to: .initialize, "shutting down")

        case (.fault, .fault(let on)):
            self.faulted = on
            guard !on else { return [] }
            self.masterAdvertInterval = self.advertInterval
            self.deadline = now + self.masterDownInterval
            return self.move(to: .backup, "fault cleared")
        case (.fault, .priority(let p)):
            self.priority = p
            return []
        case (.fault, _):
            return []

        case (_, .fault(true)):
            self.faulted = true
            let wasMaster = self.state == .master
            self.deadline = nil
            let actions: [Action] = wasMaster ? [.releaseAddresses, .sendAdvert(priority: 0)] : []
            return actions + self.move(to: .fault, "fault")
        case (_, .fault(false)):
            self.faulted = false
            return []

        case (.backup, .timer):
            guard let deadline = self.deadline, now >= deadline else { return [] }
            if self.masterResigned {
                return self.becomeMaster(now, "the master resigned (priority 0); took over after the skew time")
            }
            if let seen = self.otherMasterSeen, now - seen < self.masterDownInterval {
                return self.becomeMaster(now, "preempting a master with a lower priority")
            }
            return self.becomeMaster(now, "no advertisement for \(Self.ms(self.masterDownInterval)) (master down)")
        case (.backup, .advert(let advert, let from)):
            guard advert.vrid == self.vrid else { return [] }
            if advert.priority == 0 {
                // The master resigned: take over after the skew time only.
                self.deadline = now + self.skewTime
                self.masterResigned = true
                self.otherMasterSeen = nil
                return []
            }
            self.masterResigned = false
            self.otherMasterSeen = now
            let withinPreemptDelay = now < self.startedAt + self.preemptDelay
            if !self.preempt || advert.priority >= self.priority || withinPreemptDelay {
                self.masterAdvertInterval = advert.maxAdvertInterval
                self.deadline = now + self.masterDownInterval
                self.masterAddress = from
            }
            // Otherwise a lower-priority master: ignore it, and preempt when our timer runs out.
            return []
        case (.backup, .priority(let p)):
            self.priority = p
            return []

        case (.master, .timer):
            guard let deadline = self.deadline, now >= deadline else { return [] }
            self.deadline = now + self.advertNanoseconds
            return [.sendAdvert(priority: self.priority)]
        case (.master, .advert(let advert, let from)):
            guard advert.vrid == self.vrid else { return [] }
            if advert.priority == 0 {
                // Another master resigned: assert ourselves at once.
                self.deadline = now + self.advertNanoseconds
                return [.sendAdvert(priority: self.priority)]
            }
            let higher =
                advert.priority > self.priority
                || (advert.priority == self.priority && Self.compare(from, self.primaryAddress) > 0)
            guard higher else { return [] }
            self.masterAdvertInterval = advert.maxAdvertInterval
            self.deadline = now + self.masterDownInterval
            self.masterAddress = from
            return [.releaseAddresses]
                + self.move(
                    to: .backup,
                    "advertisement from \(Self.format(from)) with priority \(advert.priority) over our \(self.priority)"
                )
        case (.master, .priority(let p)):
            self.priority = p
            // Advertise the new priority at once, so a backup with a higher one can take over.
            self.deadline = now + self.advertNanoseconds
            return [.sendAdvert(priority: p)]

        case (.backup, .group(.master)):
            return self.becomeMaster(now, "sync group: another instance became MASTER")
        case (.master, .group(.backup)):
            self.deadline = now + self.masterDownInterval
            return [.releaseAddresses] + self.move(to: .backup, "sync group: another instance became BACKUP")
        case (_, .group):
            return []

        case (.backup, .startup), (.master, .startup):
            return []
        }
    }

    mutating func becomeMaster(_ now: UInt64, _ reason: String) -> [Action] {
        self.deadline = now + self.advertNanoseconds
        let handover = self.otherMasterSeen.map { now - $0 < self.masterDownInterval } ?? false
        self.masterResigned = false
        self.otherMasterSeen = nil
        self.masterAddress = self.primaryAddress
        return [.sendAdvert(priority: self.priority), handover ? .takeAddressesAfterHandover : .takeAddresses]
            + self.move(to: .master, reason)
    }

    mutating func move(to state: State, _ reason: String) -> [Action] {
        let from = self.state
        self.state = state
        if state != .master && self.masterAddress == self.primaryAddress { self.masterAddress = nil }
        return from == state ? [] : [.transition(from: from, to: state, reason: reason)]
    }

    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        for (x, y) in zip(a, b) where x != y { return x < y ? -1 : 1 }
        return 0
    }

    public static func format(_ address: [UInt8]) -> String { address.map(String.init).joined(separator: ".") }

    static func ms(_ ns: UInt64) -> String { "\(ns / 1_000_000) ms" }
}
