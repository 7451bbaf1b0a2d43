import Glibc

/// What SwiftVS reads of /proc, once: a process's CPU time and resident memory, for the bench's samplers and the
/// autoscaler's per-replica metrics.
public enum ProcStat {
    /// A /proc file's text (at most 1 MiB); nil if it cannot be read (the process is gone).
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
            if out.count > 1 << 20 { break }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    public static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of `pid` in clock ticks; nil when it is gone.
    public static func ticks(of pid: Int32) -> UInt64? {
        Self.read("/proc/\(pid)/stat").flatMap(Self.processTicks)
    }

    /// Resident memory of `pid` in bytes (/proc/PID/statm's second field, in pages); nil when it is gone.
    public static func residentBytes(of pid: Int32) -> Int64? {
        guard let text = Self.read("/proc/\(pid)/statm") else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The machine's used memory in bytes: MemTotal − MemAvailable from /proc/meminfo (what `free` shows as used
    /// plus what the kernel could not give back at once); nil if it cannot be read.
    public static func machineUsedBytes() -> Int64? {
        guard let text = Self.read("/proc/meminfo") else { return nil }
        var total: Int64?
        var available: Int64?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int64(fields[1]) else { continue }
            if fields[0] == "MemTotal:" { total = kib * 1024 }
            if fields[0] == "MemAvailable:" { available = kib * 1024 }
        }
        guard let total, let available else { return nil }
        return total - available
    }

    /// utime + stime (jiffies) of a process, from /proc/PID/stat. The command name may hold spaces and
    /// parentheses, so fields are counted from the last ')'.
    public static func processTicks(_ text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3 of the man page); utime and stime are fields 14 and 15.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// The command name in /proc/PID/stat (between the first '(' and the last ')').
    public static func processName(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// Percent of one core used between two readings of a process: 100 = one core busy the whole time.
    public static func percent(ticks: UInt64, previous: UInt64, seconds: Double, ticksPerSecond: Double) -> Double {
        guard seconds > 0, ticks >= previous else { return 0 }
        return Double(ticks - previous) / ticksPerSecond / seconds * 100
    }
}
