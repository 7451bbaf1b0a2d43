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

    /// `1234` watches that PID; anything else watches every process whose command name is that word.
    public static func parse(_ text: String) -> WatchTarget {
        if let pid = Int32(text), pid > 0 {
            let name = ProcStat.read("/proc/\(pid)/stat").flatMap(ProcStat.processName) ?? "pid"
            return WatchTarget(name: "\(name)[\(pid)]", resolve: { [pid] })
        }
        return WatchTarget(name: text, resolve: { ProcFiles.pids(named: text) })
    }

    public static var current: WatchTarget {
        let pid = getpid()
        return WatchTarget(name: "bench", resolve: { [pid] })
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

/// Samples /proc once per call: each watched process's utime + stime, and the whole machine's.
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
            if !first { self.series[i].samples.append(CPUPoint(t: t, percent: percent)) }
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
            self.machine.samples.append(CPUPoint(t: t, percent: min(100, busy / self.cores)))
        }
        self.previousAll = all
        self.previous = current
        self.previousTime = now
    }
}
