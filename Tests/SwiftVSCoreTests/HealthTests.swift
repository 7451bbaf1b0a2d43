import SwiftVSCore
import Testing

@Suite("Health state machine")
struct HealthTests {
    let pass = CheckResult.passed("200 OK")
    let fail = CheckResult.failed("connection refused")

    /// Feeds results one per second (the injected clock is the index) and returns the states after each.
    func script(_ tracker: inout HealthTracker, _ results: String) -> [HealthTransition] {
        var transitions: [HealthTransition] = []
        for (second, result) in results.enumerated() {
            if let transition = tracker.record(result == "+" ? self.pass : self.fail, now: Double(second + 1)) {
                transitions.append(transition)
            }
        }
        return transitions
    }

    @Test("fall failures in a row take a server down; rise passes in a row bring it back")
    func riseAndFall() {
        var tracker = HealthTracker(rise: 2, fall: 3, now: 0)
        #expect(tracker.state == .up)
        let transitions = self.script(&tracker, "++---++")
        // down at the third failure (t=5), up at the second pass after it (t=7)
        #expect(transitions.map(\.to) == [.down, .up])
        #expect(transitions.map(\.at) == [5, 7])
        #expect(transitions[0].reason == "check failed 3/3: connection refused")
        #expect(transitions[1].reason == "check passed 2/2: 200 OK")
        #expect(tracker.since == 7)
        #expect(tracker.checks == 7 && tracker.failures == 3)
    }

    @Test("flapping results that never reach rise or fall in a row change nothing")
    func flapping() {
        var tracker = HealthTracker(rise: 2, fall: 2, now: 0)
        #expect(self.script(&tracker, "-+-+-+-+-+").isEmpty)  // up throughout: no two failures in a row
        #expect(tracker.state == .up)
        _ = self.script(&tracker, "--")
        #expect(tracker.state == .down)
        #expect(self.script(&tracker, "+-+-+-+-").isEmpty)  // down throughout: no two passes in a row
        #expect(tracker.state == .down)
    }

    @Test("a check that could not run (the director out of descriptors) counts neither way, whatever the streak")
    func inconclusiveChecks() {
        var tracker = HealthTracker(rise: 2, fall: 2, now: 0)
        // One real failure, then checks that could not run: the streak stays at one, the server stays up.
        #expect(tracker.record(.failed("refused"), now: 1) == nil)
        for t in 2...20 { #expect(tracker.record(.inconclusive("EMFILE"), now: Double(t)) == nil) }
        #expect(tracker.state == .up)
        #expect(tracker.last?.detail == "EMFILE", "shown in adm list as the last result")
        // The next real failure completes the fall.
        #expect(tracker.record(.failed("refused"), now: 21)?.to == .down)
        // Down: inconclusive checks do not bring it back either.
        for t in 22...30 { #expect(tracker.record(.inconclusive("EMFILE"), now: Double(t)) == nil) }
        #expect(tracker.state == .down)
    }

    @Test("alpha starts a server down until rise checks pass; without alpha it starts up")
    func alpha() {
        var tracker = HealthTracker(rise: 3, fall: 1, alpha: true, now: 0)
        #expect(tracker.state == .down)
        #expect(tracker.reason == "alpha: down until 3 checks pass")
        let transitions = self.script(&tracker, "++-+++")
        #expect(transitions.map(\.at) == [6])  // the failure at t=3 restarted the count
        #expect(tracker.state == .up)
        var plain = HealthTracker(rise: 3, fall: 1, now: 0)
        #expect(plain.state == .up)
        #expect(self.script(&plain, "-").map(\.to) == [.down])  // fall 1: one failure is enough
    }

    @Test("passive ejection takes an up server down at once; the checks bring it back after rise")
    func ejection() {
        var tracker = HealthTracker(rise: 2, fall: 3, now: 0)
        #expect(tracker.eject(reason: "5 failed requests in a row", now: 1)?.to == .down)
        #expect(tracker.eject(reason: "again", now: 2) == nil)  // already down
        #expect(tracker.reason == "5 failed requests in a row")
        #expect(self.script(&tracker, "++").map(\.to) == [.up])
    }

    @Test("quorum: the service is down below the quorum weight, with hysteresis against flapping")
    func quorum() {
        var quorum = Quorum(quorum: 4, hysteresis: 1, healthyWeight: 6)
        #expect(quorum.isUp)
        #expect(quorum.update(healthyWeight: 3) == nil)  // 3 is not below 4 - 1
        #expect(quorum.update(healthyWeight: 2) == false)
        #expect(quorum.update(healthyWeight: 4) == nil)  // needs 4 + 1 to come back
        #expect(quorum.update(healthyWeight: 5) == true)
        #expect(Quorum(quorum: 1, healthyWeight: 0).isUp == false)
    }

    @Test("sorry: while the quorum is lost the sorry server takes all traffic; live servers return with it")
    func sorry() {
        var members = [
            RealServerStatus(id: 0, weight: 2), RealServerStatus(id: 1, weight: 1), RealServerStatus(id: 2, weight: 0),
        ]
        var quorum = Quorum(quorum: 2, healthyWeight: 3)
        var (rotation, changed) = Rotation.plan(members, quorum: &quorum, hasSorry: true)
        #expect(rotation == Rotation(servers: [0, 1, 2], sorry: false, healthyWeight: 3) && changed == nil)
        members[0].health = .down
        (rotation, changed) = Rotation.plan(members, quorum: &quorum, hasSorry: true)
        // weight 1 left < quorum 2: the sorry server has it all, even though server 1 is up
        #expect(rotation == Rotation(servers: [], sorry: true, healthyWeight: 1) && changed == false)
        (rotation, _) = Rotation.plan(members, quorum: &quorum, hasSorry: false)
        #expect(rotation.servers == [1, 2] && !rotation.sorry)  // no sorry server: the live ones keep serving
        members[0].health = .up
        members[1].enabled = false
        (rotation, changed) = Rotation.plan(members, quorum: &quorum, hasSorry: true)
        #expect(rotation == Rotation(servers: [0, 2], sorry: false, healthyWeight: 2) && changed == true)
    }

    @Test("ejection never takes more than the allowed share of the pool out")
    func ejectionBudget() {
        #expect(mayEject(outOfRotation: 0, poolSize: 3, maxPercent: 50))  // 1 of 3 out is 33%
        #expect(!mayEject(outOfRotation: 1, poolSize: 3, maxPercent: 50))  // 2 of 3 would be 67%
        #expect(!mayEject(outOfRotation: 0, poolSize: 3, maxPercent: 0))
        #expect(mayEject(outOfRotation: 2, poolSize: 3, maxPercent: 100))
    }

    @Test("MD5 known answers (RFC 1321 appendix A.5)")
    func md5() {
        #expect(MD5.hex([UInt8]()) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("message digest".utf8)) == "f96b697d7cb7938d525a2f31aaf161d0")
        let long = "12345678901234567890123456789012345678901234567890123456789012345678901234567890"
        #expect(MD5.hex(Array(long.utf8)) == "57edf4a22be3c955ac49da2e2107b67a")
    }

    @Test("an HTTP check passes on an expected status, fails on another, and on a changed digest")
    func httpVerdict() {
        var check = HealthCheckConfig(kind: .http)
        #expect(HTTPCheckVerdict.judge(status: 200, reason: "OK", body: [], check: check) == .passed("200 OK"))
        #expect(
            HTTPCheckVerdict.judge(status: 500, reason: "Internal Server Error", body: [], check: check)
                == .failed("status 500 Internal Server Error, expected 200-399"))
        check.digest = MD5.hex(Array("ok\n".utf8))
        #expect(HTTPCheckVerdict.judge(status: 200, reason: "OK", body: Array("ok\n".utf8), check: check).ok)
        let changed = HTTPCheckVerdict.judge(status: 200, reason: "OK", body: Array("v2\n".utf8), check: check)
        #expect(!changed.ok && changed.detail.hasPrefix("body digest "))
        check.regex = "ready"
        #expect(
            !HTTPCheckVerdict.judge(
                status: 200, reason: "OK", body: Array("ok\n".utf8), check: check,
                bodyMatches: false
            ).ok)
    }

    @Test("rates are smoothed as IPVS does: a quarter of the way per sample")
    func rates() {
        var rate = RateEstimator()
        rate.sample(total: 0, now: 0)
        rate.sample(total: 400, now: 2)  // 200/s seen: average moves to 50
        #expect(rate.rate == 50)
        rate.sample(total: 800, now: 4)
        #expect(rate.rate == 87.5)
    }

    @Test("Prometheus text: HELP and TYPE once per family, label values escaped")
    func prometheus() {
        var text = PrometheusText()
        text.family("swiftvs_up", .gauge, help: "Up.", [([("service", "a\"b")], 1), ([], 2.5)])
        #expect(
            text.text
                == "# HELP swiftvs_up Up.\n# TYPE swiftvs_up gauge\nswiftvs_up{service=\"a\\\"b\"} 1\nswiftvs_up 2.5\n")
    }
}
