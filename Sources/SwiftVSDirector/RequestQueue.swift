import NIOCore
import SwiftVSCore
import Synchronization

/// A service's queue of requests that found every real server full (`maxconn`), or no replica up yet while the
/// autoscaler starts one: HAProxy's server queue with `timeout queue`, and Knative's activator for scale from zero.
///
/// First come, first served: whenever a slot frees (a request ends, a server comes up or is added, a weight
/// changes) the thread that freed it picks a real server for the oldest waiter, on that waiter's behalf, and hands
/// the slot to the waiter's own event loop (`deliver`). A waiter that has gone meanwhile (its timeout, its client)
/// gives the slot straight back, and the next waiter is served. A new request joins the line while anyone waits,
/// so that it cannot take the slot a waiter was owed.
///
/// The exchange (`HTTPExchange.queued`) owns the decision to wait and the timeout; this is the shared line.
final class RequestQueue: Sendable {
    struct Waiter: Sendable {
        let ticket: UInt64
        let key: UInt32
        let remote: SocketAddress?
        let since: UInt64
        /// Runs on the thread that freed the slot: must only hand it over to the waiter's loop.
        let deliver: @Sendable (RealServerSlot) -> Void
    }

    private struct Line {
        var waiters: [Waiter] = []
        /// Index of the oldest waiter in `waiters` (served from the front without moving the rest).
        var head = 0
        var nextTicket: UInt64 = 1

        var count: Int { self.waiters.count - self.head }

        mutating func compact() {
            if self.head > 64 && self.head * 2 > self.waiters.count {
                self.waiters.removeFirst(self.head)
                self.head = 0
            }
        }
    }

    private let line = Mutex(Line())
    /// Waiters now; read without the lock on every pick.
    let length = Atomic<Int>(0)
    /// Requests that waited and got a slot; the sum of their waits (ns) and the longest of the last sample.
    let served = Atomic<Int>(0)
    let waitedNanos = Atomic<Int>(0)
    let longestWaitNanos = Atomic<Int>(0)
    /// Requests refused because the queue was full, and requests that waited out `timeout`.
    let refused = Atomic<Int>(0)
    let timedOut = Atomic<Int>(0)

    /// Puts a request in line; nil when `limit` are already waiting (the caller answers 503 at once).
    func enqueue(
        key: UInt32, remote: SocketAddress?, now: UInt64, limit: Int,
        deliver: @escaping @Sendable (RealServerSlot) -> Void
    ) -> UInt64? {
        let ticket: UInt64? = self.line.withLock { line in
            guard line.count < limit else { return nil }
            let ticket = line.nextTicket
            line.nextTicket += 1
            line.waiters.append(Waiter(ticket: ticket, key: key, remote: remote, since: now, deliver: deliver))
            return ticket
        }
        if ticket == nil {
            self.refused.wrappingAdd(1, ordering: .relaxed)
        } else {
            self.length.wrappingAdd(1, ordering: .relaxed)
        }
        return ticket
    }

    /// The waiter with `ticket` leaves without a slot (`timedOut` when its time ran out); nothing if it was served.
    func cancel(_ ticket: UInt64, timedOut: Bool) {
        let removed = self.line.withLock { line -> Bool in
            guard let index = line.waiters[line.head...].firstIndex(where: { $0.ticket == ticket }) else {
                return false
            }
            if index == line.head {
                line.head += 1
                line.compact()
            } else {
                line.waiters.remove(at: index)
            }
            return true
        }
        guard removed else { return }
        self.length.wrappingSubtract(1, ordering: .relaxed)
        if timedOut { self.timedOut.wrappingAdd(1, ordering: .relaxed) }
    }

    /// Serves waiters, oldest first, while `pool` has a free slot for them.
    func serve(_ pool: VirtualService, now: UInt64) {
        while self.length.load(ordering: .relaxed) > 0 {
            let handed: Bool = self.line.withLock { line in
                guard line.count > 0 else { return false }
                let waiter = line.waiters[line.head]
                guard
                    let slot = pool.schedule(
                        key: waiter.key, remote: waiter.remote, now: Double(now) / 1e9, counting: false)
                else { return false }
                line.head += 1
                line.compact()
                self.length.wrappingSubtract(1, ordering: .relaxed)
                let waited = Int(now &- min(now, waiter.since))
                self.served.wrappingAdd(1, ordering: .relaxed)
                self.waitedNanos.wrappingAdd(waited, ordering: .relaxed)
                if waited > self.longestWaitNanos.load(ordering: .relaxed) {
                    self.longestWaitNanos.store(waited, ordering: .relaxed)
                }
                waiter.deliver(slot)
                return true
            }
            guard handed else { return }
        }
    }

    /// The longest wait since the last call (for the once-a-second sample), then forgotten.
    func takeLongestWait() -> Int { self.longestWaitNanos.exchange(0, ordering: .relaxed) }
}

/// A value touched only on the thread it belongs to (a relay loop's session), carried through a `@Sendable`
/// closure that runs there.
struct LoopConfined<Value>: @unchecked Sendable {
    let value: Value

    init(_ value: Value) { self.value = value }
}
