import Glibc

/// The one clock SwiftVS measures intervals with: CLOCK_MONOTONIC, which never steps back (NTP, a date change) and
/// is the clock SwiftNIO's deadlines use. Pure code takes the time as a parameter; drivers read it here.
public enum Monotonic {
    /// Nanoseconds since an arbitrary start (boot).
    @inline(__always)
    public static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    /// The same in seconds.
    @inline(__always)
    public static func seconds() -> Double {
        Double(Self.nanoseconds()) / 1e9
    }
}
