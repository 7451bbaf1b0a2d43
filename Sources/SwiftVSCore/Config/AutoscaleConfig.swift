import SwiftVSConfigKit
import Yams

/// A service's `autoscale` section: HPA's algorithm (`HorizontalAutoscaler`) run by the director every
/// `syncPeriod` over the replicas a provider starts and stops. Defaults are HPA's, except the period (1 s, where
/// HPA's loop runs every 15 s behind a metrics pipeline of 30–60 s).
public struct AutoscaleConfig: Sendable, Equatable {
    /// Replicas at least; 0 lets the service scale to zero after `scaleToZeroAfter` without requests. Default 1.
    public var minReplicas = 1
    /// Replicas at most (required).
    public var maxReplicas: Int
    /// How often metrics are sampled and the calculation runs. Default 1 s.
    public var syncPeriod: Double = 1
    /// HPA's tolerance per direction. Default 0.1 each.
    public var tolerances = ReplicaCalculator.Tolerances()
    /// What the replica count follows; the highest proposal wins. Default: CPU at 80 % of `requests.cpu`.
    public var metrics: [AutoscaleMetric] = [AutoscaleMetric(source: .cpu, target: .utilization(80))]
    /// HPA's `behavior`; nil = HPA's path without one (legacy): up to max(2 × current, 4) a step, down to the
    /// highest proposal of the last `downscaleStabilization`.
    public var behavior: ScaleNormalizer.Behavior?
    /// The legacy path's scale-down window. Default 300 s (`--horizontal-pod-autoscaler-downscale-stabilization`).
    public var downscaleStabilization: Double = 300
    /// HPA's CPU initialization period (300 s) and initial readiness delay (30 s): which CPU samples of a young
    /// replica count.
    public var cpuInitializationPeriod: Double = 300
    public var initialReadinessDelay: Double = 30
    /// For comparisons with HPA: each calculation sees the samples of this long ago, as HPA sees metrics through
    /// kubelet and metrics-server (10–60 s). 0 = the last period's.
    public var metricsDelay: Double = 0
    /// With `minReplicas` 0: idle this long (no request, none queued) → 0 replicas. nil = never.
    public var scaleToZeroAfter: Double?
    /// A replica leaving (scale-in) gets weight 0 and this long for its requests and connections to finish, then
    /// SIGTERM. Default 30 s.
    public var drainTimeout: Double = 30
    /// After SIGTERM, this long before SIGKILL. Default 10 s.
    public var stopTimeout: Double = 10
    /// Per replica: what 100 % utilization is. cpu in millicores (`500m`, `1`), memory in bytes (`256Mi`).
    public var cpuRequest: Int64?
    public var memoryRequest: Int64?
    public var provider: Provider

    /// Who runs the replicas.
    public enum Provider: Sendable, Equatable {
        /// Processes the director starts itself.
        case process(ProcessProviderConfig)
        /// A Deployment's scale subresource, and the Service's EndpointSlices for the pool.
        case kubernetes(KubernetesProviderConfig)
    }

    public init(maxReplicas: Int, provider: Provider) {
        self.maxReplicas = maxReplicas
        self.provider = provider
    }

    public init(maxReplicas: Int, provider: ProcessProviderConfig) {
        self.init(maxReplicas: maxReplicas, provider: .process(provider))
    }

    /// The process provider's settings, nil with kubernetes.
    public var process: ProcessProviderConfig? {
        if case .process(let config) = self.provider { return config }
        return nil
    }
}

/// `autoscale.kubernetes`: the director scales a Deployment and takes its pool from the Service's EndpointSlices.
public struct KubernetesProviderConfig: Sendable, Equatable {
    /// The Deployment whose `scale` subresource is read and patched.
    public var deployment: String
    /// nil: the pod's own namespace (the service account's `namespace` file), else `default`.
    public var namespace: String?
    /// The Service whose EndpointSlices make the pool (`kubernetes.io/service-name`); nil = the Deployment's name.
    public var service: String?
    /// The EndpointSlice port (name or number) the director sends to; nil = each slice's first.
    public var port: String?
    /// The API server, `https://host:port`; nil = in the cluster (`KUBERNETES_SERVICE_HOST`/`_PORT_HTTPS`), or the
    /// `kubeconfig`'s current context.
    public var api: String?
    /// A kubeconfig file (its current context's server, CA and token); nil = in-cluster credentials.
    public var kubeconfig: String?
    /// The bearer token, read again every 5 minutes and after a 401 (projected tokens rotate).
    public var tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    /// The CA that signs the API server's certificate.
    public var caFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    /// Each endpoint's weight in the pool. Default 1.
    public var weight = 1

    public init(deployment: String) {
        self.deployment = deployment
    }
}

/// `autoscale.process`: replicas are processes the director starts, one per port of `ports`.
public struct ProcessProviderConfig: Sendable, Equatable {
    /// argv; `{port}` (required somewhere) becomes the replica's port, `{host}` its address, `{index}` its slot.
    public var command: [String]
    /// The address replicas listen on. Default 127.0.0.1.
    public var host = "127.0.0.1"
    /// The ports replicas take, one each (at least `maxReplicas` of them).
    public var ports: ClosedRange<Int>
    /// Added to the director's environment (same placeholders).
    public var environment: [String: String] = [:]
    /// Working directory; nil = the director's.
    public var workingDirectory: String?
    /// stdout and stderr of each replica go to this file (placeholders allowed), appended; nil = the director's
    /// own stderr.
    public var log: String?
    /// The weight each replica has once warmed up. Default 1.
    public var weight = 1
    /// A replica that exits is started again after `restartDelay`, doubled after each exit within a minute of its
    /// start, up to `maxRestartDelay`. Defaults 1 s and 30 s.
    public var restartDelay: Double = 1
    public var maxRestartDelay: Double = 30

    public init(command: [String], ports: ClosedRange<Int>) {
        self.command = command
        self.ports = ports
    }

    /// The command, environment and log path for the replica on `port` in slot `index`.
    public func expand(_ text: String, port: Int, index: Int) -> String {
        text.replacingOccurrences(of: "{port}", with: String(port))
            .replacingOccurrences(of: "{host}", with: self.host)
            .replacingOccurrences(of: "{index}", with: String(index))
    }
}

/// One metric the autoscaler follows, and its target, mapped onto HPA's metric types.
public struct AutoscaleMetric: Sendable, Equatable, CustomStringConvertible {
    public enum Source: String, Sendable, CaseIterable {
        /// Resource metrics, read from each replica's process (/proc): CPU in millicores, memory (RSS) in bytes.
        case cpu
        case memory
        /// Pods metrics the director measures per replica: requests per second, requests (http) or connections
        /// (tcp) in flight, and the 90th percentile response time in seconds.
        case requestsPerSecond = "requests_per_second"
        case concurrency
        case responseTimeP90 = "response_time_p90"
        /// Object metrics of the service: requests waiting in its queue, and the longest wait of the last period
        /// (seconds).
        case queueLength = "queue_length"
        case queueWait = "queue_wait"

        /// HPA's type for it.
        public var hpaType: String {
            switch self {
            case .cpu, .memory: return "Resource"
            case .requestsPerSecond, .concurrency, .responseTimeP90: return "Pods"
            case .queueLength, .queueWait: return "Object"
            }
        }
    }

    public enum Target: Sendable, Equatable {
        /// Resource: percent of the replica's request.
        case utilization(Int)
        /// Per replica (Resource raw value, Pods, Object `AverageValue`).
        case average(Double)
        /// Object `Value`: the service's value as a whole.
        case value(Double)
    }

    public var source: Source
    public var target: Target

    public init(source: Source, target: Target) {
        self.source = source
        self.target = target
    }

    public var description: String { self.source.rawValue }

    /// The unit the value is read in: millicores for cpu, bytes for memory, seconds for times, else a count.
    /// Values go to HPA's arithmetic in milli-units of it.
    public var milliScale: Double { self.source == .cpu ? 1 : 1000 }
}

extension NodeReader {
    static let autoscaleKeys = [
        "min_replicas", "max_replicas", "sync_period", "tolerance", "metrics", "behavior", "downscale_stabilization",
        "cpu_initialization_period", "initial_readiness_delay", "scale_to_zero_after", "drain_timeout",
        "stop_timeout", "requests", "provider", "process", "kubernetes", "metrics_delay",
    ]

    mutating func autoscale(_ node: Node, _ path: String) -> AutoscaleConfig? {
        guard let keys = self.mapping(node, path, allowed: Self.autoscaleKeys) else { return nil }
        let before = self.problems.count
        var maxReplicas = 1
        if let n = keys["max_replicas"], let v = self.int(n, "\(path).max_replicas", 1...1000) {
            maxReplicas = v
        } else if keys["max_replicas"] == nil {
            self.report("\(path).max_replicas", node, "missing: the most replicas the autoscaler may run")
        }
        var provider = AutoscaleConfig.Provider.process(ProcessProviderConfig(command: [], ports: 0...0))
        var kind = "process"
        if let n = keys["provider"], let text = self.scalar(n, "\(path).provider") {
            if ["process", "kubernetes"].contains(text) {
                kind = text
            } else {
                self.report("\(path).provider", n, "'\(text)' is not a provider; use process or kubernetes")
            }
        }
        if kind == "kubernetes" {
            if let n = keys["kubernetes"] {
                if let k = self.kubernetesProvider(n, "\(path).kubernetes") { provider = .kubernetes(k) }
            } else {
                self.report("\(path).kubernetes", node, "missing: the deployment to scale, like {deployment: web}")
            }
            if let n = keys["process"] { self.report("\(path).process", n, "is for provider: process") }
        } else if let n = keys["process"] {
            if let p = self.processProvider(n, "\(path).process", maxReplicas: maxReplicas) { provider = .process(p) }
            if let k = keys["kubernetes"] {
                self.report("\(path).kubernetes", k, "is for provider: kubernetes (add provider: kubernetes)")
            }
        } else {
            self.report("\(path).process", node, "missing: the command that starts a replica, and its ports")
        }
        var config = AutoscaleConfig(maxReplicas: maxReplicas, provider: provider)
        if let n = keys["min_replicas"], let v = self.int(n, "\(path).min_replicas", 0...1000) {
            config.minReplicas = v
            if v > maxReplicas {
                self.report("\(path).min_replicas", n, "must not exceed max_replicas (\(maxReplicas)), got \(v)")
            }
        }
        if let n = keys["sync_period"], let v = self.duration(n, "\(path).sync_period", max: 3600) {
            config.syncPeriod = v
        }
        if let n = keys["tolerance"] { config.tolerances = self.tolerances(n, "\(path).tolerance") }
        if let n = keys["downscale_stabilization"], let v = self.durationOrZero(n, "\(path).downscale_stabilization") {
            config.downscaleStabilization = v
        }
        if let n = keys["cpu_initialization_period"],
            let v = self.durationOrZero(n, "\(path).cpu_initialization_period")
        {
            config.cpuInitializationPeriod = v
        }
        if let n = keys["initial_readiness_delay"], let v = self.durationOrZero(n, "\(path).initial_readiness_delay") {
            config.initialReadinessDelay = v
        }
        if let n = keys["scale_to_zero_after"] {
            config.scaleToZeroAfter = self.duration(n, "\(path).scale_to_zero_after")
            if config.minReplicas != 0 {
                self.report("\(path).scale_to_zero_after", n, "needs min_replicas: 0")
            }
        } else if config.minReplicas == 0 {
            self.report(
                "\(path).min_replicas", keys["min_replicas"],
                "0 needs scale_to_zero_after: how long without requests before the last replica stops")
        }
        if let n = keys["metrics_delay"], let v = self.durationOrZero(n, "\(path).metrics_delay") {
            config.metricsDelay = v
        }
        if let n = keys["drain_timeout"], let v = self.durationOrZero(n, "\(path).drain_timeout") {
            config.drainTimeout = v
        }
        if let n = keys["stop_timeout"], let v = self.duration(n, "\(path).stop_timeout") { config.stopTimeout = v }
        if let n = keys["requests"], let m = self.mapping(n, "\(path).requests", allowed: ["cpu", "memory"]) {
            if let c = m["cpu"], let text = self.scalar(c, "\(path).requests.cpu") {
                config.cpuRequest = Self.cpuQuantity(text)
                if config.cpuRequest == nil || config.cpuRequest! <= 0 {
                    self.report(
                        "\(path).requests.cpu", c, "expected millicores like 500m, or cores like 1, got '\(text)'")
                }
            }
            if let c = m["memory"], let text = self.scalar(c, "\(path).requests.memory") {
                config.memoryRequest = Self.byteQuantity(text)
                if config.memoryRequest == nil || config.memoryRequest! <= 0 {
                    self.report("\(path).requests.memory", c, "expected bytes like 256Mi or 1Gi, got '\(text)'")
                }
            }
        }
        if let n = keys["metrics"] {
            config.metrics = self.autoscaleMetrics(n, "\(path).metrics")
        }
        for (index, metric) in config.metrics.enumerated() {
            if case .kubernetes = config.provider, metric.source == .cpu || metric.source == .memory {
                self.report(
                    "\(path).metrics[\(index)].type", keys["metrics"] ?? node,
                    "\(metric.source.rawValue) is read from the replicas' processes (provider: process); with "
                        + "kubernetes follow requests_per_second, concurrency, response_time_p90 or the queue")
            }
            guard case .utilization = metric.target else { continue }
            if metric.source == .cpu && config.cpuRequest == nil {
                self.report(
                    "\(path).requests.cpu", keys["metrics"] ?? node,
                    "missing: metrics[\(index)] targets CPU utilization, a percent of requests.cpu (like 500m)")
            }
            if metric.source == .memory && config.memoryRequest == nil {
                self.report(
                    "\(path).requests.memory", keys["metrics"] ?? node,
                    "missing: metrics[\(index)] targets memory utilization, a percent of requests.memory (like 256Mi)")
            }
        }
        if let n = keys["behavior"] { config.behavior = self.behavior(n, "\(path).behavior", &config.tolerances) }
        return self.problems.count == before ? config : nil
    }

    /// `0` or a duration.
    mutating func durationOrZero(_ node: Node, _ path: String) -> Double? {
        if case .scalar(let scalar) = node, ["0", "0s"].contains(scalar.string) { return 0 }
        return self.duration(node, path)
    }

    mutating func number(_ node: Node, _ path: String, _ range: ClosedRange<Double>) -> Double? {
        guard let text = self.scalar(node, path) else { return nil }
        guard let value = Double(text), range.contains(value) else {
            self.report(path, node, "expected a number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            return nil
        }
        return value
    }

    mutating func tolerances(_ node: Node, _ path: String) -> ReplicaCalculator.Tolerances {
        var tolerances = ReplicaCalculator.Tolerances()
        if case .scalar = node {
            if let v = self.number(node, path, 0...1) { tolerances = .init(scaleDown: v, scaleUp: v) }
            return tolerances
        }
        guard let m = self.mapping(node, path, allowed: ["scale_up", "scale_down"]) else { return tolerances }
        if let n = m["scale_up"], let v = self.number(n, "\(path).scale_up", 0...10) { tolerances.scaleUp = v }
        if let n = m["scale_down"], let v = self.number(n, "\(path).scale_down", 0...1) { tolerances.scaleDown = v }
        return tolerances
    }

    mutating func processProvider(_ node: Node, _ path: String, maxReplicas: Int) -> ProcessProviderConfig? {
        let allowed = [
            "command", "host", "ports", "env", "workdir", "log", "weight", "restart_delay", "max_restart_delay",
        ]
        guard let keys = self.mapping(node, path, allowed: allowed) else { return nil }
        let before = self.problems.count
        var command: [String] = []
        if let n = keys["command"],
            let list = self.strings(n, "\(path).command", example: "[swiftvs, realserver, --listen, \"{host}:{port}\"]")
        {
            command = list
            if list.isEmpty {
                self.report("\(path).command", n, "is empty: give the program and its arguments")
            } else if !list.contains(where: { $0.contains("{port}") }) {
                self.report(
                    "\(path).command", n,
                    "has no {port}: each replica must be told the port it listens on, like --listen {host}:{port}")
            }
        } else if keys["command"] == nil {
            self.report("\(path).command", node, "missing: the program and arguments that start a replica")
        }
        var ports = 0...0
        if let n = keys["ports"], let text = self.scalar(n, "\(path).ports") {
            let parts = text.split(separator: "-").map { Int($0.trimmingSpaces()) }
            if parts.count == 2, let low = parts[0], let high = parts[1], 1 <= low, low <= high, high <= 65535 {
                ports = low...high
                if ports.count < maxReplicas {
                    self.report(
                        "\(path).ports", n,
                        "\(text) has \(ports.count) ports, fewer than max_replicas (\(maxReplicas)): one per replica")
                }
            } else {
                self.report("\(path).ports", n, "expected a port range like 20000-20099, got '\(text)'")
            }
        } else if keys["ports"] == nil {
            self.report("\(path).ports", node, "missing: the range of ports replicas listen on, like 20000-20099")
        }
        var config = ProcessProviderConfig(command: command, ports: ports)
        if let n = keys["host"], let text = self.string(n, "\(path).host") {
            if Endpoint.parseIP(text) == nil {
                self.report("\(path).host", n, "'\(text)' is not an IP address")
            }
            config.host = text
        }
        if let n = keys["env"] {
            if case .mapping(let mapping) = n {
                for (key, value) in mapping {
                    guard case .scalar(let k) = key, case .scalar(let v) = value else {
                        self.report("\(path).env", n, "expected NAME: value pairs")
                        continue
                    }
                    config.environment[k.string] = v.string
                }
            } else {
                self.report("\(path).env", n, "expected NAME: value pairs")
            }
        }
        if let n = keys["workdir"] { config.workingDirectory = self.string(n, "\(path).workdir") }
        if let n = keys["log"] { config.log = self.string(n, "\(path).log") }
        if let n = keys["weight"], let v = self.int(n, "\(path).weight", 1...65535) { config.weight = v }
        if let n = keys["restart_delay"], let v = self.duration(n, "\(path).restart_delay") { config.restartDelay = v }
        if let n = keys["max_restart_delay"], let v = self.duration(n, "\(path).max_restart_delay") {
            config.maxRestartDelay = v
        }
        return self.problems.count == before ? config : nil
    }

    mutating func kubernetesProvider(_ node: Node, _ path: String) -> KubernetesProviderConfig? {
        let allowed = [
            "deployment", "namespace", "service", "port", "api", "kubeconfig", "token_file", "ca_file", "weight",
        ]
        guard let keys = self.mapping(node, path, allowed: allowed) else { return nil }
        let before = self.problems.count
        guard let d = keys["deployment"], let deployment = self.string(d, "\(path).deployment") else {
            if keys["deployment"] == nil { self.report("\(path).deployment", node, "missing: the Deployment to scale") }
            return nil
        }
        var config = KubernetesProviderConfig(deployment: deployment)
        if let n = keys["namespace"] { config.namespace = self.string(n, "\(path).namespace") }
        if let n = keys["service"] { config.service = self.string(n, "\(path).service") }
        if let n = keys["port"] { config.port = self.string(n, "\(path).port") }
        if let n = keys["api"], let text = self.string(n, "\(path).api") {
            if !text.hasPrefix("https://") {
                self.report("\(path).api", n, "expected the API server as https://host:port, got '\(text)'")
            }
            config.api = text
        }
        if let n = keys["kubeconfig"] { config.kubeconfig = self.string(n, "\(path).kubeconfig") }
        if let n = keys["token_file"], let v = self.string(n, "\(path).token_file") { config.tokenFile = v }
        if let n = keys["ca_file"], let v = self.string(n, "\(path).ca_file") { config.caFile = v }
        if let n = keys["weight"], let v = self.int(n, "\(path).weight", 1...65535) { config.weight = v }
        return self.problems.count == before ? config : nil
    }

    mutating func autoscaleMetrics(_ node: Node, _ path: String) -> [AutoscaleMetric] {
        guard case .sequence(let items) = node, !items.isEmpty else {
            self.report(path, node, "a non-empty list, like [{type: cpu, utilization: 70}]")
            return []
        }
        var out: [AutoscaleMetric] = []
        for (index, item) in items.enumerated() {
            let p = "\(path)[\(index)]"
            guard let keys = self.mapping(item, p, allowed: ["type", "utilization", "average", "value"]) else {
                continue
            }
            guard let t = keys["type"], let text = self.scalar(t, "\(p).type") else {
                self.report("\(p).type", item, "missing: what to follow (cpu, requests_per_second, queue_length…)")
                continue
            }
            guard let source = AutoscaleMetric.Source(rawValue: text) else {
                let all = AutoscaleMetric.Source.allCases.map(\.rawValue).joined(separator: ", ")
                self.report("\(p).type", t, "'\(text)' is not a metric; use one of \(all)")
                continue
            }
            let given = ["utilization", "average", "value"].filter { keys[$0] != nil }
            guard given.count == 1, let key = given.first, let valueNode = keys[key] else {
                self.report(p, item, "needs exactly one target: utilization (cpu, memory), average or value")
                continue
            }
            let target: AutoscaleMetric.Target
            switch key {
            case "utilization":
                guard source == .cpu || source == .memory else {
                    self.report("\(p).utilization", valueNode, "is for cpu and memory; \(text) takes average")
                    continue
                }
                guard let v = self.int(valueNode, "\(p).utilization", 1...1000) else { continue }
                target = .utilization(v)
            case "value":
                guard source == .queueLength || source == .queueWait else {
                    self.report("\(p).value", valueNode, "is for queue_length and queue_wait; \(text) takes average")
                    continue
                }
                guard let v = self.metricQuantity(valueNode, "\(p).value", source) else { continue }
                target = .value(v)
            default:
                guard let v = self.metricQuantity(valueNode, "\(p).average", source) else { continue }
                target = .average(v)
            }
            out.append(AutoscaleMetric(source: source, target: target))
        }
        return out
    }

    /// A target in the metric's unit: millicores (`500m`, `0.5`), bytes (`256Mi`), seconds (`200ms`), or a count.
    mutating func metricQuantity(_ node: Node, _ path: String, _ source: AutoscaleMetric.Source) -> Double? {
        guard let text = self.scalar(node, path) else { return nil }
        let value: Double?
        switch source {
        case .cpu: value = Self.cpuQuantity(text).map(Double.init)
        case .memory: value = Self.byteQuantity(text).map(Double.init)
        case .responseTimeP90, .queueWait: value = Self.parseDuration(text)
        case .requestsPerSecond, .concurrency, .queueLength: value = Double(text)
        }
        guard let value, value > 0, value.isFinite else {
            self.report(path, node, "expected a target above 0 for \(source.rawValue), got '\(text)'")
            return nil
        }
        return value
    }

    mutating func behavior(
        _ node: Node, _ path: String, _ tolerances: inout ReplicaCalculator.Tolerances
    )
        -> ScaleNormalizer.Behavior?
    {
        guard let keys = self.mapping(node, path, allowed: ["scale_up", "scale_down"]) else { return nil }
        var behavior = ScaleNormalizer.Behavior()
        if let n = keys["scale_up"] {
            behavior.scaleUp = self.rules(n, "\(path).scale_up", base: .defaultUp, tolerance: &tolerances.scaleUp)
        }
        if let n = keys["scale_down"] {
            behavior.scaleDown = self.rules(
                n, "\(path).scale_down", base: .defaultDown, tolerance: &tolerances.scaleDown)
        }
        return behavior
    }

    mutating func rules(
        _ node: Node, _ path: String, base: ScaleNormalizer.Rules, tolerance: inout Double
    )
        -> ScaleNormalizer.Rules
    {
        var rules = base
        guard
            let keys = self.mapping(
                node, path, allowed: ["stabilization_window", "select_policy", "policies", "tolerance"])
        else { return rules }
        if let n = keys["stabilization_window"], let v = self.durationOrZero(n, "\(path).stabilization_window") {
            rules.stabilizationWindow = v
        }
        if let n = keys["select_policy"], let text = self.scalar(n, "\(path).select_policy") {
            if let select = ScaleNormalizer.Select(rawValue: text.prefix(1).uppercased() + text.dropFirst()) {
                rules.select = select
            } else {
                self.report("\(path).select_policy", n, "'\(text)' is not Max, Min or Disabled")
            }
        }
        if let n = keys["tolerance"], let v = self.number(n, "\(path).tolerance", 0...10) { tolerance = v }
        if let n = keys["policies"] {
            guard case .sequence(let items) = n, !items.isEmpty else {
                self.report("\(path).policies", n, "a non-empty list, like [{type: Pods, value: 4, period: 15s}]")
                return rules
            }
            rules.policies = []
            for (index, item) in items.enumerated() {
                let p = "\(path).policies[\(index)]"
                guard let m = self.mapping(item, p, allowed: ["type", "value", "period"]) else { continue }
                var kind = ScaleNormalizer.Policy.Kind.pods
                if let t = m["type"], let text = self.scalar(t, "\(p).type") {
                    if let k = ScaleNormalizer.Policy.Kind(rawValue: text.prefix(1).uppercased() + text.dropFirst()) {
                        kind = k
                    } else {
                        self.report("\(p).type", t, "'\(text)' is not Pods or Percent")
                    }
                } else {
                    self.report("\(p).type", item, "missing: Pods or Percent")
                }
                let value = m["value"].flatMap { self.int($0, "\(p).value", 1...100_000) }
                if m["value"] == nil { self.report("\(p).value", item, "missing: how many pods, or what percent") }
                let period = m["period"].flatMap { self.duration($0, "\(p).period", max: 1800) }
                if m["period"] == nil { self.report("\(p).period", item, "missing: the period, like 15s") }
                if let value, let period { rules.policies.append(.init(kind, value, period: period)) }
            }
        }
        return rules
    }

    /// Kubernetes' CPU quantity in millicores: `500m`, `1`, `1.5`.
    static func cpuQuantity(_ text: String) -> Int64? {
        if text.hasSuffix("m") { return Int64(text.dropLast()) }
        guard let cores = Double(text), cores.isFinite else { return nil }
        return Int64((cores * 1000).rounded())
    }

    /// Kubernetes' memory quantity in bytes: `256Mi`, `1Gi`, `500M`, `1048576`.
    static func byteQuantity(_ text: String) -> Int64? {
        let units: [(String, Double)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("K", 1e3), ("M", 1e6), ("G", 1e9),
        ]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number.isFinite else { return nil }
            return Int64(number * scale)
        }
        return Int64(text)
    }
}
