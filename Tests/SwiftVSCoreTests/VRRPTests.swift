import Testing
@testable import SwiftVSCore

@Suite("VRRPv3: codec and state machine")
struct VRRPTests {
    // keepalived 2.2.7's advert, captured in the project's lab (shared/research/ha.md): 10.200.0.2 > 224.0.0.18,
    // VRID 51, priority 150, 10 cs, one address 10.200.0.100.
    let keepalivedIP: [UInt8] = [
        0x45, 0xC0, 0x00, 0x20, 0x00, 0x22, 0x00, 0x00, 0xFF, 0x70, 0xCF, 0xAF,
        10, 200, 0, 2, 224, 0, 0, 18,
    ]
    let keepalivedVRRP: [UInt8] = [0x31, 0x33, 0x96, 0x01, 0x00, 0x0A, 0x42, 0x3C, 10, 200, 0, 100]

    @Test func encodesExactlyWhatKeepalivedSends() {
        let advert = VRRPAdvert(vrid: 51, priority: 150, maxAdvertInterval: 10, addresses: [[10, 200, 0, 100]])
        #expect(advert.encode(source: [10, 200, 0, 2], destination: VRRPAdvert.multicastGroup) == self.keepalivedVRRP)
    }

    @Test func decodesKeepalivedsPacketAndRejectsBadOnes() throws {
        let decoded = try VRRPAdvert.decode(ipPacket: self.keepalivedIP + self.keepalivedVRRP).get()
        #expect(decoded.source == [10, 200, 0, 2])
        #expect(
            decoded.advert
                == VRRPAdvert(vrid: 51, priority: 150, maxAdvertInterval: 10, addresses: [[10, 200, 0, 100]]))
        var ttl = self.keepalivedIP
        ttl[8] = 64
        #expect(throws: VRRPAdvert.DecodeError.ttl(64)) {
            try VRRPAdvert.decode(ipPacket: ttl + self.keepalivedVRRP).get()
        }
        var corrupt = self.keepalivedVRRP
        corrupt[2] = 151
        #expect(throws: VRRPAdvert.DecodeError.checksum) {
            try VRRPAdvert.decode(ipPacket: self.keepalivedIP + corrupt).get()
        }
        var v2 = self.keepalivedVRRP
        v2[0] = 0x21
        #expect(throws: VRRPAdvert.DecodeError.version(2)) {
            try VRRPAdvert.decode(ipPacket: self.keepalivedIP + v2).get()
        }
        #expect(throws: VRRPAdvert.DecodeError.self) {
            try VRRPAdvert.decode(ipPacket: Array(self.keepalivedIP.prefix(10))).get()
        }
    }

    static let ms: UInt64 = 1_000_000
    let me: [UInt8] = [10, 0, 0, 2]
    let peer: [UInt8] = [10, 0, 0, 3]

    func machine(priority: UInt8 = 100, preempt: Bool = true, preemptDelay: UInt64 = 0) -> VRRPStateMachine {
        VRRPStateMachine(
            vrid: 51, priority: priority, advertInterval: 10, preempt: preempt, preemptDelay: preemptDelay,
            primaryAddress: self.me)
    }

    func advert(_ priority: UInt8) -> VRRPStateMachine.Event {
        .advert(
            VRRPAdvert(vrid: 51, priority: priority, maxAdvertInterval: 10, addresses: [[10, 0, 0, 100]]),
            from: self.peer)
    }

    @Test func timersFollowTheRFC() {
        let m = self.machine(priority: 100)
        // Skew = (256-100)/256 × 100 ms = 60.9 ms; down = 300 ms + skew.
        #expect(m.skewTime == 60_937_500)
        #expect(m.masterDownInterval == 360_937_500)
    }

    @Test func backupBecomesMasterWhenNoAdvertsCome() {
        var m = self.machine()
        let start = 1_000 * Self.ms
        #expect(
            m.handle(.startup, now: start) == [
                .releaseAddresses,
                .transition(from: .initialize, to: .backup, reason: "started"),
            ])
        #expect(m.handle(.timer, now: start + 300 * Self.ms) == [], "early timers are ignored")
        let actions = m.handle(.timer, now: m.deadline!)
        #expect(actions.prefix(2) == [.sendAdvert(priority: 100), .takeAddresses])
        #expect(m.state == .master)
        // A master advertises every interval.
        let next = m.deadline!
        #expect(next - (start + m.masterDownInterval) == 100 * Self.ms)
        #expect(m.handle(.timer, now: next) == [.sendAdvert(priority: 100)])
    }

    @Test func backupFollowsAHigherMasterAndTakesOverAfterSkewOnPriorityZero() {
        var m = self.machine(priority: 100)
        _ = m.handle(.startup, now: 0)
        _ = m.handle(self.advert(150), now: 50 * Self.ms)
        #expect(m.deadline == 50 * Self.ms + m.masterDownInterval && m.state == .backup)
        #expect(m.masterAddress == self.peer)
        // The master shuts down gracefully: priority 0 → master after the skew time (60.9 ms), not 360 ms.
        _ = m.handle(self.advert(0), now: 100 * Self.ms)
        #expect(m.deadline == 100 * Self.ms + m.skewTime)
        _ = m.handle(.timer, now: m.deadline!)
        #expect(m.state == .master)
    }

    @Test func masterStepsDownForAHigherPriorityAndForAHigherAddressAtEqualPriority() {
        var m = self.machine(priority: 100)
        _ = m.handle(.startup, now: 0)
        _ = m.handle(.timer, now: m.deadline!)
        #expect(m.handle(self.advert(50), now: 500 * Self.ms) == [], "a lower priority is ignored")
        let down = m.handle(self.advert(100), now: 600 * Self.ms)  // 10.0.0.3 > 10.0.0.2
        #expect(down.first == .releaseAddresses && m.state == .backup)
        if case .transition(_, _, let reason)? = down.last { #expect(reason.contains("10.0.0.3")) }
    }

    @Test func preemptionAndPreemptDelay() {
        // A higher-priority backup ignores a lower master's adverts and takes over when its down timer runs out.
        var m = self.machine(priority: 200)
        _ = m.handle(.startup, now: 0)
        _ = m.handle(self.advert(100), now: 100 * Self.ms)
        #expect(m.deadline == m.masterDownInterval, "not reset by a lower priority")
        let preempting = m.handle(.timer, now: m.deadline!)
        #expect(m.state == .master)
        #expect(
            preempting.prefix(2) == [.sendAdvert(priority: 200), .takeAddressesAfterHandover],
            "the old master gets our advert before we add the addresses")

        // preempt: false: a lower-priority master keeps the job.
        var polite = self.machine(priority: 200, preempt: false)
        _ = polite.handle(.startup, now: 0)
        _ = polite.handle(self.advert(100), now: 100 * Self.ms)
        #expect(polite.deadline == 100 * Self.ms + polite.masterDownInterval)

        // preempt_delay 5 s: no preemption in the first 5 s, then it does.
        var delayed = self.machine(priority: 200, preemptDelay: 5_000 * Self.ms)
        _ = delayed.handle(.startup, now: 0)
        _ = delayed.handle(self.advert(100), now: 4_000 * Self.ms)
        #expect(delayed.deadline == 4_000 * Self.ms + delayed.masterDownInterval)
        _ = delayed.handle(self.advert(100), now: 5_100 * Self.ms)
        #expect(delayed.deadline == 4_000 * Self.ms + delayed.masterDownInterval, "after the delay: ignored again")
    }

    @Test func ownerShutdownAndFault() {
        var owner = VRRPStateMachine(vrid: 1, priority: 255, advertInterval: 100, primaryAddress: self.me)
        #expect(owner.handle(.startup, now: 0).prefix(2) == [.sendAdvert(priority: 255), .takeAddresses])
        // Shutting down: priority 0 at once, the addresses kept until the new master's first advert.
        let bye = owner.handle(.shutdown, now: 10 * Self.ms)
        #expect(bye.first == .sendAdvert(priority: 0) && owner.state == .resigning)
        let newMaster = VRRPAdvert(vrid: 1, priority: 100, maxAdvertInterval: 100, addresses: [[10, 0, 0, 100]])
        #expect(owner.handle(.timer, now: 20 * Self.ms) == [], "still waiting for the new master")
        let gone = owner.handle(.advert(newMaster, from: self.peer), now: 80 * Self.ms)
        #expect(gone.first == .handOverAddresses && owner.state == .initialize)

        var m = self.machine()
        _ = m.handle(.startup, now: 0)
        _ = m.handle(.timer, now: m.deadline!)
        let fault = m.handle(.fault(true), now: 1_000 * Self.ms)
        #expect(fault.prefix(2) == [.releaseAddresses, .sendAdvert(priority: 0)] && m.state == .fault)
        #expect(m.handle(.timer, now: 2_000 * Self.ms) == [] && m.deadline == nil)
        _ = m.handle(.fault(false), now: 3_000 * Self.ms)
        #expect(m.state == .backup && m.deadline == 3_000 * Self.ms + m.masterDownInterval)
    }

    @Test func trackedPriorityIsAdvertisedAtOnce() {
        var m = self.machine(priority: 150)
        _ = m.handle(.startup, now: 0)
        _ = m.handle(.timer, now: m.deadline!)
        #expect(m.handle(.priority(90), now: 1_000 * Self.ms) == [.sendAdvert(priority: 90)])
        // Now a backup at 100 beats us: we step down when it advertises.
        #expect(m.handle(self.advert(100), now: 1_050 * Self.ms).first == .releaseAddresses)
    }
}
