import SwiftVSCore
import Testing

@Suite("The idle upstream pool: which connection a request takes, and which are kept")
struct IdlePoolTests {
    final class Conn: CustomStringConvertible {
        let name: String
        init(_ name: String) { self.name = name }
        var description: String { self.name }
    }

    @Test("a request takes the most recently parked connection of its own server and service")
    func lifoPerServer() {
        var pool = IdlePool<String, Conn>()
        let (a, b, c) = (Conn("a"), Conn("b"), Conn("c"))
        let r1 = pool.put(a, service: "web", server: 1, now: 10, idle: 100, limit: 8)
        #expect(r1)
        let r2 = pool.put(b, service: "web", server: 1, now: 20, idle: 100, limit: 8)
        #expect(r2)
        let r3 = pool.put(c, service: "web", server: 2, now: 30, idle: 100, limit: 8)
        #expect(r3)
        // b was parked last on server 1: it is the warmest.
        let r4 = pool.take(service: "web", server: 1)
        #expect(r4 === b)
        let r5 = pool.take(service: "web", server: 1)
        #expect(r5 === a)
        // Nothing left for server 1; server 2's connection is not lent to it.
        let r6 = pool.take(service: "web", server: 1)
        #expect(r6 == nil)
        // Another service never takes this one's connections, even to the same server id.
        let r7 = pool.take(service: "api", server: 2)
        #expect(r7 == nil)
        let r8 = pool.take(service: "web", server: 2)
        #expect(r8 === c)
    }

    @Test("at most `limit` wait per real server: one more is refused, another server still takes its own")
    func limitPerServer() {
        var pool = IdlePool<String, Conn>()
        let r9 = pool.put(Conn("a"), service: "web", server: 1, now: 0, idle: 100, limit: 2)
        #expect(r9)
        let r10 = pool.put(Conn("b"), service: "web", server: 1, now: 0, idle: 100, limit: 2)
        #expect(r10)
        let r11 = pool.put(Conn("c"), service: "web", server: 1, now: 0, idle: 100, limit: 2)
        #expect(!r11)
        let r12 = pool.put(Conn("d"), service: "web", server: 2, now: 0, idle: 100, limit: 2)
        #expect(r12)
        #expect(pool.count(service: "web", server: 1) == 2)
        // limit 0 keeps nothing (max_idle_per_server: 0).
        let r13 = pool.put(Conn("e"), service: "web", server: 3, now: 0, idle: 100, limit: 0)
        #expect(!r13)
    }

    @Test("a connection that closed while parked is taken out and never lent")
    func removeClosed() {
        var pool = IdlePool<String, Conn>()
        let (a, b) = (Conn("a"), Conn("b"))
        _ = pool.put(a, service: "web", server: 1, now: 0, idle: 100, limit: 8)
        _ = pool.put(b, service: "web", server: 1, now: 0, idle: 100, limit: 8)
        pool.remove(b, service: "web", server: 1)
        let r14 = pool.take(service: "web", server: 1)
        #expect(r14 === a)
        let r15 = pool.take(service: "web", server: 1)
        #expect(r15 == nil)
    }

    @Test("those idle longer than the timeout are handed back to be closed, oldest first; the rest stay")
    func expiry() {
        var pool = IdlePool<String, Conn>()
        let (a, b, c, d) = (Conn("a"), Conn("b"), Conn("c"), Conn("d"))
        _ = pool.put(a, service: "web", server: 1, now: 100, idle: 100, limit: 8)
        _ = pool.put(b, service: "web", server: 1, now: 200, idle: 100, limit: 8)
        _ = pool.put(c, service: "web", server: 1, now: 300, idle: 100, limit: 8)
        _ = pool.put(d, service: "api", server: 7, now: 150, idle: 100, limit: 8)
        // At 360, each parked with 100 to live: a (260 idle), d (210) and b (160) expire; c (60) stays.
        let expired = pool.expire(now: 360)
        #expect(Set(expired.map(\.name)) == ["a", "b", "d"])
        #expect(expired.map(\.name).firstIndex(of: "a")! < expired.map(\.name).firstIndex(of: "b")!)
        #expect(pool.count(service: "web", server: 1) == 1)
        let r16 = pool.expire(now: 401)
        #expect(r16.map(\.name) == ["c"])
        let r17 = pool.expire(now: 1000)
        #expect(r17.isEmpty)
    }

    @Test("shutdown hands back every connection and leaves the pool empty")
    func removeAll() {
        var pool = IdlePool<String, Conn>()
        _ = pool.put(Conn("a"), service: "web", server: 1, now: 0, idle: 100, limit: 8)
        _ = pool.put(Conn("b"), service: "api", server: 2, now: 0, idle: 100, limit: 8)
        let r18 = pool.removeAll()
        #expect(r18.count == 2)
        let r19 = pool.take(service: "web", server: 1)
        #expect(r19 == nil && pool.count(service: "api", server: 2) == 0)
    }
}
