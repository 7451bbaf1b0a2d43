import SwiftVSCore
import Testing

@Suite("Response-time histogram")
struct LatencyHistogramTests {
    @Test("buckets are about 19% wide: a time's bucket holds it within that")
    func buckets() {
        for nanos: UInt64 in [60_000, 1_000_000, 12_345_678, 2_000_000_000] {
            let middle = LatencyHistogram.seconds(bucket: LatencyHistogram.bucket(nanoseconds: nanos))
            #expect(abs(middle * 1e9 / Double(nanos) - 1) < 0.1, "\(nanos) ns → \(middle) s")
        }
        #expect(LatencyHistogram.bucket(nanoseconds: 1) == 0)
        #expect(LatencyHistogram.bucket(nanoseconds: .max) == LatencyHistogram.bucketCount - 1)
    }

    @Test("p50 and p99 over the window between two snapshots")
    func quantiles() {
        let histogram = LatencyHistogram()
        for _ in 0..<1000 { histogram.record(nanoseconds: 50_000_000) }  // before the window
        let older = histogram.snapshot()
        for _ in 0..<98 { histogram.record(nanoseconds: 1_000_000) }
        for _ in 0..<2 { histogram.record(nanoseconds: 200_000_000) }
        let newer = histogram.snapshot()
        let p50 = LatencyHistogram.quantile(0.5, newer: newer, older: older)!
        let p99 = LatencyHistogram.quantile(0.99, newer: newer, older: older)!
        #expect(abs(p50 - 0.001) < 0.0002 && abs(p99 - 0.2) < 0.03, "p50 \(p50) p99 \(p99)")
        #expect(LatencyHistogram.quantile(0.5, newer: older, older: older) == nil, "no requests, no percentile")
    }
}
