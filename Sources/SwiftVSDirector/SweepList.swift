/// A connection that one loop's sweeper looks at: it keeps its place in the list, so that it leaves in O(1).
protocol SweptConnection: AnyObject {
    /// Position in its loop's `SweepList` (-1 when not in one), kept by the list.
    var sweepIndex: Int { get set }
    /// The sweeper's look, with the loop's coarse time: connect, header, body, server and idle timeouts.
    func checkTimeout(now: UInt64)
    /// The director is shutting down: finish what is in flight, take nothing new, close when idle.
    func drain()
}

extension SweptConnection {
    func drain() {}
}

/// The connections of one event loop that a coarse clock sweeps (a timer per request would cost more than a look
/// every 100 ms): added at the end, removed by moving the last into their place. The relay engine's loops and the
/// NIO loops' contexts both keep theirs here.
///
/// Confined to its loop's thread. A class, so that a connection may leave it (closing itself, or another) while
/// `forEach` runs.
final class SweepList {
    private var items: [any SweptConnection] = []

    var count: Int { self.items.count }
    var last: (any SweptConnection)? { self.items.last }

    @inline(__always)
    func add(_ connection: any SweptConnection) {
        connection.sweepIndex = self.items.count
        self.items.append(connection)
    }

    @inline(__always)
    func remove(_ connection: any SweptConnection) {
        let index = connection.sweepIndex
        guard index >= 0, index < self.items.count, self.items[index] === connection else { return }
        let last = self.items.removeLast()
        if index < self.items.count {
            self.items[index] = last
            last.sweepIndex = index
        }
        connection.sweepIndex = -1
    }

    /// Calls `body` with each connection, the last added first: one that leaves the list meanwhile (and moves the
    /// last into its place) makes no other be skipped or seen twice.
    func forEach(_ body: (any SweptConnection) -> Void) {
        var index = self.items.count - 1
        while index >= 0 {
            if index < self.items.count { body(self.items[index]) }
            index -= 1
        }
    }
}
