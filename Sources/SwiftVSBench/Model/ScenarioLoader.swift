import SwiftVSCore
import SwiftVSConfigKit
import Yams

/// Reads a scenario file: `vars`, `processes`, `steps`, `report`. Like the director's config, every problem is
/// reported with its key path and line, and `${name}` in any value is replaced from `vars` (which `--set` overrides).
public enum ScenarioLoader {
    /// - Parameters:
    ///   - builtins: variables the runner provides (`swiftvs`, `scenario_dir`), overridable by the file's vars.
    ///   - overrides: `--set name=value`, which win over everything.
    ///   - defaultThreads: event loops for load phases that do not say.
    public static func load(
        yaml: String, source: String, builtins: [String: String], overrides: [String: String],
        defaultThreads: Int
    ) throws(ConfigError) -> Scenario {
        let root = try NodeReader.compose(yaml, source: source, whenEmpty: "the file is empty; it needs 'steps'")
        var reader = ScenarioReader(reader: NodeReader(), defaultThreads: defaultThreads)
        let scenario = reader.scenario(root, builtins: builtins, overrides: overrides)
        guard reader.reader.problems.isEmpty, let scenario else {
            throw ConfigError(source: source, problems: reader.reader.problems)
        }
        return scenario
    }
}

struct ScenarioReader {
    var reader: NodeReader
    let defaultThreads: Int
    var processNames: [String] = []

    mutating func scenario(_ root: Node, builtins: [String: String], overrides: [String: String]) -> Scenario? {
        guard
            let top = self.reader.mapping(
                root, "", allowed: ["title", "vars", "processes", "nodes", "steps", "report"])
        else {
            return nil
        }
        // Variables first: the file's vars may use the builtins, and --set wins over both.
        var variables = builtins
        self.reader.variables = builtins
        if let node = top["vars"], case .mapping(let mapping) = node {
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode else { continue }
                if overrides[key.string] != nil { continue }
                if let value = self.reader.scalar(valueNode, "vars.\(key.string)") { variables[key.string] = value }
                self.reader.variables = variables
            }
        } else if let node = top["vars"] {
            self.reader.report("vars", node, "expected a mapping of name: value")
        }
        for (key, value) in overrides { variables[key] = value }
        self.reader.variables = variables

        let title = top["title"].flatMap { self.reader.string($0, "title") } ?? "scenario"
        var processes: [ScenarioProcess] = []
        if let node = top["processes"] {
            if case .mapping(let mapping) = node {
                for (keyNode, value) in mapping {
                    guard case .scalar(let key) = keyNode else { continue }
                    self.processNames.append(key.string)
                    if let process = self.process(key.string, value, "processes.\(key.string)") {
                        processes.append(process)
                    }
                }
            } else {
                self.reader.report("processes", node, "expected a mapping of name: {command, ready}")
            }
        }
        var steps: [ScenarioAction] = []
        guard let stepsNode = top["steps"], case .sequence(let sequence) = stepsNode else {
            self.reader.report("steps", top["steps"], "a list of steps is required")
            return nil
        }
        var sweeps: [String] = []
        for (i, node) in sequence.enumerated() {
            if let step = self.action(node, "steps[\(i)]", inFault: false) {
                if case .sweep(let sweep) = step { sweeps.append(sweep.name) }
                if case .compare(_, let baseline, let candidate) = step {
                    for name in [baseline, candidate] where !sweeps.contains(name) {
                        self.reader.report(
                            "steps[\(i)].compare", node,
                            "'\(name)' is not a sweep that runs before this step")
                    }
                }
                steps.append(step)
            }
        }
        var json: String?
        var html: String?
        if let node = top["report"], let report = self.reader.mapping(node, "report", allowed: ["json", "html"]) {
            json = report["json"].flatMap { self.reader.string($0, "report.json") }
            html = report["html"].flatMap { self.reader.string($0, "report.html") }
        }
        var nodes: [ScenarioNode] = []
        if let node = top["nodes"] {
            if case .mapping(let mapping) = node {
                var placed: [String: String] = [:]
                for (keyNode, value) in mapping {
                    guard case .scalar(let key) = keyNode else { continue }
                    let path = "nodes.\(key.string)"
                    guard case .sequence(let items) = value else {
                        self.reader.report(path, value, "expected a list of process names, like [director]")
                        continue
                    }
                    var members: [String] = []
                    for (i, item) in items.enumerated() {
                        guard let name = self.reader.string(item, "\(path)[\(i)]") else { continue }
                        if !self.processNames.contains(name) {
                            self.reader.report(
                                "\(path)[\(i)]", item,
                                "no process '\(name)'; processes: \(self.processNames.joined(separator: ", "))")
                        } else if let other = placed[name] {
                            self.reader.report("\(path)[\(i)]", item, "'\(name)' is already on node '\(other)'")
                        } else {
                            placed[name] = key.string
                            members.append(name)
                        }
                    }
                    nodes.append(ScenarioNode(name: key.string, processes: members))
                }
            } else {
                self.reader.report("nodes", node, "expected a mapping of node: [process, ...]")
            }
        }
        return Scenario(
            title: title, processes: processes, steps: steps, json: json, html: html, nodes: nodes)
    }

    mutating func process(_ name: String, _ node: Node, _ path: String) -> ScenarioProcess? {
        guard
            let map = self.reader.mapping(
                node, path,
                allowed: [
                    "command", "ready", "ready_timeout", "stop_signal", "stop_timeout", "watch",
                ])
        else { return nil }
        guard let commandNode = map["command"] else {
            self.reader.report("\(path).command", node, "required: the command line to run")
            return nil
        }
        guard let command = self.reader.string(commandNode, "\(path).command") else { return nil }
        var readiness = ScenarioProcess.Readiness.delay(0.5)
        if let readyNode = map["ready"], let text = self.reader.string(readyNode, "\(path).ready") {
            if text.hasPrefix("http://") {
                do { readiness = .http(try BenchTarget.parse(text)) } catch {
                    self.reader.report("\(path).ready", readyNode, error.description)
                }
            } else if text.hasPrefix("tcp://") {
                let rest = String(text.dropFirst(6))
                if let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
                    (1...65535).contains(port)
                {
                    readiness = .tcp(host: String(rest[..<colon]), port: port)
                } else {
                    self.reader.report("\(path).ready", readyNode, "expected tcp://HOST:PORT, got '\(text)'")
                }
            } else if let seconds = NodeReader.parseDuration(text), seconds >= 0 {
                readiness = .delay(seconds)
            } else {
                self.reader.report(
                    "\(path).ready", readyNode,
                    "expected an http:// URL, tcp://HOST:PORT or a duration, got '\(text)'")
            }
        }
        var process = ScenarioProcess(name: name, command: command, ready: readiness)
        if let n = map["ready_timeout"], let v = self.reader.duration(n, "\(path).ready_timeout") {
            process.readyTimeout = v
        }
        if let n = map["stop_timeout"], let v = self.reader.duration(n, "\(path).stop_timeout") {
            process.stopTimeout = v
        }
        if let n = map["stop_signal"], let v = self.signal(n, "\(path).stop_signal") { process.stopSignal = v }
        if let n = map["watch"], let v = self.reader.bool(n, "\(path).watch") { process.watch = v }
        return process
    }

    mutating func signal(_ node: Node, _ path: String) -> Int32? {
        guard let text = self.reader.string(node, path) else { return nil }
        guard let signal = Signals.parse(text) else {
            self.reader.report(
                path, node, "unknown signal '\(text)'; use TERM, KILL, HUP, INT, USR1, USR2, STOP or CONT")
            return nil
        }
        return signal
    }

    /// A list of process names (or one name), each checked against `processes`.
    mutating func names(_ node: Node, _ path: String) -> [String]? {
        var names: [(String, Node)] = []
        if case .sequence(let sequence) = node {
            for (i, item) in sequence.enumerated() {
                if let name = self.reader.string(item, "\(path)[\(i)]") { names.append((name, item)) }
            }
        } else if let name = self.reader.string(node, path) {
            names.append((name, node))
        }
        var out: [String] = []
        for (name, item) in names {
            guard self.processNames.contains(name) else {
                let hint = NodeReader.suggest(name, self.processNames).map { " (did you mean '\($0)'?)" } ?? ""
                self.reader.report(
                    path, item,
                    "no process named '\(name)'\(hint); defined: \(self.processNames.joined(separator: ", "))")
                continue
            }
            out.append(name)
        }
        return out.isEmpty ? nil : out
    }

    static let actionKeys = [
        "start", "stop", "kill", "signal", "wait", "run", "load", "sweep", "compare", "jmeter", "conference",
        "parallel",
    ]
    static let faultKeys = ["start", "stop", "kill", "signal", "run"]

    mutating func action(_ node: Node, _ path: String, inFault: Bool) -> ScenarioAction? {
        let allowed = inFault ? Self.faultKeys + ["at"] : Self.actionKeys
        guard let map = self.reader.mapping(node, path, allowed: allowed) else { return nil }
        let present = map.keys.filter { $0 != "at" }
        guard present.count == 1, let key = present.first, let value = map[key] else {
            let kinds = (inFault ? Self.faultKeys : Self.actionKeys).joined(separator: ", ")
            self.reader.report(path, node, "each \(inFault ? "fault" : "step") is exactly one of: \(kinds)")
            return nil
        }
        let p = "\(path).\(key)"
        switch key {
        case "start": return self.names(value, p).map { .start($0) }
        case "stop": return self.names(value, p).map { .stop($0) }
        case "kill": return self.names(value, p).map { .kill($0) }
        case "signal":
            guard let m = self.reader.mapping(value, p, allowed: ["process", "signal"]),
                let processNode = m["process"], let signalNode = m["signal"]
            else {
                self.reader.report(p, value, "expected {process: NAME, signal: HUP}")
                return nil
            }
            guard let name = self.names(processNode, "\(p).process")?.first,
                let signal = self.signal(signalNode, "\(p).signal")
            else { return nil }
            return .signal(process: name, signal: signal)
        case "wait":
            return self.reader.duration(value, p).map { .wait($0) }
        case "run":
            if case .mapping = value {
                guard let m = self.reader.mapping(value, p, allowed: ["command", "check"]),
                    let c = m["command"], let command = self.reader.string(c, "\(p).command")
                else { return nil }
                let check = m["check"].flatMap { self.reader.bool($0, "\(p).check") } ?? true
                return .run(command: command, check: check)
            }
            return self.reader.string(value, p).map { .run(command: $0, check: true) }
        case "load":
            return self.load(value, p).map { .load($0) }
        case "sweep":
            return self.sweep(value, p).map { .sweep($0) }
        case "compare":
            guard let m = self.reader.mapping(value, p, allowed: ["name", "baseline", "candidate"]),
                let b = m["baseline"].flatMap({ self.reader.string($0, "\(p).baseline") }),
                let c = m["candidate"].flatMap({ self.reader.string($0, "\(p).candidate") })
            else {
                self.reader.report(p, value, "expected {baseline: SWEEP, candidate: SWEEP, name: TEXT}")
                return nil
            }
            let name = m["name"].flatMap { self.reader.string($0, "\(p).name") } ?? "\(c) vs \(b)"
            return .compare(name: name, baseline: b, candidate: c)
        case "jmeter":
            guard
                let m = self.reader.mapping(
                    value, p, allowed: ["name", "plan", "properties", "timeout", "home", "watch", "replicas_from"])
            else { return nil }
            guard let plan = m["plan"].flatMap({ self.reader.string($0, "\(p).plan") }) else {
                self.reader.report("\(p).plan", value, "required: the test plan (.jmx) to run")
                return nil
            }
            var step = JMeterStep(
                name: m["name"].flatMap { self.reader.string($0, "\(p).name") } ?? "jmeter", plan: plan)
            if let node = m["properties"] {
                if case .mapping(let pairs) = node {
                    for (keyNode, valueNode) in pairs {
                        guard case .scalar(let key) = keyNode,
                            let text = self.reader.scalar(valueNode, "\(p).properties.\(key.string)")
                        else { continue }
                        step.properties[key.string] = text
                    }
                } else {
                    self.reader.report("\(p).properties", node, "expected a mapping of name: value (-Jname=value)")
                }
            }
            if let node = m["timeout"], let seconds = self.reader.duration(node, "\(p).timeout") {
                step.timeout = seconds
            }
            if let node = m["home"], let home = self.reader.string(node, "\(p).home") { step.home = home }
            step.watch = m["watch"].flatMap { self.names($0, "\(p).watch") }
            step.replicasFrom = m["replicas_from"].flatMap { self.reader.string($0, "\(p).replicas_from") }
            return .jmeter(step)
        case "conference":
            guard
                let m = self.reader.mapping(
                    value, p,
                    allowed: [
                        "name", "url", "rooms", "participants", "ramp", "duration", "rate", "join_timeout",
                        "room_prefix", "watch",
                    ])
            else { return nil }
            guard let url = m["url"].flatMap({ self.reader.string($0, "\(p).url") }) else {
                self.reader.report("\(p).url", value, "required: ws://HOST:PORT of the signal service or the director")
                return nil
            }
            let rooms = m["rooms"].flatMap { self.reader.int($0, "\(p).rooms", 1...100_000) } ?? 100
            let participants = m["participants"].flatMap { self.reader.int($0, "\(p).participants", 1...16) } ?? 4
            let ramp = m["ramp"].flatMap { self.reader.duration($0, "\(p).ramp") } ?? 10
            let duration = m["duration"].flatMap { self.reader.duration($0, "\(p).duration") } ?? 30
            var spec: ConferenceLoadSpec
            do {
                spec = try ConferenceLoadSpec(
                    url: url, rooms: rooms, participants: participants, ramp: ramp, duration: duration)
            } catch {
                self.reader.report("\(p).url", m["url"], error.description)
                return nil
            }
            if let node = m["rate"], let text = self.reader.scalar(node, "\(p).rate") {
                if let rate = Double(text), (0...100).contains(rate) {
                    spec.rate = rate
                } else {
                    self.reader.report("\(p).rate", node, "chat messages per participant per second, 0...100")
                }
            }
            if let node = m["join_timeout"], let v = self.reader.duration(node, "\(p).join_timeout") {
                spec.joinTimeout = v
            }
            if let node = m["room_prefix"], let v = self.reader.string(node, "\(p).room_prefix") { spec.roomPrefix = v }
            let name = m["name"].flatMap { self.reader.string($0, "\(p).name") } ?? "conference"
            return .conference(
                ConferenceStep(name: name, spec: spec, watch: m["watch"].flatMap { self.names($0, "\(p).watch") }))
        case "parallel":
            guard case .sequence(let items) = value, !items.isEmpty else {
                self.reader.report(p, value, "expected a list of steps to run at the same time")
                return nil
            }
            var steps: [ScenarioAction] = []
            for (i, item) in items.enumerated() {
                guard let step = self.action(item, "\(p)[\(i)]", inFault: false) else { continue }
                switch step {
                case .load, .jmeter, .conference, .wait, .run: steps.append(step)
                default:
                    self.reader.report(
                        "\(p)[\(i)]", item, "only load, jmeter, conference, wait and run run in parallel")
                }
            }
            return .parallel(steps)
        default:
            return nil
        }
    }

    static let loadKeys = [
        "name", "url", "connections", "rate", "keepalive", "duration", "requests", "method",
        "headers", "body", "timeout", "connect_timeout", "threads", "interval", "watch",
    ]

    /// The options a load phase and a sweep share, as a `LoadSpec`.
    mutating func spec(_ map: [String: Node], _ path: String, node: Node) -> LoadSpec? {
        var targets: [BenchTarget] = []
        switch map["url"] {
        case nil:
            self.reader.report("\(path).url", node, "required: the URL (or a list of URLs) to load")
        case .sequence(let sequence)?:
            for (i, item) in sequence.enumerated() {
                if let text = self.reader.string(item, "\(path).url[\(i)]") {
                    do { targets.append(try BenchTarget.parse(text)) } catch {
                        self.reader.report("\(path).url[\(i)]", item, error.description)
                    }
                }
            }
        case let urlNode?:
            if let text = self.reader.string(urlNode, "\(path).url") {
                do { targets.append(try BenchTarget.parse(text)) } catch {
                    self.reader.report("\(path).url", urlNode, error.description)
                }
            }
        }
        guard !targets.isEmpty else { return nil }
        var spec = LoadSpec(targets: targets)
        spec.threads = self.defaultThreads
        if let n = map["keepalive"], let v = self.reader.bool(n, "\(path).keepalive") { spec.keepAlive = v }
        if let n = map["rate"], let v = self.reader.int(n, "\(path).rate", 1...10_000_000) {
            spec.model = .open(ratePerSecond: Double(v))
        }
        spec.connections = (spec.model != .closed && !spec.keepAlive) ? 1000 : 64
        if let n = map["connections"], let v = self.reader.int(n, "\(path).connections", 1...100_000) {
            spec.connections = v
        }
        if let n = map["duration"], let v = self.reader.duration(n, "\(path).duration") { spec.duration = v }
        if let n = map["requests"], let v = self.reader.int(n, "\(path).requests", 1...1_000_000_000) {
            spec.requests = v
        }
        if let n = map["method"], let v = self.reader.string(n, "\(path).method") { spec.method = v.uppercased() }
        if let n = map["body"], let v = self.reader.scalar(n, "\(path).body") { spec.body = Array(v.utf8) }
        if let n = map["timeout"], let v = self.reader.duration(n, "\(path).timeout") { spec.responseTimeout = v }
        if let n = map["connect_timeout"], let v = self.reader.duration(n, "\(path).connect_timeout") {
            spec.connectTimeout = v
        }
        if let n = map["threads"], let v = self.reader.int(n, "\(path).threads", 1...256) { spec.threads = v }
        if let n = map["interval"], let v = self.reader.duration(n, "\(path).interval") { spec.interval = v }
        if let n = map["headers"], case .mapping(let headers) = n {
            for (k, v) in headers {
                if case .scalar(let key) = k, let value = self.reader.scalar(v, "\(path).headers.\(key.string)") {
                    spec.headers.append((key.string, value))
                }
            }
        }
        for problem in spec.problems() { self.reader.report(path, node, problem.replacingOptionNames()) }
        return spec
    }

    mutating func watch(_ map: [String: Node], _ path: String) -> [String]? {
        map["watch"].flatMap { self.names($0, "\(path).watch") }
    }

    mutating func load(_ node: Node, _ path: String) -> ScenarioLoad? {
        guard let map = self.reader.mapping(node, path, allowed: Self.loadKeys + ["faults", "replicas_from"]) else {
            return nil
        }
        let name = map["name"].flatMap { self.reader.string($0, "\(path).name") } ?? "load"
        let spec = self.spec(map, path, node: node)
        var faults: [ScenarioFault] = []
        if let faultsNode = map["faults"] {
            if case .sequence(let sequence) = faultsNode {
                for (i, item) in sequence.enumerated() {
                    let p = "\(path).faults[\(i)]"
                    guard case .mapping = item,
                        let at = self.reader.mapping(item, p, allowed: Self.faultKeys + ["at"])?["at"]
                    else {
                        self.reader.report("\(p).at", item, "each fault needs 'at' (seconds into the phase)")
                        continue
                    }
                    guard let seconds = NodeReader.parseDuration(self.reader.scalar(at, "\(p).at") ?? ""), seconds >= 0
                    else {
                        self.reader.report("\(p).at", at, "expected a time into the phase like 10s")
                        continue
                    }
                    if let action = self.action(item, p, inFault: true) {
                        faults.append(ScenarioFault(at: seconds, action: action))
                    }
                }
            } else {
                self.reader.report("\(path).faults", faultsNode, "expected a list of {at: 10s, kill: NAME}")
            }
        }
        guard let spec else { return nil }
        if let duration = spec.duration {
            for fault in faults where fault.at >= duration {
                self.reader.report(
                    "\(path).faults", node,
                    "a fault at \(BenchFormat.number(fault.at))s is after the phase ends (\(BenchFormat.number(duration))s)"
                )
            }
        }
        return ScenarioLoad(
            name: name, spec: spec, watch: self.watch(map, path),
            faults: faults.sorted { $0.at < $1.at },
            replicasFrom: map["replicas_from"].flatMap { self.reader.string($0, "\(path).replicas_from") })
    }

    mutating func sweep(_ node: Node, _ path: String) -> ScenarioSweep? {
        let allowed =
            Self.loadKeys.filter { !["rate", "duration", "requests"].contains($0) }
            + ["rates", "step_duration", "max_loss", "refine", "pause"]
        guard let map = self.reader.mapping(node, path, allowed: allowed) else { return nil }
        guard let name = map["name"].flatMap({ self.reader.string($0, "\(path).name") }) else {
            self.reader.report("\(path).name", node, "required: a sweep needs a name (compare steps refer to it)")
            return nil
        }
        var rates: [Double] = []
        switch map["rates"] {
        case .sequence(let sequence)?:
            for (i, item) in sequence.enumerated() {
                if let v = self.reader.int(item, "\(path).rates[\(i)]", 1...10_000_000) { rates.append(Double(v)) }
            }
        case let ratesNode?:
            if let m = self.reader.mapping(ratesNode, "\(path).rates", allowed: ["from", "to", "step"]),
                let from = m["from"].flatMap({ self.reader.int($0, "\(path).rates.from", 1...10_000_000) }),
                let to = m["to"].flatMap({ self.reader.int($0, "\(path).rates.to", 1...10_000_000) }),
                let step = m["step"].flatMap({ self.reader.int($0, "\(path).rates.step", 1...10_000_000) })
            {
                rates = RateSweep.ladder(from: Double(from), to: Double(to), step: Double(step))
                if rates.isEmpty { self.reader.report("\(path).rates", ratesNode, "'to' must not be below 'from'") }
            } else {
                self.reader.report("\(path).rates", ratesNode, "expected {from, to, step} or a list of rates")
            }
        case nil:
            self.reader.report("\(path).rates", node, "required: {from: 500, to: 8000, step: 500} or a list")
        }
        var mapWithRate = map
        mapWithRate["rate"] = .scalar(.init("1"))
        guard var spec = self.spec(mapWithRate, path, node: node), !rates.isEmpty else { return nil }
        spec.duration = 5
        if let n = map["step_duration"], let v = self.reader.duration(n, "\(path).step_duration") { spec.duration = v }
        var sweep = ScenarioSweep(name: name, spec: spec, rates: rates, watch: self.watch(map, path))
        if let n = map["max_loss"], let text = self.reader.scalar(n, "\(path).max_loss") {
            let number = text.hasSuffix("%") ? String(text.dropLast()) : text
            if let v = Double(number), v > 0, v <= 100 {
                sweep.maxLossPercent = v
            } else {
                self.reader.report("\(path).max_loss", n, "expected a percentage like 1 or 0.5%, got '\(text)'")
            }
        }
        if let n = map["refine"], let v = self.reader.int(n, "\(path).refine", 0...10) { sweep.refine = v }
        if let n = map["pause"], let v = NodeReader.parseDuration(self.reader.scalar(n, "\(path).pause") ?? ""), v >= 0
        {
            sweep.pause = v
        }
        return sweep
    }
}

extension String {
    /// Option names of `swiftvs bench http` as scenario keys, for problems found by `LoadSpec.problems()`.
    func replacingOptionNames() -> String {
        var out = self
        for (option, key) in [
            ("--connections", "connections"), ("--rate", "rate"), ("--duration", "duration"),
            ("--requests", "requests"), ("--connect-timeout", "connect_timeout"),
            ("--timeout", "timeout"), ("--threads", "threads"), ("--interval", "interval"),
            ("--method", "method"), ("--header", "headers"),
        ] {
            out = out.replacing(option, with: key)
        }
        return out
    }
}
