import NIOCore
import NIOPosix
import Synchronization
import SwiftVSCore
import SwiftVSSystem

#if canImport(Glibc)
import Glibc
#endif

/// Runs a scenario's steps in order: starts and stops processes (waiting until each is ready), runs load phases and
/// rate sweeps with faults at their times, and gathers one report. Whatever happens, every process it started is
/// stopped before `run` returns.
public final class ScenarioRunner: Sendable {
    let scenario: Scenario
    let group: EventLoopGroup
    let logDirectory: String
    let say: @Sendable (String) -> Void
    let progress: (@Sendable (String) -> Void)?
    private let running = Mutex<[String: ManagedProcess]>([:])

    public struct StepFailed: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameters:
    ///   - logDirectory: each process's output goes to `<dir>/<name>.log`.
    ///   - say: one line per step and fault, for the user.
    public init(
        scenario: Scenario, group: EventLoopGroup, logDirectory: String,
        say: @escaping @Sendable (String) -> Void, progress: (@Sendable (String) -> Void)?
    ) {
        self.scenario = scenario
        self.group = group
        self.logDirectory = logDirectory
        self.say = say
        self.progress = progress
    }

    /// Runs every step; a step that fails ends the run early, with the reason in `report.notes`.
    public func run(into report: inout BenchReport) async -> Bool {
        var ok = true
        do {
            for step in self.scenario.steps {
                try await self.perform(step, report: &report, phase: nil)
            }
        } catch {
            report.notes.append("\(error)")
            self.say("scenario stopped: \(error)")
            ok = false
        }
        await self.stopAll()
        return ok
    }

    func perform(_ action: ScenarioAction, report: inout BenchReport, phase: LoadPhase?) async throws {
        let when = phase == nil ? "" : "  (fault) "
        switch action {
        case .start(let names):
            for name in names {
                phase?.mark("start \(name)")
                try await self.start(name, prefix: when)
            }
        case .stop(let names):
            for name in names {
                guard let process = self.running.withLock({ $0[name] }), let spec = self.scenario.process(name) else {
                    continue
                }
                self.say("\(when)stop \(name) (\(Signals.name(spec.stopSignal)), pid \(process.pid))")
                phase?.mark("stop \(name)")
                let code = await process.stop(signal: spec.stopSignal, seconds: spec.stopTimeout)
                self.say("\(when)\(name) exited with \(code)")
            }
        case .kill(let names):
            for name in names {
                guard let process = self.running.withLock({ $0[name] }) else { continue }
                self.say("\(when)kill \(name) (SIGKILL, pid \(process.pid))")
                phase?.mark("kill \(name)")
                process.signal(SIGKILL)
                await process.wait(seconds: 5)
            }
        case .signal(let name, let signal):
            guard let process = self.running.withLock({ $0[name] }) else { return }
            self.say("\(when)signal \(Signals.name(signal)) \(name) (pid \(process.pid))")
            phase?.mark("\(Signals.name(signal)) \(name)")
            process.signal(signal)
        case .wait(let seconds):
            self.say("wait \(BenchFormat.number(seconds)) s")
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        case .run(let command, let check):
            self.say("\(when)run \(command)")
            phase?.mark("run \(command)")
            let process = try ManagedProcess.shell(command, logPath: "\(self.logDirectory)/run.log")
            let code = await process.wait(seconds: 600) ?? -1
            if check && code != 0 {
                throw StepFailed(description: "'\(command)' exited with \(code); output in \(process.logPath)")
            }
        case .load(let load):
            report.phases.append(try await self.load(load))
        case .sweep(let sweep):
            report.sweeps.append(try await self.sweep(sweep))
        case .jmeter(let step):
            report.phases.append(self.withNodes(try await self.jmeter(step)))
        case .conference(let step):
            self.say(
                "conference \(step.name): \(step.spec.rooms) rooms × \(step.spec.participants) on \(step.spec.url)")
            let result = await ConferenceLoad.run(step.spec, watch: self.watchTargets(step.watch), progress: nil)
            self.say(
                "\(step.name): \(result.joined) joined, \(result.joinFailed) failed; delivery p99 "
                    + "\(BenchFormat.ms(result.delivery.p99Ms)) ms")
            report.phases.append(self.withNodes(result.phase(name: step.name)))
        case .parallel(let steps):
            // Each step fills a report of its own; their phases join this one in the order written.
            let parts = try await withThrowingTaskGroup(of: (Int, BenchReport).self) { group in
                for (i, step) in steps.enumerated() {
                    group.addTask {
                        var part = BenchReport(title: "", startedAt: "", command: "", cores: 0)
                        try await self.perform(step, report: &part, phase: nil)
                        return (i, part)
                    }
                }
                var parts: [(Int, BenchReport)] = []
                for try await part in group { parts.append(part) }
                return parts.sorted { $0.0 < $1.0 }.map(\.1)
            }
            for part in parts {
                report.phases += part.phases
                report.sweeps += part.sweeps
            }
        case .compare(let name, let baseline, let candidate):
            let b = report.sweeps.first { $0.name == baseline }?.bestRate
            let c = report.sweeps.first { $0.name == candidate }?.bestRate
            let comparison = ComparisonReport(
                name: name, baseline: baseline, candidate: candidate,
                baselineRate: b, candidateRate: c)
            report.comparisons.append(comparison)
            self.say(comparison.text().trimmingCharacters(in: "\n"))
        }
    }

    // MARK: processes

    func start(_ name: String, prefix: String = "") async throws {
        guard let spec = self.scenario.process(name) else { return }
        if let old = self.running.withLock({ $0[name] }), old.isRunning {
            self.say("\(name) is already running (pid \(old.pid))")
            return
        }
        let process = try ManagedProcess.shell(spec.command, logPath: "\(self.logDirectory)/\(name).log")
        self.running.withLock { $0[name] = process }
        self.say("\(prefix)start \(name) (pid \(process.pid)): \(spec.command)")
        let deadline = ContinuousClock.now + .milliseconds(Int(spec.readyTimeout * 1000))
        while true {
            if let code = process.exitCode {
                throw StepFailed(
                    description: "\(name) exited with \(code) before it was ready; its log "
                        + "(\(process.logPath)) ends:\n\(process.logTail())")
            }
            if await self.isReady(spec.ready) { break }
            if ContinuousClock.now > deadline {
                throw StepFailed(
                    description: "\(name) was not ready within \(BenchFormat.number(spec.readyTimeout)) s "
                        + "(ready: \(spec.ready)); its log (\(process.logPath)) ends:\n\(process.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func isReady(_ readiness: ScenarioProcess.Readiness) async -> Bool {
        switch readiness {
        case .delay(let seconds):
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return true
        case .tcp(let host, let port):
            guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return false }
            let channel = try? await ClientBootstrap(group: self.group).connectTimeout(.seconds(1))
                .connect(to: address).get()
            try? await channel?.close()
            return channel != nil
        case .http(let target):
            // One request through the bench's own client: any HTTP status means the server is up.
            var spec = LoadSpec(targets: [target])
            spec.requests = 1
            spec.connections = 1
            spec.threads = 1
            spec.responseTimeout = 1
            spec.connectTimeout = 1
            let phase = LoadPhase(name: "ready", spec: spec, group: self.group)
            guard let result = try? await phase.run() else { return false }
            return result.counters.statusClasses.reduce(0, +) > 0
        }
    }

    func stopAll() async {
        let all = self.running.withLock { $0 }
        for (name, process) in all where process.isRunning {
            let spec = self.scenario.process(name)
            await process.stop(signal: spec?.stopSignal ?? SIGTERM, seconds: spec?.stopTimeout ?? 10)
        }
    }

    /// The phase with the scenario's nodes: its processes' CPU and memory summed per node.
    func withNodes(_ phase: PhaseReport) -> PhaseReport {
        var phase = phase
        phase.nodes = self.scenario.nodes.map { node in
            CPUSeries.sum(name: node.name, of: phase.cpu.filter { node.processes.contains($0.name) })
        }
        return phase
    }

    func watchTargets(_ names: [String]?) -> [WatchTarget] {
        let chosen = names ?? self.scenario.processes.filter(\.watch).map(\.name)
        return [WatchTarget.current]
            + chosen.map { name in
                WatchTarget(
                    name: name,
                    resolve: { [weak self] in
                        guard let process = self?.running.withLock({ $0[name] }), process.isRunning else { return [] }
                        return [process.pid]
                    })
            }
    }

    // MARK: load

    func load(_ load: ScenarioLoad) async throws -> PhaseReport {
        self.say("load \(load.name): \(load.spec.model.label), \(load.spec.targets.map(\.url).joined(separator: " "))")
        let phase = LoadPhase(
            name: load.name, spec: load.spec, group: self.group,
            watch: self.watchTargets(load.watch), replicasFrom: load.replicasFrom, progress: self.progress)
        let faults = load.faults
        let injector = Task {
            let start = ContinuousClock.now
            var ignored = BenchReport(title: "", startedAt: "", command: "", cores: 0)
            for fault in faults {
                try await Task.sleep(until: start + .milliseconds(Int(fault.at * 1000)), clock: .continuous)
                do {
                    try await self.perform(fault.action, report: &ignored, phase: phase)
                } catch {
                    self.say("  fault '\(fault.action.label)' failed: \(error)")
                    phase.mark("\(fault.action.label) (failed: \(error))")
                }
            }
        }
        var result: PhaseReport
        do {
            result = try await phase.run()
        } catch {
            injector.cancel()
            throw error
        }
        injector.cancel()
        _ = await injector.result
        result = self.withNodes(result)
        self.say(
            "\(load.name): \(BenchFormat.number(result.requestsPerSecond, decimals: 1)) req/s, "
                + "loss \(BenchFormat.fixed(result.lossPercent, 2))% (\(result.counters.failed) of \(result.counters.attempted)), "
                + "p99 \(BenchFormat.ms(result.latency.p99Ms)) ms")
        return result
    }

    func sweep(_ sweep: ScenarioSweep) async throws -> SweepReport {
        var state = RateSweep(rates: sweep.rates, maxLossPercent: sweep.maxLossPercent, refineSteps: sweep.refine)
        var steps: [SweepStep] = []
        self.say("sweep \(sweep.name): \(sweep.spec.targets.map(\.url).joined(separator: " "))")
        while let rate = state.next() {
            var spec = sweep.spec
            spec.model = .open(ratePerSecond: rate)
            let phase = LoadPhase(
                name: "\(sweep.name)@\(Int(rate))", spec: spec, group: self.group,
                watch: self.watchTargets(sweep.watch))
            let result = try await phase.run()
            let ok = state.record(offered: rate, achieved: result.requestsPerSecond, lossPercent: result.lossPercent)
            var cpu: [String: Double] = [:]
            for series in result.cpu { cpu[series.name] = series.meanPercent }
            if !result.machineCPU.samples.isEmpty { cpu["machine"] = result.machineCPU.meanPercent }
            steps.append(
                SweepStep(
                    offeredRate: rate, achievedRate: result.requestsPerSecond,
                    lossPercent: result.lossPercent, p99Ms: result.latency.p99Ms, sustained: ok,
                    cpuPercent: cpu))
            self.say(
                "  \(BenchFormat.number(rate, decimals: 0)) req/s offered: "
                    + "\(BenchFormat.number(result.requestsPerSecond, decimals: 0)) achieved, "
                    + "loss \(BenchFormat.fixed(result.lossPercent, 2))%, p99 \(BenchFormat.ms(result.latency.p99Ms)) ms"
                    + (ok ? "" : "  (not sustained)"))
            if sweep.pause > 0 { try await Task.sleep(for: .milliseconds(Int(sweep.pause * 1000))) }
        }
        let report = SweepReport(
            name: sweep.name, url: sweep.spec.targets.map(\.url).joined(separator: " "),
            maxLossPercent: sweep.maxLossPercent, steps: steps)
        return report
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.last == set { s = s.dropLast() }
        while s.first == set { s = s.dropFirst() }
        return String(s)
    }
}

extension ManagedProcess {
    /// The last `lines` lines of the log.
    func logTail(lines: Int = 10) -> String {
        guard self.logPath != "/dev/null", let text = ProcStat.read(self.logPath) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
