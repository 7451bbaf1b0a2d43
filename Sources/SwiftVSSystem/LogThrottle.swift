import Synchronization

/// Warnings that a storm would repeat thousands of times a second (a dead real server, an exhausted descriptor
/// table) are logged at most once every 5 s for each key, with how many were held back meanwhile.
public enum LogThrottle {
    private static let last = Mutex<[String: (at: UInt64, held: Int)]>([:])

    /// Whether a warning under `key` may be logged now; if so, how many under it were held back since the last.
    public static func allows(_ key: String, now: UInt64 = Monotonic.nanoseconds()) -> (Bool, held: Int) {
        Self.last.withLock { last in
            if let previous = last[key], now &- previous.at < 5_000_000_000 {
                last[key] = (previous.at, previous.held + 1)
                return (false, 0)
            }
            let held = last[key]?.held ?? 0
            last[key] = (now, 0)
            return (true, held)
        }
    }
}
