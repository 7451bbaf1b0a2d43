/// IPVS `sh`: a 256-bucket table filled with the servers in order, each taking `weight` consecutive buckets
/// before the next; the key's `hash_32` picks the bucket. An unavailable server means no pick, unless the
/// `fallback` flag walks the table onward from the key's bucket.
public struct SourceHashingScheduler: SchedulerAlgorithm {
    static let bits: UInt32 = 8
    static let size = 1 << 8

    /// Bucket → server index; -1 when there are no servers.
    let buckets: [Int]
    let fallback: Bool

    public init(servers: [RealServer], flags: SchedulerFlags) {
        self.fallback = flags.fallback
        var buckets = [Int](repeating: -1, count: Self.size)
        if !servers.isEmpty {
            var server = 0
            var count = 0
            for bucket in 0..<Self.size {
                buckets[bucket] = server
                count += 1
                // A weight-0 server still takes one bucket per lap, as the kernel's `++d_count >= weight`.
                if count >= servers[server].configuredWeight {
                    server = (server + 1) % servers.count
                    count = 0
                }
            }
        }
        self.buckets = buckets
    }

    @inline(__always)
    static func bucket(_ key: UInt32, offset: Int) -> Int {
        (offset + Int(KeyHash.hash32(key, bits: Self.bits))) % Self.size
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        let first = Self.bucket(input.key, offset: 0)
        let index = self.buckets[first]
        guard index >= 0 else { return nil }
        if servers[index].isAvailable { return index }
        // A server out of rotation always hands its keys on; a quiesced or overloaded one only with sh-fallback.
        guard self.fallback || !servers[index].inRotation else { return nil }
        for offset in 0..<Self.size {
            let roffset = (offset + first) % Self.size
            let candidate = self.buckets[Self.bucket(input.key, offset: roffset)]
            if servers[candidate].isAvailable { return candidate }
        }
        return nil
    }
}
