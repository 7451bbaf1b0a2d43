import Glibc
import Synchronization

/// The process's file descriptors: the limit, raising it, and telling a local exhaustion (the director ran out)
/// from a peer's failure.
public enum OpenFiles {
    /// The soft and hard RLIMIT_NOFILE.
    public static func limit() -> (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (a proxy holds two descriptors per client; shells start processes
    /// with 1024). Returns the limit before and after.
    @discardableResult
    public static func raiseToHard() -> (before: UInt64, after: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return (before, before) }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else { return (before, before) }
        return (before, UInt64(raised.rlim_cur))
    }

    /// Whether `code` says the director itself ran out of descriptors, buffers or memory: nothing was asked of the
    /// peer, so it says nothing of the peer's health.
    public static func isLocalExhaustion(_ code: Int32) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    /// What ran out, for the log: names the limit and how to raise it.
    public static func describeExhaustion(_ code: Int32) -> String {
        let (soft, _) = Self.limit()
        switch code {
        case EMFILE:
            return "the director is out of file descriptors: RLIMIT_NOFILE is \(soft)"
                + " (raise it: ulimit -n, or LimitNOFILE= in a systemd unit)"
        case ENFILE:
            return "the system is out of file descriptors (fs.file-max)"
        default:
            return "the director is out of memory or socket buffers: \(String(cString: strerror(code)))"
        }
    }
}
