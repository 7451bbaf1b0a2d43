#if canImport(Glibc)
import SwiftVSCore
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A process a scenario starts, stops and injects faults into.
public struct ScenarioProcess: Sendable, Equatable {
    public var name: String
    /// Run as `/bin/sh -c 'exec COMMAND'`, so the PID is the command's own.
    public var command: String
    /// How to know it is ready: an HTTP URL answering any status, a TCP port accepting, or a fixed delay.
    public var ready: Readiness
    /// Seconds to wait for readiness (default 15).
    public var readyTimeout: Double = 15
    /// Signal for `stop` (default TERM); KILL follows after `stopTimeout` seconds (default 10).
    public var stopSignal: Int32 = SIGTERM
    public var stopTimeout: Double = 10
    /// Sample its CPU during load phases (default true).
    public var watch = true

    public enum Readiness: Sendable, Equatable {
        case http(BenchTarget)
        case tcp(host: String, port: Int)
        case delay(Double)
    }
}

/// What a scenario step or a fault does.
public enum ScenarioAction: Sendable, Equatable {
    case start([String])
    case stop([String])
    case kill([String])
    case signal(process: String, signal: Int32)
    case wait(Double)
    /// A shell command run to completion; with `check`, a non-zero exit fails the scenario.
    case run(command: String, check: Bool)
    case load(ScenarioLoad)
    case sweep(ScenarioSweep)
    case compare(name: String, baseline: String, candidate: String)
    /// A JMeter test plan run in non-GUI mode, its results folded in as a phase.
    case jmeter(JMeterStep)
    /// Conference signaling load (`swiftvs bench conference`), as a phase.
    case conference(ConferenceStep)
    /// Steps run at the same time (JMeter on the web tier while signaling is loaded); the run goes on when all end.
    indirect case parallel([ScenarioAction])

    public var label: String {
        switch self {
        case .start(let names): return "start \(names.joined(separator: ", "))"
        case .stop(let names): return "stop \(names.joined(separator: ", "))"
        case .kill(let names): return "kill \(names.joined(separator: ", "))"
        case .signal(let process, let signal): return "signal \(Signals.name(signal)) \(process)"
        case .wait(let seconds): return "wait \(BenchFormat.number(seconds))s"
        case .run(let command, _): return "run \(command)"
        case .load(let load): return "load \(load.name)"
        case .sweep(let sweep): return "sweep \(sweep.name)"
        case .compare(let name, _, _): return "compare \(name)"
        case .jmeter(let step): return "jmeter \(step.name)"
        case .conference(let step): return "conference \(step.name)"
        case .parallel(let steps): return "parallel (\(steps.map(\.label).joined(separator: ", ")))"
        }
    }
}

public struct ScenarioFault: Sendable, Equatable {
    /// Seconds after the load phase started.
    public var at: Double
    public var action: ScenarioAction
}

public struct ScenarioLoad: Sendable, Equatable {
    public var name: String
    public var spec: LoadSpec
    /// Processes whose CPU to sample (default: every process of the scenario with `watch: true`).
    public var watch: [String]?
    public var faults: [ScenarioFault] = []
    /// A director's admin API (`host:port`) whose autoscaler to read during the phase.
    public var replicasFrom: String? = nil
}

/// `jmeter:` in a scenario: JMeter as an outside client, as the conference study used it.
public struct JMeterStep: Sendable, Equatable {
    public var name: String
    /// The test plan (.jmx).
    public var plan: String
    /// `-Jname=value` for the plan's `${__P(name,default)}`.
    public var properties: [String: String] = [:]
    /// JMeter is stopped (and the step fails) if it runs longer than this.
    public var timeout: Double = 300
    /// JMeter's home (`bin/ApacheJMeter.jar`); default /usr/share/jmeter (Debian).
    public var home = "/usr/share/jmeter"
    /// Processes whose CPU and memory to sample (default: every process of the scenario with `watch: true`).
    public var watch: [String]?
    /// A director's admin API (`host:port`) whose autoscaler to read while JMeter runs.
    public var replicasFrom: String?
}

/// `conference:` in a scenario: `swiftvs bench conference` as a phase.
public struct ConferenceStep: Sendable, Equatable {
    public var name: String
    public var spec: ConferenceLoadSpec
    public var watch: [String]?
}

public struct ScenarioSweep: Sendable, Equatable {
    public var name: String
    /// The spec of each step; its model's rate and its duration are set per step.
    public var spec: LoadSpec
    public var rates: [Double]
    public var maxLossPercent: Double = 1
    public var refine: Int = 0
    /// Seconds of rest between steps (default 1), so one step's backlog does not spill into the next.
    public var pause: Double = 1
    public var watch: [String]?
}

/// Processes grouped as the machines of a deployment (`master: [director]`, `worker-1: [api, signal-1]`): their CPU
/// and memory are reported per node, as the conference study reported each worker node and the master.
public struct ScenarioNode: Sendable, Equatable {
    public var name: String
    public var processes: [String]
}

public struct Scenario: Sendable, Equatable {
    public var title: String
    public var processes: [ScenarioProcess]
    public var steps: [ScenarioAction]
    public var json: String?
    public var html: String?
    public var nodes: [ScenarioNode] = []

    public func process(_ name: String) -> ScenarioProcess? { self.processes.first { $0.name == name } }
}

public enum Signals {
    static let table: [(String, Int32)] = [
        ("TERM", SIGTERM), ("KILL", SIGKILL), ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT),
        ("USR1", SIGUSR1), ("USR2", SIGUSR2), ("STOP", SIGSTOP), ("CONT", SIGCONT),
    ]

    public static func parse(_ text: String) -> Int32? {
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        return self.table.first { $0.0 == name }?.1 ?? Int32(text)
    }

    public static func name(_ signal: Int32) -> String { self.table.first { $0.1 == signal }?.0 ?? String(signal) }
}
