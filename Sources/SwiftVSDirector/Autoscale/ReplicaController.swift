import Foundation
import Logging
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// Drives one autoscaled service: the thin driver of two pure machines, `Autoscaler` (how many replicas, by HPA's
/// arithmetic) and `ReplicaSet` (which process to start, drain, stop or restart). Every 100 ms it reaps exited
/// replicas, moves the ones whose health check passed into `serving`, and lets drained ones stop; every
/// `sync_period` it samples each replica (CPU and memory from /proc, requests, concurrency and p90 from the
/// director's own counters) and runs the calculation. Each decision is one log line with its inputs.
public final class ReplicaController: ScaledController {
    public let service: VirtualService
    let logger: Logger

    /// CPU time of a replica's process at the last sample.
    struct CPU {
        var ticks: UInt64
        var time: Double
    }

    struct State {
        /// As in effect (the file's, with `adm scale` bounds applied).
        var config: AutoscaleConfig
        /// As the config file last gave it.
        var fileConfig: AutoscaleConfig
        var autoscaler: Autoscaler
        var replicas: ReplicaSet
        var processes: [Int: ManagedProcess] = [:]
        var cpu: [Int: CPU] = [:]
        var sampler = DirectorSampler<Int>()
        var lastEvaluation = -Double.infinity
        var requestsTotal: Int?
        var history = DecisionHistory()
        var last: Autoscaler.Decision?
        var samples: [Autoscaler.ReplicaSample] = []
        var stopping = false
    }

    private let state: Mutex<State>

    /// The process provider's settings, as at start (they change on restart only).
    let process: ProcessProviderConfig

    init(service: VirtualService, config: AutoscaleConfig, process provider: ProcessProviderConfig, logger: Logger) {
        self.service = service
        self.logger = logger
        self.process = provider
        self.state = Mutex(
            State(
                config: config, fileConfig: config, autoscaler: Autoscaler(config),
                replicas: ReplicaSet(
                    settings: .init(
                        ports: provider.ports, drainTimeout: config.drainTimeout, stopTimeout: config.stopTimeout,
                        restartDelay: provider.restartDelay, maxRestartDelay: provider.maxRestartDelay))))
    }

    /// Starts `min_replicas` replicas (none with scale to zero: the first request brings one).
    func start(now: Double) {
        self.state.withLock { state in
            let actions = state.replicas.scale(to: state.config.minReplicas, now: now)
            if state.config.minReplicas > 0 {
                self.logger.notice(
                    "autoscale",
                    metadata: [
                        "service": "\(self.service.name)", "from": "0", "to": "\(state.config.minReplicas)",
                        "reason": "min_replicas at start",
                    ])
            }
            self.perform(actions, &state, now: now)
            self.updateComing(state)
        }
    }

    /// A reloaded `autoscale` section: new bounds, metrics and behavior; the replicas stay.
    func reconfigure(_ config: AutoscaleConfig) {
        self.state.withLock { state in
            guard config != state.fileConfig else { return }
            state.fileConfig = config
            if config.provider != state.config.provider {
                self.logger.warning(
                    "autoscale.process changes on restart only", metadata: ["service": "\(self.service.name)"])
            }
            var kept = config
            kept.provider = state.config.provider
            state.config = kept
            state.autoscaler = Autoscaler(kept)
        }
    }

    var config: AutoscaleConfig { self.state.withLock { $0.config } }

    /// Runs every 100 ms.
    func tick(now: Double) {
        self.state.withLock { state in
            guard !state.stopping else {
                self.reap(&state, now: now)
                return
            }
            self.reap(&state, now: now)
            let views = self.service.serverViews()
            let host = self.process.host
            for replica in state.replicas.replicas.values where replica.phase == .starting {
                if let view = views[Self.endpoint(host, replica.port)], view.inRotation {
                    state.replicas.ready(port: replica.port, now: now)
                    self.logger.info(
                        "replica serving",
                        metadata: [
                            "service": "\(self.service.name)", "port": "\(replica.port)",
                            "after": "\(Self.seconds(now - replica.started))",
                        ])
                }
            }
            let connections = Self.connections(views, host: host, state.replicas)
            // A request waiting for a replica from zero need not wait for the period.
            let fromZero = state.replicas.current == 0 && self.service.queue.length.load(ordering: .relaxed) > 0
            if now - state.lastEvaluation >= state.config.syncPeriod || fromZero {
                state.lastEvaluation = now
                self.evaluate(&state, views: views, now: now)
            }
            self.perform(state.replicas.tick(now: now, connections: connections), &state, now: now)
            self.updateComing(state)
        }
    }

    /// The director stops: every replica leaves and gets SIGTERM, SIGKILL after `stop_timeout`. Returns when all
    /// have exited.
    func stop() async {
        let deadline = self.state.withLock { state -> Double in
            state.stopping = true
            let now = Monotonic.seconds()
            self.perform(state.replicas.stopAll(now: now), &state, now: now)
            return now + state.config.stopTimeout
        }
        while Monotonic.seconds() < deadline + 5 {
            let left = self.state.withLock { state -> Int in
                let now = Monotonic.seconds()
                self.reap(&state, now: now)
                if now >= deadline { self.perform(state.replicas.tick(now: now), &state, now: now) }
                return state.processes.count
            }
            if left == 0 { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: control

    func run() async {}

    public func setBounds(min: Int?, max: Int?) throws(ScaleError) {
        try self.state.withLock { state throws(ScaleError) in
            let newMin = min ?? state.config.minReplicas
            let newMax = max ?? state.config.maxReplicas
            guard newMax >= 1, newMax <= self.process.ports.count else {
                throw ScaleError(
                    "max must be 1...\(self.process.ports.count) (the ports of autoscale.process.ports)")
            }
            guard newMin >= 0, newMin <= newMax else { throw ScaleError("min must be 0...max (\(newMax))") }
            guard newMin > 0 || state.config.scaleToZeroAfter != nil else {
                throw ScaleError("min 0 needs autoscale.scale_to_zero_after in the config")
            }
            state.config.minReplicas = newMin
            state.config.maxReplicas = newMax
            state.autoscaler.setBounds(min: newMin, max: newMax)
            self.logger.notice(
                "autoscale bounds changed",
                metadata: ["service": "\(self.service.name)", "min": "\(newMin)", "max": "\(newMax)"])
        }
    }

    // MARK: one period

    private func evaluate(_ state: inout State, views: [Endpoint: VirtualService.ServerView], now: Double) {
        let host = self.process.host
        var samples: [Autoscaler.ReplicaSample] = []
        var requests = 0
        for index in state.replicas.replicas.keys.sorted() {
            let replica = state.replicas.replicas[index]!
            guard let process = state.processes[index] else { continue }
            let view = views[Self.endpoint(host, replica.port)]
            let ticks = ProcStat.ticks(of: process.pid)
            var sample = Autoscaler.ReplicaSample(name: "\(host):\(replica.port)", phase: .leaving)
            switch replica.phase {
            case .starting: sample.phase = .starting(since: replica.started)
            case .serving(let since): sample.phase = .ready(since: since, started: replica.started)
            default: break
            }
            sample.memoryBytes = ProcStat.residentBytes(of: process.pid)
            requests += state.sampler.sample(index, view: view, now: now, into: &sample)
            if let previous = state.cpu[index], now > previous.time, let ticks, ticks >= previous.ticks {
                let seconds = now - previous.time
                sample.cpuMillis = Int64(Double(ticks - previous.ticks) / ProcStat.ticksPerSecond / seconds * 1000)
            }
            state.cpu[index] = CPU(ticks: ticks ?? 0, time: now)
            samples.append(sample)
        }
        let queue = self.service.queue
        let observation = Autoscaler.Observation(
            now: now, current: state.replicas.current, replicas: samples,
            queueLength: queue.length.load(ordering: .relaxed), queueWait: Double(queue.takeLongestWait()) / 1e9,
            requests: requests + queue.served.load(ordering: .relaxed) - (state.requestsTotal ?? 0))
        state.requestsTotal = queue.served.load(ordering: .relaxed)
        state.samples = samples
        let decision = state.autoscaler.evaluate(observation)
        state.last = decision
        guard decision.rescale else { return }
        state.history.record(decision, now: now, service: self.service.name, logger: self.logger)
        let connections = Self.connections(views, host: host, state.replicas)
        self.perform(state.replicas.scale(to: decision.desired, now: now, connections: connections), &state, now: now)
    }

    // MARK: processes and the pool

    private func reap(_ state: inout State, now: Double) {
        for (index, process) in state.processes {
            guard let code = process.exitCode else { continue }
            state.processes[index] = nil
            state.sampler.forget(index)
            state.cpu[index] = nil
            let wasLeaving = state.replicas.replicas[index].map { !$0.active } ?? true
            let port = state.replicas.replicas[index]?.port ?? 0
            if !wasLeaving && !state.stopping {
                self.logger.warning(
                    "replica exited",
                    metadata: [
                        "service": "\(self.service.name)", "port": "\(port)", "pid": "\(process.pid)",
                        "status": "\(Self.describe(code))",
                    ])
            }
            self.perform(state.replicas.exited(index: index, status: code, now: now), &state, now: now)
        }
    }

    private func perform(_ actions: [ReplicaSet.Action], _ state: inout State, now: Double) {
        let provider = self.process
        for action in actions {
            switch action {
            case .spawn(let index, let port):
                let argv = provider.command.map { provider.expand($0, port: port, index: index) }
                var environment = ProcessEnvironment.current
                for (key, value) in provider.environment {
                    environment[key] = provider.expand(value, port: port, index: index)
                }
                let output: Spawn.Output =
                    provider.log.map { .file(provider.expand($0, port: port, index: index), append: true) } ?? .inherit
                do {
                    let process = try ManagedProcess(
                        argv, environment: environment, stdout: output,
                        stderr: provider.log == nil ? .inherit : .sameAsOutput, directory: provider.workingDirectory)
                    state.processes[index] = process
                    self.logger.info(
                        "replica started",
                        metadata: [
                            "service": "\(self.service.name)", "port": "\(port)", "pid": "\(process.pid)",
                        ])
                } catch {
                    self.logger.error(
                        "cannot start a replica",
                        metadata: ["service": "\(self.service.name)", "port": "\(port)", "error": "\(error)"])
                    self.perform(state.replicas.spawnFailed(index: index, now: now), &state, now: now)
                }
            case .join(let port):
                let server = RealServerConfig(address: Self.endpoint(provider.host, port), weight: provider.weight)
                do {
                    try self.service.addServer(server, managed: true)
                } catch .duplicate {
                    try? self.service.setWeight(server.address, provider.weight)
                } catch {
                    self.logger.error(
                        "cannot add a replica to the pool",
                        metadata: ["service": "\(self.service.name)", "error": "\(error)"])
                }
            case .drain(let port):
                try? self.service.setWeight(Self.endpoint(provider.host, port), 0)
            case .leave(let port):
                try? self.service.removeServer(Self.endpoint(provider.host, port))
            case .signal(let index, let signal):
                state.processes[index]?.signal(signal)
            }
        }
    }

    /// Requests wait for replicas while none serves but some are coming, or the service may scale from zero.
    private func updateComing(_ state: State) {
        let coming =
            !state.stopping && state.replicas.ready == 0
            && (state.replicas.current > 0 || state.config.minReplicas == 0)
        self.service.replicasComing.store(coming, ordering: .relaxed)
        if !coming { self.service.capacityChanged() }
    }

    static func endpoint(_ host: String, _ port: Int) -> Endpoint {
        (try? Endpoint(host: host, port: port)) ?? .loopback(port: port)
    }

    static func connections(
        _ views: [Endpoint: VirtualService.ServerView], host: String, _ replicas: ReplicaSet
    )
        -> [Int: Int]
    {
        var out: [Int: Int] = [:]
        for replica in replicas.replicas.values {
            out[replica.port] = views[Self.endpoint(host, replica.port)]?.active ?? 0
        }
        return out
    }

    static func describe(_ code: Int32) -> String { code > 128 ? "killed by signal \(code - 128)" : "exit \(code)" }
    static func seconds(_ value: Double) -> String { String(format: "%.2fs", value) }

    // MARK: status

    /// What `adm scale` shows.
    public func status() -> ScaleStatus {
        self.state.withLock { state in
            let now = Monotonic.seconds()
            let slowStart = self.service.config.slowStart
            let replicas = state.replicas.replicas.keys.sorted().map { index -> ScaleStatus.Replica in
                let replica = state.replicas.replicas[index]!
                var phase: String
                var detail = ""
                switch replica.phase {
                case .starting: phase = "starting"
                case .serving(let since): phase = now - since < slowStart ? "warming" : "serving"
                case .draining: phase = "draining"
                case .stopping(_, let killed): phase = killed ? "killing" : "stopping"
                case .crashed(let status, let restartAt):
                    phase = "crashed"
                    detail = "\(Self.describe(status)), restart in \(Self.seconds(max(0, restartAt - now)))"
                }
                let sample = state.samples.first { $0.name.hasSuffix(":\(replica.port)") }
                return ScaleStatus.Replica(
                    address: "\(self.process.host):\(replica.port)", pid: state.processes[index]?.pid,
                    state: phase, detail: detail, restarts: replica.restarts,
                    lastExit: replica.lastExit.map(Self.describe), upSeconds: now - replica.started,
                    cpuMillis: sample?.cpuMillis, memoryBytes: sample?.memoryBytes,
                    requestsPerSecond: sample?.requestsPerSecond, concurrency: sample?.concurrency,
                    p90Ms: sample?.p90.map { $0 * 1000 })
            }
            return ScaleStatus(
                service: self.service, current: state.replicas.current, desired: state.replicas.desired,
                ready: state.replicas.ready, config: state.config, last: state.last,
                decisions: state.history.records(now: now), replicas: replicas)
        }
    }
}
