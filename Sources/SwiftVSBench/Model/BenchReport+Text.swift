import SwiftVSCore
/// The final text tables of a run: the four figures of the studies (throughput, loss, CPU, response time) per phase,
/// then sweeps and comparisons.
extension BenchReport {
    public func text() -> String {
        var out = ""
        for phase in self.phases { out += phase.text() + "\n" }
        for sweep in self.sweeps { out += sweep.text() + "\n" }
        for comparison in self.comparisons { out += comparison.text() + "\n" }
        for note in self.notes { out += "note: \(note)\n" }
        return out
    }
}

extension PhaseReport {
    public func text() -> String {
        let f = BenchFormat.self
        let c = self.counters
        var out = "== \(self.name): \(self.spec.targets.map(\.url).joined(separator: ", "))\n"
        if self.conference != nil {
            out += "   conference signaling: joins and chat messages (a request = a message delivered), "
        } else if self.spec.targets.first?.url.hasPrefix("jmeter:") == true {
            out += "   JMeter (a request = a sample), "
        } else {
            out += "   \(self.spec.model.label), \(self.spec.connections) connections, "
            out += self.spec.keepAlive ? "keep-alive, " : "one request per connection, "
        }
        out += "\(f.number(self.elapsedSeconds, decimals: 2)) s\n"
        out += "Throughput     \(f.number(self.requestsPerSecond, decimals: 1)) req/s, "
        out += "\(f.number(self.megabytesPerSecond, decimals: 2)) MB/s in"
        out += " (\(c.succeeded) ok of \(c.attempted) attempted, \(c.connectionsOpened) connections opened)\n"
        out += "Loss           \(f.fixed(self.lossPercent, 2))% (\(c.failed) failed"
        if self.unfinished > 0 { out += "; \(self.unfinished) unfinished at the end, not counted" }
        out += ")\n"
        for cause in LossCause.allCases where c.failures(cause) > 0 {
            out += "  \(f.pad(cause.label, 26)) \(c.failures(cause))\n"
        }
        if let conference = self.conference {
            out += conference.text().split(separator: "\n").dropFirst().filter { !$0.hasPrefix("CPU") }
                .map { "  " + $0 + "\n" }.joined()
        }
        if !self.errorsByCode.isEmpty {
            out +=
                "Errors by code "
                + self.errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", ") + "\n"
        }
        let classes = c.statusClasses.enumerated().filter { $0.element > 0 }.map { "\($0.offset + 1)xx \($0.element)" }
        if !classes.isEmpty { out += "Statuses       \(classes.joined(separator: ", "))\n" }
        let l = self.latency
        out += "Response time  ms: min \(f.ms(l.minMs))  mean \(f.ms(l.meanMs))  p50 \(f.ms(l.p50Ms))  "
        out += "p90 \(f.ms(l.p90Ms))  p99 \(f.ms(l.p99Ms))  p99.9 \(f.ms(l.p999Ms))  max \(f.ms(l.maxMs))\n"
        if case .open = self.spec.model {
            out += "               (timed from when each request was due: corrected for coordinated omission)\n"
        }
        let series = self.cpu + (self.machineCPU.samples.isEmpty ? [] : [self.machineCPU])
        if !series.isEmpty {
            out += "CPU            mean / max %"
            out += self.machineCPU.samples.isEmpty ? "\n" : " (processes: 100 = one core; machine: 100 = all cores)\n"
            for s in series {
                let pids =
                    s.pids.isEmpty
                    ? (s.name == "machine" ? "" : " (not running)")
                    : " pid \(s.pids.map(String.init).joined(separator: ","))"
                out += "  \(f.pad(s.name, 24)) \(f.pad(f.fixed(s.meanPercent, 1), 6, right: true)) / "
                out += "\(f.pad(f.fixed(s.maxPercent, 1), 6, right: true))\(pids)\n"
            }
            let memory = series.filter { $0.maxMiB != nil }
            if !memory.isEmpty {
                out += "Memory         mean / max MiB (processes: resident; machine: used)\n"
                for s in memory {
                    out += "  \(f.pad(s.name, 24)) \(f.pad(f.fixed(s.meanMiB ?? 0, 1), 6, right: true)) / "
                    out += "\(f.pad(f.fixed(s.maxMiB ?? 0, 1), 6, right: true))\n"
                }
            }
        }
        if !self.nodes.isEmpty {
            out += "Nodes          CPU mean / max % (100 = one core), memory mean / max MiB\n"
            for n in self.nodes {
                out += "  \(f.pad(n.name, 24)) \(f.pad(f.fixed(n.meanPercent, 1), 6, right: true)) / "
                out += "\(f.pad(f.fixed(n.maxPercent, 1), 6, right: true))   "
                out += "\(f.pad(f.fixed(n.meanMiB ?? 0, 1), 7, right: true)) / \(f.fixed(n.maxMiB ?? 0, 1))\n"
            }
        }
        for r in self.replicas {
            let counts = r.samples.map(\.current)
            out +=
                "Replicas       \(r.service): \(counts.first ?? 0) → \(counts.last ?? 0), at most \(counts.max() ?? 0)"
            out += "; \(r.decisions.count) decision\(r.decisions.count == 1 ? "" : "s")\n"
            for d in r.decisions.prefix(8) {
                out += "  at \(f.fixed(d.t, 1)) s: \(d.from) → \(d.to): \(d.reason)\n"
            }
            for replica in r.perReplica {
                out += "  replica \(f.pad(replica.name, 22)) CPU mean / max \(f.fixed(replica.meanPercent, 1)) / "
                out += "\(f.fixed(replica.maxPercent, 1))%, memory max \(f.fixed(replica.maxMiB ?? 0, 1)) MiB\n"
            }
        }
        for fault in self.faults {
            out += "Fault at \(f.fixed(fault.at, 1)) s: \(fault.action): \(fault.lost) requests lost, "
            out += "full rate again after \(f.fixed(fault.secondsToFullRate, 1)) s\n"
        }
        return out
    }
}

extension SweepReport {
    public func text() -> String {
        let f = BenchFormat.self
        var out =
            "== sweep \(self.name): \(self.url) (sustained = loss < \(f.number(self.maxLossPercent))%, ≥ 98% answered)\n"
        out += "  offered req/s   achieved   loss %   p99 ms   sustained\n"
        for step in self.steps {
            out += "  \(f.pad(f.number(step.offeredRate, decimals: 0), 13, right: true))"
            out += "  \(f.pad(f.number(step.achievedRate, decimals: 0), 9, right: true))"
            out += "  \(f.pad(f.fixed(step.lossPercent, 2), 7, right: true))"
            out += "  \(f.pad(f.ms(step.p99Ms), 7, right: true))"
            out += "   \(step.sustained ? "yes" : "no")\n"
        }
        if let best = self.best {
            out += "Highest sustained rate: \(f.number(best.offeredRate, decimals: 0)) req/s"
            let cpu = best.cpuPercent.sorted { $0.key < $1.key }.map { "\($0.key) \(f.fixed($0.value, 1))%" }
            if !cpu.isEmpty { out += "; CPU there: \(cpu.joined(separator: ", "))" }
            out += "\n"
        } else {
            out += "No rate was sustained.\n"
        }
        return out
    }
}

extension ComparisonReport {
    public func text() -> String {
        let f = BenchFormat.self
        guard let gain = self.gainPercent, let b = self.baselineRate, let c = self.candidateRate else {
            return "== \(self.name): cannot compare (\(self.baseline) or \(self.candidate) sustained no rate)\n"
        }
        return "== \(self.name): \(self.candidate) \(f.number(c, decimals: 0)) req/s vs \(self.baseline) "
            + "\(f.number(b, decimals: 0)) req/s: \(gain >= 0 ? "+" : "")\(f.fixed(gain, 2))%\n"
    }
}
