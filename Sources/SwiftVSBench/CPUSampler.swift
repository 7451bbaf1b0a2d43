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
            let name = ProcFiles.read("/proc/\(pid)/stat").flatMap(ProcStat.processName) ?? "pid"
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
    static func read(_ path: String) -> String? {
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

    /// PIDs whose command name (as in /proc/PID/stat, at most 15 characters) matches `name`.
    static func pids(named name: String) -> [Int32] {
        let wanted = String(name.prefix(15))
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var out: [Int32] = []
        let me = getpid()
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = Int32(entryName), pid != me else { continue }  // the bench is shown as "bench"
            if let stat = read("/proc/\(pid)/stat"), ProcStat.processName(stat) == wanted { out.append(pid) }
        }
        return out.sorted()
    }
}

/// Samples /proc once per call: each watched process's utime + stime, and the whole machine's busy time.
final class CPUSampler: @unchecked Sendable {  // used from one task at a time
    let targets: [WatchTarget]
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    var previous: [Int32: UInt64] = [:]
    var previousMachine: (busy: UInt64, total: UInt64)?
    var previousTime: UInt64 = 0
    var series: [CPUSeries]
    var machine = CPUSeries(name: "machine")

    init(targets: [WatchTarget]) {
        self.targets = targets
        self.series = targets.map { CPUSeries(name: $0.name) }
    }

    /// Takes a sample; `t` is seconds since the phase started. The first call only sets the baseline.
    func sample(t: Double) {
        let now = nowNanoseconds()
        let seconds = Double(now &- self.previousTime) / 1e9
        let first = self.previousTime == 0
        var current: [Int32: UInt64] = [:]
        for (i, target) in self.targets.enumerated() {
            var percent = 0.0
            for pid in target.resolve() {
                guard let text = ProcFiles.read("/proc/\(pid)/stat"), let ticks = ProcStat.processTicks(text) else {
                    continue
                }
                current[pid] = ticks
                if !self.series[i].pids.contains(pid) { self.series[i].pids.append(pid) }
                if let before = self.previous[pid] {
                    percent += ProcStat.percent(ticks: ticks, previous: before, seconds: seconds,
                                                ticksPerSecond: self.ticksPerSecond)
                }
            }
            if !first { self.series[i].samples.append(CPUPoint(t: t, percent: percent)) }
        }
        let machineNow = ProcFiles.read("/proc/stat").flatMap(ProcStat.machine)
        if let machineNow, let before = self.previousMachine, !first {
            self.machine.samples.append(CPUPoint(t: t, percent: ProcStat.machinePercent(machineNow, before)))
        }
        self.previousMachine = machineNow
        self.previous = current
        self.previousTime = now
    }
}
