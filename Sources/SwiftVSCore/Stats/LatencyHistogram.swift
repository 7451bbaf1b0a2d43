import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Response times of one real server, counted in logarithmic buckets (four per doubling, from 50 µs to about a
/// minute, each about 19% wide), one atomic add per request. Percentiles over a window come from the difference
/// of two snapshots (`quantile`).
public final class LatencyHistogram: @unchecked Sendable {
    public static let bucketCount = 84
    /// The first bucket's lower bound, in nanoseconds.
    static let base = 50_000.0

    private let buckets: UnsafeMutablePointer<Atomic<Int>>

    public init() {
        self.buckets = .allocate(capacity: Self.bucketCount)
        for index in 0..<Self.bucketCount { (self.buckets + index).initialize(to: Atomic(0)) }
    }

    deinit {
        self.buckets.deinitialize(count: Self.bucketCount)
        self.buckets.deallocate()
    }

    /// The bucket a response time falls in (below 50 µs: the first; past the last: the last).
    public static func bucket(nanoseconds: UInt64) -> Int {
        guard nanoseconds > 50_000 else { return 0 }
        let index = Int((4 * log2(Double(nanoseconds) / 50_000)).rounded(.down))
        return min(Self.bucketCount - 1, max(0, index))
    }

    /// A bucket's representative time in seconds: the geometric middle of its bounds.
    public static func seconds(bucket: Int) -> Double {
        Self.base * exp2((Double(bucket) + 0.5) / 4) / 1e9
    }

    public func record(nanoseconds: UInt64) {
        self.buckets[Self.bucket(nanoseconds: nanoseconds)].wrappingAdd(1, ordering: .relaxed)
    }

    public func snapshot() -> [Int] {
        (0..<Self.bucketCount).map { self.buckets[$0].load(ordering: .relaxed) }
    }

    /// The `q` quantile (0...1) in seconds of the responses counted between `older` and `newer` snapshots; nil
    /// when there were none.
    public static func quantile(_ q: Double, newer: [Int], older: [Int]) -> Double? {
        let counts = zip(newer, older.isEmpty ? Array(repeating: 0, count: newer.count) : older).map { max(0, $0 - $1) }
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = max(1, Int((q * Double(total)).rounded(.up)))
        var seen = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= rank { return Self.seconds(bucket: index) }
        }
        return Self.seconds(bucket: counts.count - 1)
    }
}
