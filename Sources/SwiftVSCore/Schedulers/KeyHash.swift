/// The 32-bit keys the hashing schedulers read, made the way IPVS makes them.
public enum KeyHash {
    /// IPVS folds an address to 32 bits: IPv4 as its value, IPv6 as the XOR of its four words.
    @inline(__always)
    public static func fold(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        func word(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
                | UInt32(bytes[offset + 3])
        }
        if bytes.count == 4 { return word(0) }
        guard bytes.count == 16 else { return 0 }
        return word(0) ^ word(4) ^ word(8) ^ word(12)
    }

    public static func fold(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { self.fold($0) }
    }

    /// The `sh`/`mh` key of a client: its folded address plus (with the `port` flag) its port.
    @inline(__always)
    public static func source(folded: UInt32, port: Int, withPort: Bool) -> UInt32 {
        withPort ? folded &+ UInt32(truncatingIfNeeded: port) : folded
    }

    /// FNV-1a over a string key's bytes (path, query value, header or cookie).
    @inline(__always)
    public static func string<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var hash: UInt32 = 2_166_136_261
        for byte in bytes {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }

    /// The kernel's `hash_32`: the top `bits` bits of the value times the 32-bit golden ratio.
    @inline(__always)
    public static func hash32(_ value: UInt32, bits: UInt32) -> UInt32 {
        (value &* 0x61C8_8647) >> (32 - bits)
    }

    /// A full-avalanche 32-bit mix (MurmurHash3's finalizer), for Maglev's lookup.
    @inline(__always)
    public static func mix(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// A 64-bit hash of a string with a seed, for Maglev's permutations (stable across runs and machines).
    public static func string64(_ text: String, seed: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        // splitmix64 finalizer for avalanche
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 31)
    }
}
