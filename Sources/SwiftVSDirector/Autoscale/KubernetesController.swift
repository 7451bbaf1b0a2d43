import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// One autoscaled service whose replicas are a Kubernetes Deployment's pods: the director patches the Deployment's
/// scale subresource with HPA's count, and follows the Service's EndpointSlices for the pool (list, then watch from
/// the list's resourceVersion; a 410 lists again). Ready endpoints join (in rotation once the director's own check
/// passes), serving-and-terminating ones drain at weight 0, gone ones leave. When the API cannot be reached the
/// pool stays as last known, and the log says so.
final class KubernetesController: ScaledController {
    let service: VirtualService
    let logger: Logger
    let settings: KubernetesProviderConfig
    let client: KubernetesClient

    struct State {
        var config: AutoscaleConfig
        var fileConfig: AutoscaleConfig
        var autoscaler: Autoscaler
        var slices = EndpointSlices()
        var members: [Endpoint: EndpointSlices.Role] = [:]
        /// When each endpoint joined the pool (for HPA's readiness times).
        var joined: [Endpoint: Double] = [:]
        var specReplicas: Int?
        var resourceVersion: String?
        var reachable = true
        var sampler = DirectorSampler<Endpoint>()
        var history = DecisionHistory()
        var last: Autoscaler.Decision?
        var samples: [Autoscaler.ReplicaSample] = []
    }

    private let state: Mutex<State>
    /// The watch in flight, closed to end it.
    private let watchChannel = Mutex<Channel?>(nil)

    init(
        service: VirtualService, config: AutoscaleConfig, settings: KubernetesProviderConfig, base: String?,
        group: EventLoopGroup, logger: Logger
    ) throws {
        self.service = service
        self.logger = logger
        self.settings = settings
        self.client = try KubernetesClient(settings, base: base, group: group)
        self.state = Mutex(State(config: config, fileConfig: config, autoscaler: Autoscaler(config)))
    }

    var paths: (scale: String, slices: String) {
        let ns = self.client.namespace
        let serviceName = self.settings.service ?? self.settings.deployment
        let selector = "kubernetes.io%2Fservice-name%3D\(serviceName)"
        return (
            "/apis/apps/v1/namespaces/\(ns)/deployments/\(self.settings.deployment)/scale",
            "/apis/discovery.k8s.io/v1/namespaces/\(ns)/endpointslices?labelSelector=\(selector)"
        )
    }

    func start(now: Double) {}
    func tick(now: Double) {}

    func reconfigure(_ config: AutoscaleConfig) {
        self.state.withLock { state in
            guard config != state.fileConfig else { return }
            if config.provider != state.fileConfig.provider {
                self.logger.warning(
                    "autoscale.kubernetes changes on restart only", metadata: ["service": "\(self.service.name)"])
            }
            state.fileConfig = config
            var kept = config
            kept.provider = state.config.provider
            state.config = kept
            state.autoscaler = Autoscaler(kept)
        }
    }

    func setBounds(min: Int?, max: Int?) throws(ScaleError) {
        try self.state.withLock { state throws(ScaleError) in
            let newMin = min ?? state.config.minReplicas
            let newMax = max ?? state.config.maxReplicas
            guard newMax >= 1, newMax <= 1000 else { throw ScaleError("max must be 1...1000") }
            guard newMin >= 1, newMin <= newMax else { throw ScaleError("min must be 1...max (\(newMax))") }
            state.config.minReplicas = newMin
            state.config.maxReplicas = newMax
            state.autoscaler.setBounds(min: newMin, max: newMax)
        }
    }

    /// The Deployment's pods are not the director's: on exit they stay as they are.
    func stop() async {
        self.watchChannel.withLock { $0 }?.close(promise: nil)
    }

    // MARK: loops

    func run() async {
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followEndpoints() }
                group.addTask { await self.scaleLoop() }
                await group.waitForAll()
            }
        } onCancel: {
            // A watch waits on the server; closing its connection ends it.
            self.watchChannel.withLock { $0 }?.close(promise: nil)
        }
    }

    private func unreachable(_ what: String, _ error: Error) {
        let first = self.state.withLock { state -> Bool in
            defer { state.reachable = false }
            return state.reachable
        }
        let metadata: Logger.Metadata = ["service": "\(self.service.name)", "call": "\(what)", "error": "\(error)"]
        if first {
            self.logger.warning("kubernetes API unreachable: serving from the last known pool", metadata: metadata)
        } else {
            self.logger.debug("kubernetes API still unreachable", metadata: metadata)
        }
    }

    private func reached() {
        let was = self.state.withLock { state -> Bool in
            defer { state.reachable = true }
            return state.reachable
        }
        if !was { self.logger.notice("kubernetes API reachable again", metadata: ["service": "\(self.service.name)"]) }
    }

    /// List, then watch from the list's version; a watch that ends is started again from the last version seen;
    /// a 410 (the version is too old) lists again.
    private func followEndpoints() async {
        let path = self.paths.slices
        while !Task.isCancelled {
            do {
                let response = try await self.client.call(.GET, path)
                guard response.status == 200 else {
                    throw KubernetesClient.Failure(
                        description: "\(response.status) \(String(decoding: response.body.prefix(200), as: UTF8.self))")
                }
                let list = try JSONDecoder().decode(EndpointSlices.List.self, from: Data(response.body))
                self.state.withLock { $0.slices.replace(with: list) }
                self.reached()
                self.applyPool()
            } catch {
                self.unreachable("list endpointslices", error)
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            var relist = false
            while !Task.isCancelled && !relist {
                let version = self.state.withLock { $0.slices.resourceVersion } ?? ""
                let watchPath = "\(path)&watch=1&resourceVersion=\(version)&allowWatchBookmarks=true"
                let expired = Atomic<Bool>(false)
                do {
                    let status = try await self.client.watch(
                        watchPath,
                        onLine: { line in
                            guard let event = EndpointSlices.Event.decode(line) else { return }
                            let ok = self.state.withLock { $0.slices.apply(event) }
                            if !ok {
                                // ERROR: 410 Gone (or any other): list again.
                                expired.store(true, ordering: .relaxed)
                                self.logger.info(
                                    "endpointslices watch expired: listing again",
                                    metadata: [
                                        "service": "\(self.service.name)", "code": "\(event.code ?? 0)",
                                        "message": "\(event.message ?? "")",
                                    ])
                                self.watchChannel.withLock { $0 }?.close(promise: nil)
                            } else {
                                self.applyPool()
                            }
                        },
                        started: { channel in self.watchChannel.withLock { $0 = channel } })
                    if status == 410 || expired.load(ordering: .relaxed) { relist = true }
                    if status != 200 && status != 410 {
                        throw KubernetesClient.Failure(description: "watch answered \(status)")
                    }
                    self.reached()
                } catch {
                    self.unreachable("watch endpointslices", error)
                    try? await Task.sleep(for: .seconds(1))
                    relist = true
                }
            }
        }
    }

    /// The pool as the slices say: joins, drains (weight 0) and leaves.
    private func applyPool() {
        let now = Monotonic.seconds()
        self.state.withLock { state in
            let members = state.slices.members(port: self.settings.port)
            for (endpoint, role) in members where state.members[endpoint] != role {
                switch role {
                case .ready:
                    if state.members[endpoint] == nil {
                        try? self.service.addServer(
                            RealServerConfig(address: endpoint, weight: self.settings.weight), managed: true)
                        state.joined[endpoint] = now
                        self.logger.info(
                            "endpoint joined", metadata: ["service": "\(self.service.name)", "server": "\(endpoint)"])
                    } else {
                        try? self.service.setWeight(endpoint, self.settings.weight)
                    }
                case .draining:
                    if state.members[endpoint] == nil {
                        // First seen already terminating: it takes nothing new.
                        try? self.service.addServer(RealServerConfig(address: endpoint, weight: 0), managed: true)
                    } else {
                        try? self.service.setWeight(endpoint, 0)
                    }
                    self.logger.info(
                        "endpoint terminating: draining",
                        metadata: ["service": "\(self.service.name)", "server": "\(endpoint)"])
                }
            }
            for endpoint in state.members.keys where members[endpoint] == nil {
                try? self.service.removeServer(endpoint)
                state.joined[endpoint] = nil
                state.sampler.forget(endpoint)
                self.logger.info(
                    "endpoint left", metadata: ["service": "\(self.service.name)", "server": "\(endpoint)"])
            }
            state.members = members
        }
        self.service.capacityChanged()
    }

    private func scaleLoop() async {
        while !Task.isCancelled {
            let period = self.state.withLock { $0.config.syncPeriod }
            await self.reconcile()
            try? await Task.sleep(for: .milliseconds(Int(period * 1000)))
        }
    }

    struct Scale: Codable {
        struct Metadata: Codable { var resourceVersion: String? }
        struct Spec: Codable { var replicas: Int? }
        var metadata: Metadata?
        var spec: Spec?
    }

    /// Reads the scale, decides, patches it (with the version read, so a concurrent change is a 409, not lost).
    func reconcile() async {
        let path = self.paths.scale
        for attempt in 0..<2 {
            let read: Scale
            do {
                let response = try await self.client.call(.GET, path)
                guard response.status == 200 else {
                    throw KubernetesClient.Failure(description: "GET scale answered \(response.status)")
                }
                read = try JSONDecoder().decode(Scale.self, from: Data(response.body))
                self.reached()
            } catch {
                self.unreachable("get scale", error)
                return
            }
            let current = read.spec?.replicas ?? 0
            guard let decision = self.decide(current: current) else { return }
            let body: [String: Any] = [
                "metadata": ["resourceVersion": read.metadata?.resourceVersion ?? ""],
                "spec": ["replicas": decision.desired],
            ]
            do {
                let response = try await self.client.call(
                    .PATCH, path, body: Array(try JSONSerialization.data(withJSONObject: body)),
                    contentType: "application/merge-patch+json")
                if response.status == 409 {
                    self.logger.info(
                        "scale changed meanwhile (409 Conflict): reading it again",
                        metadata: ["service": "\(self.service.name)", "attempt": "\(attempt + 1)"])
                    continue
                }
                guard response.status == 200 else {
                    throw KubernetesClient.Failure(
                        description: "PATCH scale answered \(response.status) "
                            + String(decoding: response.body.prefix(200), as: UTF8.self))
                }
                self.record(decision)
                return
            } catch {
                self.unreachable("patch scale", error)
                return
            }
        }
    }

    /// The autoscaler's decision from the pool's figures; nil when nothing changes.
    private func decide(current: Int) -> Autoscaler.Decision? {
        let now = Monotonic.seconds()
        let views = self.service.serverViews()
        let queue = self.service.queue
        return self.state.withLock { state -> Autoscaler.Decision? in
            state.specReplicas = current
            var samples: [Autoscaler.ReplicaSample] = []
            var requests = 0
            for (endpoint, role) in state.members.sorted(by: { $0.key.description < $1.key.description }) {
                let view = views[endpoint]
                let joined = state.joined[endpoint] ?? now
                var sample = Autoscaler.ReplicaSample(name: endpoint.description, phase: .leaving)
                if role == .ready {
                    sample.phase =
                        view?.inRotation == true ? .ready(since: joined, started: joined) : .starting(since: joined)
                }
                requests += state.sampler.sample(endpoint, view: view, now: now, into: &sample)
                samples.append(sample)
            }
            state.samples = samples
            let decision = state.autoscaler.evaluate(
                Autoscaler.Observation(
                    now: now, current: current, replicas: samples, queueLength: queue.length.load(ordering: .relaxed),
                    queueWait: Double(queue.takeLongestWait()) / 1e9, requests: requests))
            state.last = decision
            return decision.rescale ? decision : nil
        }
    }

    private func record(_ decision: Autoscaler.Decision) {
        self.state.withLock { state in
            state.history.record(
                decision, now: Monotonic.seconds(), service: self.service.name, logger: self.logger,
                extra: ["deployment": "\(self.client.namespace)/\(self.settings.deployment)"])
            state.specReplicas = decision.desired
        }
    }

    func status() -> ScaleStatus {
        let views = self.service.serverViews()
        return self.state.withLock { state in
            let now = Monotonic.seconds()
            let replicas = state.members.sorted(by: { $0.key.description < $1.key.description }).map {
                endpoint, role -> ScaleStatus.Replica in
                let inRotation = views[endpoint]?.inRotation ?? false
                let sample = state.samples.first { $0.name == endpoint.description }
                return ScaleStatus.Replica(
                    address: endpoint.description, pid: nil,
                    state: role == .draining ? "draining" : inRotation ? "serving" : "starting",
                    detail: state.reachable ? "" : "API unreachable: as last known", restarts: 0, lastExit: nil,
                    upSeconds: now - (state.joined[endpoint] ?? now), cpuMillis: nil, memoryBytes: nil,
                    requestsPerSecond: sample?.requestsPerSecond, concurrency: sample?.concurrency,
                    p90Ms: sample?.p90.map { $0 * 1000 })
            }
            let ready = state.members.filter { $0.value == .ready && (views[$0.key]?.inRotation ?? false) }.count
            return ScaleStatus(
                service: self.service, current: state.specReplicas ?? 0,
                desired: state.last?.desired ?? state.specReplicas ?? 0, ready: ready, config: state.config,
                last: state.last, decisions: state.history.records(now: now), replicas: replicas)
        }
    }
}
