#if canImport(Glibc)
import SwiftVSCore
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A self-contained HTML report (no scripts, no network): the four figures per phase, SVG charts of throughput,
/// response time and CPU over time with fault times marked, the latency percentile curve, sweeps and comparisons.
public enum BenchHTML {
    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        "#7f7f7f", "#bcbd22",
    ]

    public static func render(_ report: BenchReport) -> String {
        var body = "<h1>\(escape(report.title))</h1>\n"
        body += "<p class=meta>\(escape(report.tool)) · started \(escape(report.startedAt)) · \(report.cores) cores · "
        body += "<code>\(escape(report.command))</code></p>\n"
        if !report.notes.isEmpty {
            body += "<div class=notes>" + report.notes.map { "<p>\(escape($0))</p>" }.joined() + "</div>\n"
        }
        if !report.comparisons.isEmpty { body += self.comparisons(report.comparisons) }
        if report.phases.count > 1 { body += self.phaseTable(report.phases) }
        for sweep in report.sweeps { body += self.sweep(sweep) }
        for (i, phase) in report.phases.enumerated() { body += self.phase(phase, index: i) }
        return self.page(title: report.title, body: body)
    }

    /// A self-contained page with the reports' style around `body`.
    static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 12px}
        h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
        table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
        th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
        .meta{color:#666}.notes{background:#fff3cd;padding:4px 12px}
        .charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{background:#fff;border:1px solid #e4e4e4}
        svg text{font:11px system-ui,sans-serif;fill:#333}.grid{stroke:#eee}.axis{stroke:#999}
        .fault{stroke:#d62728;stroke-dasharray:4 3}.fault-label{fill:#d62728}
        .gain{font-size:18px;font-weight:600}
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func comparisons(_ items: [ComparisonReport]) -> String {
        var out = "<h2>Comparison</h2>\n"
        for c in items {
            if let gain = c.gainPercent, let b = c.baselineRate, let r = c.candidateRate {
                out += "<p class=gain>\(escape(c.name)): \(gain >= 0 ? "+" : "")\(BenchFormat.fixed(gain, 2))% "
                out += "(\(escape(c.candidate)) \(BenchFormat.number(r, decimals: 0)) req/s vs "
                out += "\(escape(c.baseline)) \(BenchFormat.number(b, decimals: 0)) req/s)</p>\n"
            } else {
                out += "<p>\(escape(c.name)): no sustained rate to compare</p>\n"
            }
        }
        return out
    }

    static func phaseTable(_ phases: [PhaseReport]) -> String {
        var out = "<h2>Phases</h2>\n<table><tr><th>phase</th><th>req/s</th><th>MB/s</th><th>loss %</th>"
        out += "<th>failed</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>CPU % (mean)</th></tr>\n"
        for p in phases {
            let cpu = (p.cpu + [p.machineCPU]).filter { !$0.samples.isEmpty }
                .map { "\($0.name) \(BenchFormat.fixed($0.meanPercent, 0))" }.joined(separator: ", ")
            out += "<tr><td>\(escape(p.name))</td><td>\(BenchFormat.number(p.requestsPerSecond, decimals: 1))</td>"
            out +=
                "<td>\(BenchFormat.fixed(p.megabytesPerSecond, 2))</td><td>\(BenchFormat.fixed(p.lossPercent, 2))</td>"
            out += "<td>\(p.counters.failed)</td><td>\(BenchFormat.ms(p.latency.p50Ms))</td>"
            out += "<td>\(BenchFormat.ms(p.latency.p99Ms))</td><td>\(BenchFormat.ms(p.latency.maxMs))</td>"
            out += "<td>\(escape(cpu))</td></tr>\n"
        }
        return out + "</table>\n"
    }

    static func phase(_ p: PhaseReport, index: Int) -> String {
        let f = BenchFormat.self
        let c = p.counters
        var out = "<h2 id=\"phase-\(index)\">Phase \(escape(p.name))</h2>\n"
        out += "<p>\(escape(p.spec.targets.map(\.url).joined(separator: ", "))): \(escape(p.spec.model.label)), "
        out += "\(p.spec.connections) connections, \(p.spec.keepAlive ? "keep-alive" : "one request per connection"), "
        out += "\(f.number(p.elapsedSeconds, decimals: 2)) s</p>\n"
        out += "<table><tr><th>figure</th><th>value</th></tr>\n"
        out += "<tr><td>Throughput</td><td>\(f.number(p.requestsPerSecond, decimals: 1)) req/s · "
        out += "\(f.fixed(p.megabytesPerSecond, 2)) MB/s</td></tr>\n"
        out += "<tr><td>Request loss</td><td>\(f.fixed(p.lossPercent, 2))% (\(c.failed) of \(c.succeeded + c.failed))"
        let causes = LossCause.allCases.filter { c.failures($0) > 0 }.map { "\($0.label) \(c.failures($0))" }
        if !causes.isEmpty { out += ": \(escape(causes.joined(separator: ", ")))" }
        out += "</td></tr>\n"
        let l = p.latency
        out +=
            "<tr><td>Response time (ms)</td><td>min \(f.ms(l.minMs)) · mean \(f.ms(l.meanMs)) · p50 \(f.ms(l.p50Ms)) · "
        out +=
            "p90 \(f.ms(l.p90Ms)) · p99 \(f.ms(l.p99Ms)) · p99.9 \(f.ms(l.p999Ms)) · max \(f.ms(l.maxMs))</td></tr>\n"
        for s in p.cpu + [p.machineCPU] where !s.samples.isEmpty {
            out +=
                "<tr><td>CPU \(escape(s.name))</td><td>mean \(f.fixed(s.meanPercent, 1))% · max \(f.fixed(s.maxPercent, 1))%"
            out += "</td></tr>\n"
        }
        for s in p.cpu + [p.machineCPU] {
            guard let peak = s.maxMiB else { continue }
            out += "<tr><td>Memory \(escape(s.name))</td><td>mean \(f.fixed(s.meanMiB ?? 0, 1)) MiB · max "
            out += "\(f.fixed(peak, 1)) MiB\(s.name == "machine" ? " used" : " resident")</td></tr>\n"
        }
        if !p.errorsByCode.isEmpty {
            let codes = p.errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            out += "<tr><td>Errors by code</td><td>\(escape(codes.joined(separator: ", ")))</td></tr>\n"
        }
        for n in p.nodes {
            out += "<tr><td>Node \(escape(n.name))</td><td>CPU mean \(f.fixed(n.meanPercent, 1))% · max "
            out += "\(f.fixed(n.maxPercent, 1))% · memory max \(f.fixed(n.maxMiB ?? 0, 1)) MiB</td></tr>\n"
        }
        for fault in p.faults {
            out += "<tr><td>Fault at \(f.fixed(fault.at, 1)) s</td><td>\(escape(fault.action)): \(fault.lost) lost, "
            out += "full rate after \(f.fixed(fault.secondsToFullRate, 1)) s</td></tr>\n"
        }
        out += "</table>\n<div class=charts>\n"
        let markers = p.faults.map { (x: $0.at, label: $0.action) }
        let t = p.timeline
        out += self.chart(
            id: "throughput-\(index)", title: "Throughput (req/s)", xLabel: "s",
            series: [
                ("ok req/s", t.map { ($0.t, $0.requestsPerSecond) }),
                ("failed/s", t.map { ($0.t, Double($0.failed) / max(p.spec.interval, 1e-9)) }),
            ],
            markers: markers)
        out += self.chart(
            id: "latency-\(index)", title: "Response time (ms)", xLabel: "s",
            series: [("p99", t.map { ($0.t, $0.p99Ms) }), ("p50", t.map { ($0.t, $0.p50Ms) })],
            markers: markers)
        let cpuSeries = (p.cpu + [p.machineCPU]).filter { !$0.samples.isEmpty }
            .map { s in (s.name, s.samples.map { ($0.t, $0.percent) }) }
        out += self.chart(
            id: "cpu-\(index)", title: "CPU % (process: 100 = one core; machine: all cores)", xLabel: "s",
            series: cpuSeries, markers: markers)
        if !p.nodes.isEmpty {
            out += self.chart(
                id: "nodes-cpu-\(index)", title: "CPU % per node (100 = one core)", xLabel: "s",
                series: p.nodes.map { n in (n.name, n.samples.map { ($0.t, $0.percent) }) }, markers: markers)
            out += self.chart(
                id: "nodes-memory-\(index)", title: "Memory MiB per node (resident)", xLabel: "s",
                series: p.nodes.map { n in (n.name, n.samples.compactMap { pt in pt.rssMiB.map { (pt.t, $0) } }) },
                markers: markers)
        }
        let memorySeries = (p.cpu + [p.machineCPU]).filter { $0.maxMiB != nil }
            .map { s in (s.name, s.samples.compactMap { point in point.rssMiB.map { (point.t, $0) } }) }
        if !memorySeries.isEmpty {
            out += self.chart(
                id: "memory-\(index)", title: "Memory MiB (process: resident; machine: used)", xLabel: "s",
                series: memorySeries, markers: markers)
        }
        if !p.replicas.isEmpty {
            // The autoscaler's replicas beside the figures above, each decision marked.
            let series = p.replicas.flatMap { r in
                [
                    ("\(r.service) replicas", r.samples.map { ($0.t, Double($0.current)) }),
                    ("\(r.service) ready", r.samples.map { ($0.t, Double($0.ready)) }),
                    ("\(r.service) desired", r.samples.map { ($0.t, Double($0.desired)) }),
                ]
            }
            let decisions = p.replicas.flatMap { r in
                r.decisions.map { (x: $0.t, label: "\(r.service) \($0.from)→\($0.to)") }
            }
            out += self.chart(
                id: "replicas-\(index)", title: "Replicas (the director's autoscaler)", xLabel: "s", series: series,
                markers: markers + decisions)
            // Each replica's CPU and memory, as the director measured them.
            let perReplica = p.replicas.flatMap { r in r.perReplica.map { ("\(r.service) \($0.name)", $0) } }
            if !perReplica.isEmpty {
                out += self.chart(
                    id: "replica-cpu-\(index)", title: "CPU % per replica (100 = one core)", xLabel: "s",
                    series: perReplica.map { name, s in (name, s.samples.map { ($0.t, $0.percent) }) },
                    markers: decisions)
                out += self.chart(
                    id: "replica-memory-\(index)", title: "Memory MiB per replica (resident)", xLabel: "s",
                    series: perReplica.map { name, s in
                        (name, s.samples.compactMap { pt in pt.rssMiB.map { (pt.t, $0) } })
                    },
                    markers: decisions)
            }
            // The metric values the autoscaler decided on, one line per service and metric.
            let metricSeries = p.replicas.flatMap { r in
                Set(r.samples.flatMap { ($0.metrics ?? [:]).keys }).sorted().map { name in
                    (
                        "\(r.service) \(name)",
                        r.samples.compactMap { point in point.metrics?[name].map { (point.t, $0) } }
                    )
                }
            }
            if !metricSeries.isEmpty {
                out += self.chart(
                    id: "scale-metrics-\(index)", title: "Autoscaler metrics (current values)", xLabel: "s",
                    series: metricSeries, markers: decisions)
            }
        }
        out += self.percentileChart(id: "percentiles-\(index)", points: p.percentiles)
        return out + "</div>\n"
    }

    static func sweep(_ s: SweepReport) -> String {
        let f = BenchFormat.self
        var out = "<h2>Sweep \(escape(s.name))</h2>\n<p>\(escape(s.url)); sustained = loss under "
        out += "\(f.number(s.maxLossPercent))% and at least 98% of the rate answered. "
        out +=
            s.bestRate.map { "Highest sustained: <b>\(f.number($0, decimals: 0)) req/s</b>." } ?? "No rate sustained."
        out += "</p>\n<table><tr><th>offered req/s</th><th>achieved</th><th>loss %</th><th>p99 ms</th>"
        out += "<th>sustained</th><th>CPU % (mean)</th></tr>\n"
        for step in s.steps {
            let cpu = step.cpuPercent.sorted { $0.key < $1.key }.map { "\($0.key) \(f.fixed($0.value, 0))" }
            out +=
                "<tr><td>\(f.number(step.offeredRate, decimals: 0))</td><td>\(f.number(step.achievedRate, decimals: 0))</td>"
            out += "<td>\(f.fixed(step.lossPercent, 2))</td><td>\(f.ms(step.p99Ms))</td>"
            out += "<td>\(step.sustained ? "yes" : "no")</td><td>\(escape(cpu.joined(separator: ", ")))</td></tr>\n"
        }
        out += "</table>\n<div class=charts>\n"
        let steps = s.steps.sorted { $0.offeredRate < $1.offeredRate }
        out += self.chart(
            id: "sweep-\(s.name)", title: "Achieved vs offered (req/s)", xLabel: "offered req/s",
            series: [
                ("achieved", steps.map { ($0.offeredRate, $0.achievedRate) }),
                ("offered", steps.map { ($0.offeredRate, $0.offeredRate) }),
            ], markers: [])
        out += self.chart(
            id: "sweep-loss-\(s.name)", title: "Loss % and p99 ms", xLabel: "offered req/s",
            series: [
                ("loss %", steps.map { ($0.offeredRate, $0.lossPercent) }),
                ("p99 ms", steps.map { ($0.offeredRate, $0.p99Ms) }),
            ], markers: [])
        return out + "</div>\n"
    }

    // MARK: charts

    static let width = 520.0, height = 260.0
    static let left = 56.0, right = 14.0, top = 28.0, bottom = 36.0

    /// A line chart. Markers are vertical dashed lines (fault times).
    static func chart(
        id: String, title: String, xLabel: String, series: [(String, [(Double, Double)])],
        markers: [(x: Double, label: String)]
    ) -> String {
        let points = series.flatMap(\.1)
        let xMax = self.niceCeiling(max(points.map(\.0).max() ?? 1, markers.map(\.x).max() ?? 0, 1e-9))
        let xMin = min(0, points.map(\.0).min() ?? 0)
        let yMax = self.niceCeiling(max(points.map(\.1).max() ?? 1, 1e-9))
        return self.frame(
            id: id, title: title, xLabel: xLabel, xTicks: self.ticks(xMin, xMax), yTicks: self.ticks(0, yMax),
            x: { ($0 - xMin) / (xMax - xMin) }, y: { $0 / yMax }, series: series, markers: markers)
    }

    /// Latency by percentile, x on the usual HdrHistogram scale: 1 / (1 − p), so 90, 99, 99.9 are evenly spaced.
    static func percentileChart(id: String, points: [PercentilePoint]) -> String {
        func position(_ percentile: Double) -> Double {
            Foundationless.log10(1 / max(1 - min(percentile, 99.9999) / 100, 1e-6))
        }
        let xMax = max(3, (points.map { position($0.percentile) }.max() ?? 3).rounded(.up))
        let yMax = self.niceCeiling(max(points.map(\.ms).max() ?? 1, 1e-9))
        let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        let xTicks = (0...Int(xMax)).map { (Double($0), labels[min($0, labels.count - 1)]) }
        return self.frame(
            id: id, title: "Response time by percentile (ms)", xLabel: "percentile", xTicks: xTicks,
            yTicks: self.ticks(0, yMax), x: { $0 / xMax }, y: { $0 / yMax },
            series: [("latency", points.map { (position($0.percentile), $0.ms) })], markers: [])
    }

    static func frame(
        id: String, title: String, xLabel: String, xTicks: [(Double, String)], yTicks: [(Double, String)],
        x: (Double) -> Double, y: (Double) -> Double, series: [(String, [(Double, Double)])],
        markers: [(x: Double, label: String)]
    ) -> String {
        let w = self.width - self.left - self.right
        let h = self.height - self.top - self.bottom
        func px(_ v: Double) -> String { BenchFormat.fixed(self.left + min(max(x(v), 0), 1) * w, 1) }
        func py(_ v: Double) -> String { BenchFormat.fixed(self.top + h - min(max(y(v), 0), 1) * h, 1) }
        var svg = "<svg class=\"chart\" id=\"\(escape(id))\" xmlns=\"http://www.w3.org/2000/svg\" "
        svg +=
            "width=\"\(Int(self.width))\" height=\"\(Int(self.height))\" viewBox=\"0 0 \(Int(self.width)) \(Int(self.height))\" "
        svg += "role=\"img\" aria-label=\"\(escape(title))\">\n"
        svg += "<text x=\"\(Int(self.left))\" y=\"16\" font-weight=\"600\">\(escape(title))</text>\n"
        for (value, label) in yTicks {
            svg +=
                "<line class=\"grid\" x1=\"\(Int(self.left))\" x2=\"\(Int(self.left + w))\" y1=\"\(py(value))\" y2=\"\(py(value))\"/>"
            svg +=
                "<text x=\"\(Int(self.left - 4))\" y=\"\(py(value))\" text-anchor=\"end\" dy=\"4\">\(escape(label))</text>\n"
        }
        for (value, label) in xTicks {
            svg +=
                "<text x=\"\(px(value))\" y=\"\(Int(self.top + h + 14))\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        svg +=
            "<text x=\"\(Int(self.left + w))\" y=\"\(Int(self.height - 4))\" text-anchor=\"end\">\(escape(xLabel))</text>\n"
        svg +=
            "<line class=\"axis\" x1=\"\(Int(self.left))\" x2=\"\(Int(self.left))\" y1=\"\(Int(self.top))\" y2=\"\(Int(self.top + h))\"/>"
        svg +=
            "<line class=\"axis\" x1=\"\(Int(self.left))\" x2=\"\(Int(self.left + w))\" y1=\"\(Int(self.top + h))\" y2=\"\(Int(self.top + h))\"/>\n"
        for (i, marker) in markers.enumerated() {
            svg +=
                "<line class=\"fault\" x1=\"\(px(marker.x))\" x2=\"\(px(marker.x))\" y1=\"\(Int(self.top))\" y2=\"\(Int(self.top + h))\"/>"
            svg +=
                "<text class=\"fault-label\" x=\"\(px(marker.x))\" y=\"\(Int(self.top) + 10 + 11 * (i % 3))\" dx=\"3\">"
            svg += "\(escape(marker.label))</text>\n"
        }
        for (i, (name, points)) in series.enumerated() {
            let color = self.palette[i % self.palette.count]
            let coordinates = points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            svg += "<polyline class=\"series\" data-series=\"\(escape(name))\" fill=\"none\" stroke=\"\(color)\" "
            svg += "stroke-width=\"1.6\" points=\"\(coordinates)\"/>\n"
            let lx = Int(self.left) + 8 + (i % 4) * 110
            let ly = Int(self.top) + 12 + (i / 4) * 14
            svg += "<rect x=\"\(lx)\" y=\"\(ly - 8)\" width=\"10\" height=\"3\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(lx + 14)\" y=\"\(ly - 4)\">\(escape(name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// 1, 2, 2.5 or 5 times a power of ten, at least `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        while magnitude > value { magnitude /= 10 }
        for factor in [1.0, 2, 2.5, 5, 10] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    static func ticks(_ low: Double, _ high: Double) -> [(Double, String)] {
        let step = self.niceCeiling((high - low) / 5)
        var out: [(Double, String)] = []
        var v = low
        while v <= high + step * 1e-6 && out.count < 12 {
            out.append((v, BenchFormat.number(v)))
            v += step
        }
        return out
    }
}

enum Foundationless {
    static func log10(_ x: Double) -> Double { Glibc.log10(x) }
}
