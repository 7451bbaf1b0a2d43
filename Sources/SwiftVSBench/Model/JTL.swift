import Foundation
import Histogram

/// JMeter's CSV result file (JTL): read into a phase of the report, and written from the bench's own samples, so
/// that each side's tools read the other's results. Columns are found by the header row's names (JMeter writes
/// one with `jmeter.save.saveservice.print_field_names=true`); `timeStamp` is epoch ms, `elapsed` ms.
public enum JTL {
    public struct Sample: Sendable, Equatable {
        public var timeStamp: Int64
        public var elapsed: Int
        public var label: String
        public var responseCode: String
        public var success: Bool
        public var bytes: Int

        public init(timeStamp: Int64, elapsed: Int, label: String, responseCode: String, success: Bool, bytes: Int) {
            self.timeStamp = timeStamp
            self.elapsed = elapsed
            self.label = label
            self.responseCode = responseCode
            self.success = success
            self.bytes = bytes
        }
    }

    /// The columns written, in JMeter's default order (a subset its tools accept).
    public static let header =
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,bytes,Latency"

    public static func parse(_ text: String) throws(BenchSpecError) -> [Sample] {
        var lines = text.split(omittingEmptySubsequences: true) { $0 == "\n" || $0 == "\r\n" }.makeIterator()
        guard let first = lines.next() else { throw BenchSpecError("the JTL file is empty") }
        let names = Self.fields(first)
        func column(_ name: String) throws(BenchSpecError) -> Int {
            guard let index = names.firstIndex(of: name) else {
                throw BenchSpecError(
                    "the JTL file has no '\(name)' column (a CSV with a header row is needed: "
                        + "jmeter.save.saveservice.print_field_names=true)")
            }
            return index
        }
        let (time, elapsed, label, code, success) = (
            try column("timeStamp"), try column("elapsed"), try column("label"), try column("responseCode"),
            try column("success")
        )
        let bytes = names.firstIndex(of: "bytes")
        var samples: [Sample] = []
        var row = 1
        while let line = lines.next() {
            row += 1
            let f = Self.fields(line)
            guard f.count > max(time, elapsed, label, code, success), let stamp = Int64(f[time]),
                let took = Int(f[elapsed])
            else {
                throw BenchSpecError("the JTL file's line \(row) is not a sample: \(line.prefix(80))")
            }
            samples.append(
                Sample(
                    timeStamp: stamp, elapsed: took, label: f[label], responseCode: f[code],
                    success: f[success] == "true", bytes: bytes.flatMap { $0 < f.count ? Int(f[$0]) : nil } ?? 0))
        }
        return samples
    }

    /// A CSV line's fields; a field in double quotes may hold commas and doubled quotes.
    static func fields(_ line: Substring) -> [String] {
        var out: [String] = []
        var field = ""
        var quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    if let next = chars.next() {
                        if next == "\"" {
                            field.append("\"")
                        } else {
                            quoted = false
                            if next == "," {
                                out.append(field)
                                field = ""
                            } else {
                                field.append(next)
                            }
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
            } else if c == "\"" && field.isEmpty {
                quoted = true
            } else if c == "," {
                out.append(field)
                field = ""
            } else {
                field.append(c)
            }
        }
        out.append(field)
        return out
    }

    /// What a failed sample's code says, as the bench's causes: an HTTP status, or JMeter's "Non HTTP response
    /// code: EXCEPTION".
    static func cause(_ code: String) -> LossCause {
        if Int(code) != nil { return .status }
        if code.contains("ConnectException") || code.contains("HttpHostConnect") { return .connectRefused }
        if code.contains("ConnectTimeout") { return .connectTimeout }
        if code.contains("SocketTimeout") { return .responseTimeout }
        if code.contains("NoHttpResponse") || code.contains("SocketException") || code.contains("Reset") {
            return .reset
        }
        if code.contains("UnknownHost") || code.contains("NoRouteToHost") { return .connectError }
        return .badResponse
    }

    /// The samples as one phase of a report: counters, errors by response code, latency percentiles, and a
    /// timeline of `interval`-second buckets by each sample's end.
    public static func phase(
        name: String, samples: [Sample], spec: LoadSpec, cpu: [CPUSeries] = [],
        machine: CPUSeries = .init(name: "machine"),
        interval: Double = 1
    ) -> PhaseReport {
        var counters = LoadCounters()
        var errors: [String: Int] = [:]
        var all = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        let start = samples.map(\.timeStamp).min() ?? 0
        let end = samples.map { $0.timeStamp + Int64($0.elapsed) }.max() ?? start
        let buckets = max(1, Int((Double(end - start) / 1000 / interval).rounded(.up)))
        var bucketCounters = [LoadCounters](repeating: LoadCounters(), count: buckets)
        var bucketLatency = [Histogram<UInt64>](
            repeating: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three),
            count: buckets)
        for sample in samples {
            let micros = UInt64(max(0, sample.elapsed)) * 1000
            let b = min(buckets - 1, Int(Double(sample.timeStamp + Int64(sample.elapsed) - start) / 1000 / interval))
            counters.attempted += 1
            bucketCounters[b].attempted += 1
            if let status = Int(sample.responseCode), (100...599).contains(status) {
                counters.statusClasses[status / 100 - 1] += 1
            }
            counters.bytesIn += sample.bytes
            bucketCounters[b].bytesIn += sample.bytes
            if sample.success {
                counters.succeeded += 1
                bucketCounters[b].succeeded += 1
                _ = all.record(micros)
                _ = bucketLatency[b].record(micros)
            } else {
                counters.fail(Self.cause(sample.responseCode))
                bucketCounters[b].fail(Self.cause(sample.responseCode))
                errors[sample.responseCode, default: 0] += 1
            }
        }
        let timeline = bucketCounters.indices.map { i in
            let h = bucketLatency[i]
            return TimelinePoint(
                t: Double(i + 1) * interval, succeeded: bucketCounters[i].succeeded, failed: bucketCounters[i].failed,
                requestsPerSecond: Double(bucketCounters[i].succeeded) / interval,
                megabytesPerSecond: Double(bucketCounters[i].bytesIn) / interval / 1_000_000,
                p50Ms: h.totalCount > 0 ? Double(h.valueAtPercentile(50)) / 1000 : 0,
                p99Ms: h.totalCount > 0 ? Double(h.valueAtPercentile(99)) / 1000 : 0,
                maxMs: h.totalCount > 0 ? Double(h.max) / 1000 : 0)
        }
        var phase = PhaseReport(
            name: name, spec: spec, elapsedSeconds: Double(end - start) / 1000, counters: counters, unfinished: 0,
            latency: LoadPhase.summary(all), percentiles: LoadPhase.curve(all), timeline: timeline, cpu: cpu,
            machineCPU: machine)
        phase.errorsByCode = errors
        return phase
    }

    /// Samples as a JTL CSV file with its header row.
    public static func write(_ samples: [Sample]) -> String {
        func quoted(_ text: String) -> String {
            text.contains(",") || text.contains("\"")
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var out = Self.header + "\n"
        for s in samples {
            out += "\(s.timeStamp),\(s.elapsed),\(quoted(s.label)),\(quoted(s.responseCode)),,swiftvs bench,text,"
            out += "\(s.success),\(s.bytes),\(s.elapsed)\n"
        }
        return out
    }
}
