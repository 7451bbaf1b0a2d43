import Synchronization
import SwiftVSSystem
import SwiftVSCore

#if canImport(Glibc)
import Glibc
#endif

/// A process whose CPU use is sampled: by PID, by command name (every process with that name, summed, so a restart
/// under a new PID is followed), or by a closure that knows the current PID (a scenario's own processes).
public struct WatchTarget: Sendable {
    public var name: String
    public var resolve: @Sendable () -> [Int32]

    public init(name: String, resolve: @escaping @Sendable () -> [Int32]) {
        self.name = name
        self.resolve = resolve
    }

    /// `1234` watches that PID. A command name watches the one process of that name, and follows it when it is
    /// restarted under a new PID (while exactly one runs); never every process of that name on the machine: if
    /// several run when the bench starts, it says so and asks for a PID (a scenario watches the processes it
    /// started, by their PIDs).
    public static func parse(_ text: String) throws(BenchSpecError) -> WatchTarget {
        if let pid = Int32(text), pid > 0 {
            let name = ProcStat.read("/proc/\(pid)/stat").flatMap(ProcStat.processName) ?? "pid"
            return WatchTarget(name: "\(name)[\(pid)]", resolve: { [pid] })
        }
        let running = ProcFiles.pids(named: text)
        guard running.count <= 1 else {
            let pids = running.map(String.init).joined(separator: ", ")
            throw BenchSpecError(
                "--watch \(text): \(running.count) processes are named \(text) (pids \(pids)); give the PID of the one to watch"
            )
        }
        let followed = FollowedProcess(name: text, pid: running.first)
        return WatchTarget(name: text, resolve: { followed.current() })
    }

    /// Resident memory of its processes now, summed (bytes).
    public func residentBytes() -> Int64 { self.resolve().compactMap(ProcStat.residentBytes).reduce(0, +) }

    public static var current: WatchTarget {
        let pid = getpid()
        return WatchTarget(name: "bench", resolve: { [pid] })
    }
}

/// The one process of a name that a `--watch NAME` follows: its PID while it runs, then the next one of that name
/// if exactly one runs.
final class FollowedProcess: Sendable {
    let name: String
    let pid: Mutex<Int32?>

    init(name: String, pid: Int32?) {
        self.name = name
        self.pid = Mutex(pid)
    }

    func current() -> [Int32] {
        self.pid.withLock { pid in
            if let known = pid, let stat = ProcStat.read("/proc/\(known)/stat"),
                ProcStat.processName(stat) == String(self.name.prefix(15))
            {
                return [known]
            }
            let running = ProcFiles.pids(named: self.name)
            pid = running.count == 1 ? running[0] : nil
            return running.count == 1 ? running : []
        }
    }
}

enum ProcFiles {
    /// Every process: PID and the text of its /proc/PID/stat.
    static func allProcesses() -> [(pid: Int32, stat: String)] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var out: [(Int32, String)] = []
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = Int32(entryName), let stat = ProcStat.read("/proc/\(pid)/stat") else { continue }
            out.append((pid, stat))
        }
        return out
    }

    /// PIDs whose command name (as in /proc/PID/stat, at most 15 characters) matches `name`.
    static func pids(named name: String) -> [Int32] {
        let wanted = String(name.prefix(15))
        let me = getpid()  // the bench is shown as "bench"
        return self.allProcesses().filter { $0.pid != me && ProcStat.processName($0.stat) == wanted }.map(\.pid)
            .sorted()
    }
}

/// Samples /proc once per call: each watched process's utime + stime and resident memory, and the whole machine's
/// CPU and used memory.
///
/// The machine figure is the sum over every process, not /proc/stat: this kernel (like many) counts /proc/stat by
/// sampling on the scheduler tick, and a load driven by timers (an open-loop bench, or servers answering it) can
/// run in step with the tick and be undercounted several times over (5% shown for 15% used, on this project's VM).
/// A process's utime + stime come from the scheduler's exact runtime. Processes that start and end between two
/// samples are missed.
final class CPUSampler: @unchecked Sendable {  // used from one task at a time
    let targets: [WatchTarget]
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    let cores = Double(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    var previous: [Int32: UInt64] = [:]
    var previousAll: [Int32: UInt64]?
    var previousTime: UInt64 = 0
    var series: [CPUSeries]
    var machine = CPUSeries(name: "machine")

    init(targets: [WatchTarget]) {
        self.targets = targets
        self.series = targets.map { CPUSeries(name: $0.name) }
    }

    /// Takes a sample; `t` is seconds since the phase started. The first call only sets the baseline.
    func sample(t: Double) {
        let now = Monotonic.nanoseconds()
        let seconds = Double(now &- self.previousTime) / 1e9
        let first = self.previousTime == 0
        var current: [Int32: UInt64] = [:]
        for (i, target) in self.targets.enumerated() {
            var percent = 0.0
            let resident = target.residentBytes()
            for pid in target.resolve() {
                guard let text = ProcStat.read("/proc/\(pid)/stat"), let ticks = ProcStat.processTicks(text) else {
                    continue
                }
                current[pid] = ticks
                if !self.series[i].pids.contains(pid) { self.series[i].pids.append(pid) }
                if let before = self.previous[pid] {
                    percent += ProcStat.percent(
                        ticks: ticks, previous: before, seconds: seconds,
                        ticksPerSecond: self.ticksPerSecond)
                }
            }
            if !first {
                self.series[i].samples.append(CPUPoint(t: t, percent: percent, rssMiB: Double(resident) / 1_048_576))
            }
        }
        var all: [Int32: UInt64] = [:]
        var busy = 0.0
        for (pid, stat) in ProcFiles.allProcesses() {
            guard let ticks = ProcStat.processTicks(stat) else { continue }
            all[pid] = ticks
            if let before = self.previousAll?[pid] {
                busy += ProcStat.percent(
                    ticks: ticks, previous: before, seconds: seconds, ticksPerSecond: self.ticksPerSecond)
            }
        }
        if self.previousAll != nil && !first {
            self.machine.samples.append(
                CPUPoint(
                    t: t, percent: min(100, busy / self.cores),
                    rssMiB: ProcStat.machineUsedBytes().map { Double($0) / 1_048_576 }))
        }
        self.previousAll = all
        self.previous = current
        self.previousTime = now
    }
}
