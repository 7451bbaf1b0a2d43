import NIOCore

/// Something with a deadline that the loop's sweeper checks.
protocol TimedConnection: AnyObject {
    /// Position in the loop's registry, kept by `LoopContext`.
    var registryIndex: Int { get set }
    func checkTimeout(now: UInt64)
    /// The director is shutting down: finish what is in flight, take nothing new, close when idle.
    func drain()
}

extension TimedConnection {
    func drain() {}
}

/// What belongs to one event loop: its upstream connection pools, and the registry of connections whose
/// timeouts one repeating task checks (a coarse clock instead of a timer per request).
///
/// Only touched on its own loop; `@unchecked Sendable` so that the listener can hand it to child channels.
final class LoopContext: @unchecked Sendable {
    let eventLoop: EventLoop
    /// Coarse monotonic time (ns), updated every tick; connections stamp activity with it for free.
    private(set) var now: UInt64

    /// The same clock in seconds: the time the pure core's schedulers and persistence templates are given.
    var seconds: Double { Double(self.now) / 1e9 }
    private var registry: [TimedConnection] = []
    /// Idle upstream connections of the NIOHTTP1 proxy.
    let httpPool = UpstreamPool<HTTPProxyHandler>()
    private var sweeper: RepeatedTask?
    static let tick = TimeAmount.milliseconds(100)
    /// Set on SIGTERM: http connections answer with `Connection: close` and idle ones close.
    private(set) var draining = false

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        self.now = NIODeadline.now().uptimeNanoseconds
    }

    func start() {
        self.eventLoop.execute {
            self.sweeper = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.tick, delay: Self.tick) { _ in
                self.sweep()
            }
        }
    }

    func stop() {
        self.eventLoop.execute {
            self.sweeper?.cancel()
            self.sweeper = nil
        }
    }

    /// Starts draining this loop's connections (on its own loop).
    func drain() {
        self.eventLoop.execute {
            self.draining = true
            var index = self.registry.count - 1
            while index >= 0 {
                if index < self.registry.count { self.registry[index].drain() }
                index -= 1
            }
        }
    }

    private func sweep() {
        self.now = NIODeadline.now().uptimeNanoseconds
        // Iterate backwards: a check may close a connection, which unregisters it (swap-remove).
        var index = self.registry.count - 1
        while index >= 0 {
            if index < self.registry.count {
                self.registry[index].checkTimeout(now: self.now)
            }
            index -= 1
        }
    }

    @inline(__always)
    func register(_ connection: TimedConnection) {
        connection.registryIndex = self.registry.count
        self.registry.append(connection)
    }

    @inline(__always)
    func unregister(_ connection: TimedConnection) {
        let index = connection.registryIndex
        guard index >= 0, index < self.registry.count, self.registry[index] === connection else { return }
        let last = self.registry.removeLast()
        if index < self.registry.count {
            self.registry[index] = last
            last.registryIndex = index
        }
        connection.registryIndex = -1
    }
}

/// All loops' contexts, found by the loop a channel lives on.
struct LoopContexts: Sendable {
    let byLoop: [ObjectIdentifier: LoopContext]

    init(group: EventLoopGroup) {
        var byLoop: [ObjectIdentifier: LoopContext] = [:]
        for loop in group.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = LoopContext(eventLoop: loop)
        }
        self.byLoop = byLoop
    }

    @inline(__always)
    func context(for loop: EventLoop) -> LoopContext {
        self.byLoop[ObjectIdentifier(loop)]!
    }

    var all: Dictionary<ObjectIdentifier, LoopContext>.Values { self.byLoop.values }
}
