@testable import SwiftVSCore
import Foundation
import SwiftVSConfigKit
import Testing

/// The process provider's replica machine, by scripted sequences with injected time.
@Suite("Autoscale: the replica set")
struct ReplicaSetTests {
    typealias A = ReplicaSet.Action
    static let settings = ReplicaSet.Settings(
        ports: 9000...9003, drainTimeout: 10, stopTimeout: 5, restartDelay: 1, maxRestartDelay: 8)

    @Test("Up: the lowest free slots start and join; a replica serves once its check passes")
    func up() {
        var set = ReplicaSet(settings: Self.settings)
        #expect(
            set.scale(to: 2, now: 0) == [
                .spawn(index: 0, port: 9000), .join(port: 9000),
                .spawn(index: 1, port: 9001), .join(port: 9001),
            ])
        #expect(set.current == 2 && set.ready == 0)
        set.ready(port: 9001, now: 1)
        #expect(set.ready == 1)
        #expect(set.replica(port: 9001)?.phase == .serving(since: 1))
        // More ports than the range: capped at the range's size.
        #expect(set.scale(to: 9, now: 2).count == 4)
        #expect(set.current == 4)
    }

    @Test("In: the serving replica with the fewest connections drains, then stops when idle or at drain_timeout")
    func down() {
        var set = ReplicaSet(settings: Self.settings)
        _ = set.scale(to: 3, now: 0)
        for port in 9000...9002 { set.ready(port: port, now: 1) }
        #expect(set.scale(to: 2, now: 2, connections: [9000: 3, 9001: 1, 9002: 5]) == [.drain(port: 9001)])
        #expect(set.current == 2, "a draining replica no longer counts")
        #expect(set.tick(now: 3, connections: [9001: 1]) == [], "still has a request in flight")
        #expect(set.tick(now: 4, connections: [9001: 0]) == [.leave(port: 9001), .signal(index: 1, signal: 15)])
        #expect(set.tick(now: 8.9) == [], "SIGTERM has stop_timeout to work")
        #expect(set.tick(now: 9) == [.signal(index: 1, signal: 9)])
        #expect(set.exited(index: 1, status: 137, now: 9.1) == [])
        #expect(set.replicas[1] == nil, "its slot is free again")
        // A drain that never empties ends at drain_timeout.
        _ = set.scale(to: 1, now: 10, connections: [9000: 1, 9002: 2])
        #expect(set.tick(now: 19.9, connections: [9000: 1]) == [])
        #expect(set.tick(now: 20, connections: [9000: 1]) == [.leave(port: 9000), .signal(index: 0, signal: 15)])
    }

    @Test("In: a crashed replica goes first, then one not serving yet (stopped at once), then a serving one")
    func downOrder() {
        var set = ReplicaSet(settings: Self.settings)
        _ = set.scale(to: 3, now: 0)
        set.ready(port: 9000, now: 1)
        _ = set.exited(index: 2, status: 1, now: 2)
        #expect(set.scale(to: 2, now: 3) == [])
        #expect(set.replicas[2] == nil)
        #expect(set.scale(to: 1, now: 3) == [.leave(port: 9001), .signal(index: 1, signal: 15)])
    }

    @Test("A replica that exits is started again after a delay that doubles while it keeps dying young")
    func backoff() {
        var set = ReplicaSet(settings: Self.settings)
        _ = set.scale(to: 1, now: 0)
        var now = 0.0
        var delays: [Double] = []
        for _ in 0..<6 {
            #expect(set.exited(index: 0, status: 3, now: now) == [.leave(port: 9000)])
            guard case .crashed(let status, let at) = set.replicas[0]!.phase else {
                Issue.record("not crashed")
                return
            }
            #expect(status == 3)
            delays.append(at - now)
            #expect(set.tick(now: at - 0.01) == [])
            #expect(set.tick(now: at) == [.spawn(index: 0, port: 9000), .join(port: 9000)])
            now = at + 0.5
        }
        #expect(delays == [1, 2, 4, 8, 8, 8])
        // One that lived past the crash window starts again after the first delay.
        set.ready(port: 9000, now: now)
        _ = set.exited(index: 0, status: 137, now: now + 120)
        guard case .crashed(_, let at) = set.replicas[0]!.phase else { return }
        #expect(at == now + 121)
    }

    @Test("On exit every replica with a process leaves and gets SIGTERM; a crashed one is forgotten")
    func stopAll() {
        var set = ReplicaSet(settings: Self.settings)
        _ = set.scale(to: 2, now: 0)
        _ = set.exited(index: 1, status: 1, now: 1)
        #expect(set.stopAll(now: 2) == [.leave(port: 9000), .signal(index: 0, signal: 15)])
        #expect(set.current == 0 && set.replicas.count == 1)
    }
}

@Suite("Autoscale: the director's autoscaler around HPA")
struct AutoscalerTests {
    static func config(min: Int = 1, zeroAfter: Double? = nil, metrics: [AutoscaleMetric]) -> AutoscaleConfig {
        var config = AutoscaleConfig(
            maxReplicas: 4, provider: ProcessProviderConfig(command: ["x", "{port}"], ports: 1...4))
        config.minReplicas = min
        config.scaleToZeroAfter = zeroAfter
        config.metrics = metrics
        config.cpuRequest = 1000
        return config
    }

    static func ready(
        _ name: String, rps: Double = 0, cpu: Int64? = nil, concurrency: Double = 0
    )
        -> Autoscaler.ReplicaSample
    {
        Autoscaler.ReplicaSample(
            name: name, phase: .ready(since: -1000, started: -1000), cpuMillis: cpu, requestsPerSecond: rps,
            concurrency: concurrency)
    }

    @Test("requests_per_second is a Pods metric: the average per replica against the target")
    func requestsPerSecond() {
        var autoscaler = Autoscaler(Self.config(metrics: [.init(source: .requestsPerSecond, target: .average(10))]))
        let decision = autoscaler.evaluate(
            .init(now: 0, current: 2, replicas: [Self.ready("a", rps: 30), Self.ready("b", rps: 20)]))
        #expect(decision.desired == 4, "average 25 against 10 on 2 ready replicas: ceil(2.5 × 2) = 5, max 4")
        #expect(decision.metrics.first?.current == 25)
        #expect(decision.metrics.first?.proposal == 5)
        #expect(decision.hpa?.scalingLimited?.reason == "TooManyReplicas")
    }

    @Test(
        "A starting replica has no sample of the director's: counted as 0 on a scale-up, as the target on a scale-down")
    func startingReplica() {
        var autoscaler = Autoscaler(Self.config(metrics: [.init(source: .requestsPerSecond, target: .average(10))]))
        let starting = Autoscaler.ReplicaSample(name: "c", phase: .starting(since: 0), requestsPerSecond: 0)
        let up = autoscaler.evaluate(
            .init(now: 0, current: 3, replicas: [Self.ready("a", rps: 30), Self.ready("b", rps: 30), starting]))
        // ratio 3 → with c as 0: 60 / 3 = 20 → 2.0 → ceil(2 × 3) = 6, max 4.
        #expect(up.metrics.first?.proposal == 6)
    }

    @Test("CPU utilization against requests.cpu, with HPA's integer percent")
    func cpu() {
        var autoscaler = Autoscaler(Self.config(metrics: [.init(source: .cpu, target: .utilization(50))]))
        let decision = autoscaler.evaluate(
            .init(now: 0, current: 2, replicas: [Self.ready("a", cpu: 900), Self.ready("b", cpu: 700)]))
        #expect(decision.metrics.first?.current == 80)
        #expect(decision.desired == 4, "80 % of a 50 % target on 2: ceil(1.6 × 2) = 4")
    }

    @Test("queue_length as an Object value: requests waiting per the target, times the ready replicas")
    func queue() {
        var autoscaler = Autoscaler(Self.config(metrics: [.init(source: .queueLength, target: .value(5))]))
        let decision = autoscaler.evaluate(
            .init(now: 0, current: 1, replicas: [Self.ready("a")], queueLength: 15))
        #expect(decision.desired == 3)
    }

    @Test("metrics_delay: the calculation sees the samples of that long ago, as HPA through its metrics pipeline")
    func delayed() {
        var config = Self.config(metrics: [.init(source: .requestsPerSecond, target: .average(10))])
        config.metricsDelay = 20
        var autoscaler = Autoscaler(config)
        // Nothing 20 s old yet: no metric, no scaling (HPA before its first metrics).
        let early = autoscaler.evaluate(.init(now: 0, current: 1, replicas: [Self.ready("a", rps: 50)]))
        #expect(early.desired == 1 && early.metrics.first?.error != nil)
        #expect(autoscaler.evaluate(.init(now: 10, current: 1, replicas: [Self.ready("a", rps: 50)])).desired == 1)
        // At 20 s the 50 req/s of 0 s arrive: 5 replicas wanted, 4 by the legacy cap.
        #expect(autoscaler.evaluate(.init(now: 20, current: 1, replicas: [Self.ready("a", rps: 5)])).desired == 4)
    }

    @Test("From zero: a waiting request brings the first replica; with none waiting it stays at zero")
    func fromZero() {
        var autoscaler = Autoscaler(
            Self.config(min: 0, zeroAfter: 30, metrics: [.init(source: .concurrency, target: .average(5))]))
        #expect(autoscaler.evaluate(.init(now: 0, current: 0, replicas: [])).desired == 0)
        let wake = autoscaler.evaluate(.init(now: 1, current: 0, replicas: [], queueLength: 2))
        #expect(wake.desired == 1)
        #expect(wake.reason.contains("scale from zero"))
    }

    @Test("To zero: after scale_to_zero_after without requests, and not before")
    func toZero() {
        var autoscaler = Autoscaler(
            Self.config(min: 0, zeroAfter: 30, metrics: [.init(source: .concurrency, target: .average(5))]))
        _ = autoscaler.evaluate(.init(now: 0, current: 1, replicas: [Self.ready("a", concurrency: 1)], requests: 4))
        #expect(autoscaler.evaluate(.init(now: 29, current: 1, replicas: [Self.ready("a")])).desired == 1)
        let idle = autoscaler.evaluate(.init(now: 30, current: 1, replicas: [Self.ready("a")]))
        #expect(idle.desired == 0)
        #expect(idle.reason == "no request for 30s: scale to zero")
    }
}

@Suite("Autoscale: config")
struct AutoscaleConfigTests {
    static func load(_ autoscale: String, extra: String = "") throws(ConfigError) -> DirectorConfig {
        try ConfigLoader.load(
            yaml: """
                services:
                  - name: api
                    listen: 127.0.0.1:8080
                \(extra)
                    autoscale:
                \(autoscale.split(separator: "\n").map { "      \($0)" }.joined(separator: "\n"))
                """)
    }

    @Test("A full section reads; replicas get a check that starts them down when the service has none")
    func full() throws {
        let config = try Self.load(
            """
            min_replicas: 2
            max_replicas: 6
            sync_period: 2s
            tolerance: {scale_up: 0.05}
            requests: {cpu: 250m, memory: 128Mi}
            metrics:
              - {type: cpu, utilization: 70}
              - {type: response_time_p90, average: 200ms}
              - {type: queue_length, value: 10}
            behavior:
              scale_up: {stabilization_window: 0, select_policy: Max, policies: [{type: Pods, value: 2, period: 10s}]}
              scale_down: {stabilization_window: 1m}
            process:
              command: [swiftvs, realserver, --listen, "{host}:{port}"]
              ports: 20000-20009
              env: {ROLE: "api-{index}"}
            """)
        let service = config.services[0]
        let autoscale = try #require(service.autoscale)
        #expect(autoscale.minReplicas == 2 && autoscale.maxReplicas == 6 && autoscale.syncPeriod == 2)
        #expect(autoscale.tolerances == .init(scaleDown: 0.1, scaleUp: 0.05))
        #expect(autoscale.cpuRequest == 250 && autoscale.memoryRequest == 128 << 20)
        #expect(autoscale.metrics[1] == .init(source: .responseTimeP90, target: .average(0.2)))
        #expect(autoscale.behavior?.scaleUp.policies == [.init(.pods, 2, period: 10)])
        #expect(autoscale.behavior?.scaleDown.stabilizationWindow == 60)
        #expect(autoscale.behavior?.scaleDown.policies == ScaleNormalizer.Rules.defaultDown.policies)
        #expect(autoscale.process?.ports == 20000...20009)
        #expect(autoscale.process?.expand("api-{index}", port: 20003, index: 3) == "api-3")
        #expect(service.health?.kind == .tcp && service.health?.alpha == true)
        #expect(service.servers.isEmpty)
    }

    @Test(
        "Bad sections are refused with the key named",
        arguments: [
            (
                "max_replicas: 2\nmin_replicas: 3\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.min_replicas", "must not exceed max_replicas"
            ),
            (
                "max_replicas: 2\nmetrics: [{type: bogus, average: 1}]\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.metrics[0].type", "'bogus' is not a metric"
            ),
            (
                "max_replicas: 2\nprocess: {command: [x, --listen, here], ports: 1-9}",
                "autoscale.process.command", "has no {port}"
            ),
            (
                "max_replicas: 4\nprocess: {command: [x, \"{port}\"], ports: 100-102}",
                "autoscale.process.ports", "fewer than max_replicas (4)"
            ),
            (
                "max_replicas: 2\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.requests.cpu", "metrics[0] targets CPU utilization"
            ),
            (
                "max_replicas: 2\nmin_replicas: 0\nmetrics: [{type: concurrency, average: 4}]\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.min_replicas", "needs scale_to_zero_after"
            ),
            (
                "max_replicas: 2\nprovider: kubernetes\nkubernetes: {namespace: web}",
                "autoscale.kubernetes.deployment", "missing: the Deployment to scale"
            ),
            (
                "max_replicas: 2\nprovider: kubernetes\nkubernetes: {deployment: web, api: \"http://k:6443\"}",
                "autoscale.kubernetes.api", "expected the API server as https://host:port"
            ),
            (
                "max_replicas: 2\nprovider: ecs\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.provider", "'ecs' is not a provider"
            ),
            (
                "max_replicas: 2\nmetrics: [{type: requests_per_second, utilization: 50}]\nprocess: {command: [x, \"{port}\"], ports: 1-9}",
                "autoscale.metrics[0].utilization", "is for cpu and memory"
            ),
        ])
    func bad(_ c: (String, String, String)) {
        do {
            _ = try Self.load(c.0)
            Issue.record("accepted: \(c.0)")
        } catch {
            let text = error.description
            #expect(text.contains("services[0].\(c.1)") && text.contains(c.2), "\(text)")
        }
    }
}

@Suite("Autoscale: EndpointSlices as the pool")
struct EndpointSlicesTests {
    static func slice(_ name: String, port: Int = 8080, _ endpoints: [(String, Bool?, Bool?, Bool?)]) -> String {
        let list = endpoints.map { address, ready, serving, terminating in
            var conditions: [String] = []
            if let ready { conditions.append("\"ready\":\(ready)") }
            if let serving { conditions.append("\"serving\":\(serving)") }
            if let terminating { conditions.append("\"terminating\":\(terminating)") }
            return #"{"addresses":["\#(address)"],"conditions":{\#(conditions.joined(separator: ","))}}"#
        }.joined(separator: ",")
        return
            #"{"metadata":{"name":"\#(name)","resourceVersion":"7"},"addressType":"IPv4","endpoints":[\#(list)],"ports":[{"name":"http","port":\#(port)},{"name":"metrics","port":9090}]}"#
    }

    @Test(
        "Conditions as the API reference reads them: nil ready is ready, serving and terminating drains, the rest leave"
    )
    func roles() throws {
        var slices = EndpointSlices()
        let json =
            #"{"metadata":{"resourceVersion":"41"},"items":["#
            + Self.slice(
                "a",
                [
                    ("10.0.0.1", true, true, false), ("10.0.0.2", nil, nil, nil), ("10.0.0.3", false, true, true),
                    ("10.0.0.4", false, false, true), ("10.0.0.5", false, nil, nil),
                ]) + "]}"
        slices.replace(with: try JSONDecoder().decode(EndpointSlices.List.self, from: Data(json.utf8)))
        #expect(slices.resourceVersion == "41")
        let members = slices.members(port: "http")
        #expect(members[try Endpoint(parsing: "10.0.0.1:8080")] == .ready)
        #expect(members[try Endpoint(parsing: "10.0.0.2:8080")] == .ready)
        #expect(members[try Endpoint(parsing: "10.0.0.3:8080")] == .draining)
        #expect(members.count == 3, "not serving, or not ready and not terminating: out")
        #expect(slices.members(port: "metrics").keys.map(\.port).allSatisfy { $0 == 9090 })
        #expect(slices.members(port: nil).keys.map(\.port).allSatisfy { $0 == 8080 }, "the first port by default")
        #expect(slices.members(port: "grpc").isEmpty)
    }

    @Test("Watch lines: ADDED/MODIFIED/DELETED change the slices, BOOKMARK the version, ERROR 410 says list again")
    func events() throws {
        var slices = EndpointSlices()
        let added = try #require(
            EndpointSlices.Event.decode(
                Array(#"{"type":"ADDED","object":\#(Self.slice("b", [("10.0.0.9", true, nil, nil)]))}"#.utf8)))
        let appliedAdded = slices.apply(added)
        #expect(appliedAdded)
        #expect(slices.members(port: nil).count == 1 && slices.resourceVersion == "7")
        let bookmark = try #require(
            EndpointSlices.Event.decode(
                Array(
                    #"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"99"}}}"#.utf8))
        )
        let appliedBookmark = slices.apply(bookmark)
        #expect(appliedBookmark)
        #expect(slices.resourceVersion == "99" && slices.slices.count == 1)
        let deleted = try #require(
            EndpointSlices.Event.decode(Array(#"{"type":"DELETED","object":\#(Self.slice("b", []))}"#.utf8)))
        let appliedDeleted = slices.apply(deleted)
        #expect(appliedDeleted)
        #expect(slices.slices.isEmpty)
        let gone = try #require(
            EndpointSlices.Event.decode(
                Array(
                    #"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}}"#
                        .utf8)))
        #expect(gone.code == 410)
        let appliedGone = slices.apply(gone)
        #expect(!appliedGone)
        #expect(EndpointSlices.Event.decode(Array("not json".utf8)) == nil)
    }
}
