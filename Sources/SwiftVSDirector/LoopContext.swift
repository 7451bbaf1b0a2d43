import SwiftVSSystem
import NIOCore
import SwiftVSCore

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
    private let registry = SweepList()
    /// Idle upstream connections of the NIOHTTP1 proxy.
    var httpPool = IdlePool<ObjectIdentifier, UpstreamConnection>()
    private var sweeper: RepeatedTask?
    static let tick = TimeAmount.milliseconds(100)
    /// Set on SIGTERM: http connections answer with `Connection: close` and idle ones close.
    private(set) var draining = false

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        self.now = Monotonic.nanoseconds()
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
            self.registry.forEach { $0.drain() }
        }
    }

    private func sweep() {
        self.now = Monotonic.nanoseconds()
        let now = self.now
        self.registry.forEach { $0.checkTimeout(now: now) }
        for connection in self.httpPool.expire(now: now) { connection.closeIdle() }
    }

    @inline(__always)
    func register(_ connection: any SweptConnection) {
        self.registry.add(connection)
    }

    @inline(__always)
    func unregister(_ connection: any SweptConnection) {
        self.registry.remove(connection)
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
