/// The `process` provider's replicas as a pure state machine: which to start, which to drain and stop, and when to
/// start again one that exited. The driver spawns and signals processes and changes the pool; it feeds back what
/// happened (spawned, passed its health check, exited) with the time, and each call returns what to do next.
///
/// ```
///  (scale up) ──▶ starting ──health passes──▶ serving ──(scale in, fewest connections)──▶ draining
///                   │  ▲                          │                                      │ idle, or drain_timeout
///                   │  └── restart after back-off ┴── exited ──▶ crashed                  ▼
///                   └───────────(scale in: not serving yet)───────────────────────▶ stopping ──exited──▶ (gone)
///                                                                   SIGTERM, then SIGKILL after stop_timeout
/// ```
/// A replica counts toward the desired number while starting, serving or crashed (it will be started again); a
/// draining or stopping one is on its way out. Replica `i` listens on the `i`-th port of the range.
public struct ReplicaSet: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case starting
        /// In rotation since `since` (warming while within `slow_start` of it).
        case serving(since: Double)
        /// Weight 0 since `since`: its requests and connections finish, no new ones come.
        case draining(since: Double)
        /// SIGTERM sent at `since`; SIGKILL too once `killed`.
        case stopping(since: Double, killed: Bool)
        /// Exited on its own with `status` (the shell's number: 128 + signal); started again at `restartAt`.
        case crashed(status: Int32, restartAt: Double)
    }

    public struct Replica: Sendable, Equatable {
        public let index: Int
        public let port: Int
        public var phase: Phase
        /// When its current process started.
        public var started: Double
        public var restarts = 0
        /// The delay before the next restart.
        public var backoff: Double
        public var lastExit: Int32?

        /// Counts toward the desired number.
        public var active: Bool {
            switch self.phase {
            case .starting, .serving, .crashed: return true
            case .draining, .stopping: return false
            }
        }

        public var hasProcess: Bool {
            if case .crashed = self.phase { return false }
            return true
        }
    }

    public enum Action: Sendable, Equatable {
        /// Start the process of replica `index` on `port`.
        case spawn(index: Int, port: Int)
        /// Add `port` to the pool; it takes requests once its health check passes.
        case join(port: Int)
        /// Weight 0 for `port`: no new requests.
        case drain(port: Int)
        /// Take `port` out of the pool.
        case leave(port: Int)
        case signal(index: Int, signal: Int32)
    }

    public struct Settings: Sendable, Equatable {
        public var ports: ClosedRange<Int>
        public var drainTimeout: Double
        public var stopTimeout: Double
        public var restartDelay: Double
        public var maxRestartDelay: Double

        public init(
            ports: ClosedRange<Int>, drainTimeout: Double = 30, stopTimeout: Double = 10,
            restartDelay: Double = 1, maxRestartDelay: Double = 30
        ) {
            self.ports = ports
            self.drainTimeout = drainTimeout
            self.stopTimeout = stopTimeout
            self.restartDelay = restartDelay
            self.maxRestartDelay = maxRestartDelay
        }
    }

    /// SIGTERM and SIGKILL, as numbers (the core has no Glibc).
    public static let sigterm: Int32 = 15
    public static let sigkill: Int32 = 9
    /// A replica that exits within this long of its start backs off longer each time.
    public static let crashWindow: Double = 60

    public let settings: Settings
    public private(set) var replicas: [Int: Replica] = [:]
    public private(set) var desired = 0

    public init(settings: Settings) {
        self.settings = settings
    }

    /// Replicas counting toward the desired number (HPA's "current": the scale's spec).
    public var current: Int { self.replicas.values.filter(\.active).count }
    /// Replicas in rotation.
    public var ready: Int {
        self.replicas.values.filter {
            if case .serving = $0.phase { return true }
            return false
        }.count
    }

    public func replica(port: Int) -> Replica? { self.replicas.values.first { $0.port == port } }

    /// Sets the desired count: starts replicas in the lowest free slots, or takes out the surplus (a crashed one
    /// first, then one not serving yet, then the serving one with the fewest `connections`, by port).
    public mutating func scale(to count: Int, now: Double, connections: [Int: Int] = [:]) -> [Action] {
        self.desired = max(0, min(count, self.settings.ports.count))
        var actions: [Action] = []
        while self.current < self.desired {
            guard let index = (0..<self.settings.ports.count).first(where: { self.replicas[$0] == nil }) else { break }
            let port = self.settings.ports.lowerBound + index
            self.replicas[index] = Replica(
                index: index, port: port, phase: .starting, started: now, backoff: self.settings.restartDelay)
            actions += [.spawn(index: index, port: port), .join(port: port)]
        }
        while self.current > self.desired {
            let candidates = self.replicas.values.filter(\.active)
            func rank(_ replica: Replica) -> (Int, Int, Int) {
                switch replica.phase {
                case .crashed: return (0, 0, -replica.index)
                case .starting: return (1, 0, -replica.index)
                default: return (2, connections[replica.port] ?? 0, -replica.index)
                }
            }
            // Among equals, the highest slot goes first, so the low ports stay in use.
            guard let victim = candidates.min(by: { rank($0) < rank($1) }) else { break }
            actions += self.retire(victim.index, now: now)
        }
        return actions
    }

    private mutating func retire(_ index: Int, now: Double) -> [Action] {
        guard var replica = self.replicas[index] else { return [] }
        switch replica.phase {
        case .crashed:
            self.replicas[index] = nil
            return []
        case .starting:
            replica.phase = .stopping(since: now, killed: false)
            self.replicas[index] = replica
            return [.leave(port: replica.port), .signal(index: index, signal: Self.sigterm)]
        case .serving:
            replica.phase = .draining(since: now)
            self.replicas[index] = replica
            return [.drain(port: replica.port)]
        case .draining, .stopping:
            return []
        }
    }

    /// The replica on `port` passed its health check: in rotation.
    public mutating func ready(port: Int, now: Double) {
        guard let index = self.replica(port: port)?.index, self.replicas[index]?.phase == .starting else { return }
        self.replicas[index]!.phase = .serving(since: now)
    }

    /// The process of replica `index` could not be started: as an exit with status 127, the shell's.
    public mutating func spawnFailed(index: Int, now: Double) -> [Action] {
        self.exited(index: index, status: 127, now: now)
    }

    /// The process of replica `index` exited with `status`.
    public mutating func exited(index: Int, status: Int32, now: Double) -> [Action] {
        guard var replica = self.replicas[index] else { return [] }
        replica.lastExit = status
        switch replica.phase {
        case .stopping:
            self.replicas[index] = nil
            return []
        case .draining:
            // It was on its way out anyway.
            self.replicas[index] = nil
            return [.leave(port: replica.port)]
        case .crashed:
            return []
        case .starting, .serving:
            // A quick death doubles the wait before the next start; a replica that lived a while starts again
            // after the first delay.
            if now - replica.started < Self.crashWindow {
                if replica.restarts > 0 { replica.backoff = min(self.settings.maxRestartDelay, replica.backoff * 2) }
            } else {
                replica.backoff = self.settings.restartDelay
            }
            replica.phase = .crashed(status: status, restartAt: now + replica.backoff)
            self.replicas[index] = replica
            return [.leave(port: replica.port)]
        }
    }

    /// Time passes: drained replicas stop, stopping ones are killed after `stopTimeout`, crashed ones start again.
    /// `connections` are each port's requests or connections in flight.
    public mutating func tick(now: Double, connections: [Int: Int] = [:]) -> [Action] {
        var actions: [Action] = []
        for index in self.replicas.keys.sorted() {
            guard var replica = self.replicas[index] else { continue }
            switch replica.phase {
            case .draining(let since):
                guard (connections[replica.port] ?? 0) == 0 || now - since >= self.settings.drainTimeout else {
                    continue
                }
                replica.phase = .stopping(since: now, killed: false)
                actions += [.leave(port: replica.port), .signal(index: index, signal: Self.sigterm)]
            case .stopping(let since, false) where now - since >= self.settings.stopTimeout:
                replica.phase = .stopping(since: since, killed: true)
                actions.append(.signal(index: index, signal: Self.sigkill))
            case .crashed(_, let restartAt) where now >= restartAt:
                replica.phase = .starting
                replica.started = now
                replica.restarts += 1
                actions += [.spawn(index: index, port: replica.port), .join(port: replica.port)]
            default:
                continue
            }
            self.replicas[index] = replica
        }
        return actions
    }

    /// The director stops: every replica with a process leaves and gets SIGTERM.
    public mutating func stopAll(now: Double) -> [Action] {
        self.desired = 0
        var actions: [Action] = []
        for index in self.replicas.keys.sorted() {
            guard var replica = self.replicas[index] else { continue }
            if !replica.hasProcess {
                self.replicas[index] = nil
                continue
            }
            if case .stopping = replica.phase { continue }
            replica.phase = .stopping(since: now, killed: false)
            self.replicas[index] = replica
            actions += [.leave(port: replica.port), .signal(index: index, signal: Self.sigterm)]
        }
        return actions
    }
}
