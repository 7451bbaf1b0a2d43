/// IPVS `dh`: a 256-bucket table filled with the servers in turn (weights only decide availability); the key
/// times 2654435761, masked to 8 bits, picks the bucket. A quiesced or overloaded server means no pick; the keys of
/// a server out of rotation are rehashed over the others.
public struct DestinationHashingScheduler: SchedulerAlgorithm {
    static let size = 256
    let buckets: [Int]

    public init(servers: [RealServer], flags: SchedulerFlags) {
        var buckets = [Int](repeating: -1, count: Self.size)
        if !servers.isEmpty {
            for bucket in 0..<Self.size {
                buckets[bucket] = bucket % servers.count
            }
        }
        self.buckets = buckets
    }

    @inline(__always)
    static func bucket(_ key: UInt32) -> Int {
        Int((key &* 2_654_435_761) & UInt32(Self.size - 1))
    }

    public mutating func pick<R: RandomNumberGenerator>(
        _ servers: [RealServer], _ input: PickInput, _ random: inout R
    ) -> Int? {
        let index = self.buckets[Self.bucket(input.key)]
        guard index >= 0 else { return nil }
        if servers[index].isAvailable { return index }
        // A quiesced or overloaded server refuses (as IPVS dh); one out of rotation hands its keys on, rehashed so
        // that they spread over the others instead of all falling to its neighbour.
        guard !servers[index].inRotation else { return nil }
        for offset in 1..<UInt32(Self.size) {
            let candidate = self.buckets[Int(KeyHash.mix(input.key &+ offset &* 0x9E37_79B9) & UInt32(Self.size - 1))]
            if servers[candidate].isAvailable { return candidate }
        }
        return nil
    }
}
