import SwiftVSCore
import Testing

@Suite("Persistence templates")
struct PersistenceTests {
    let clientA = PersistenceKey(address: [192, 168, 1, 10])
    let clientB = PersistenceKey(address: [192, 168, 1, 11])

    @Test("a template holds a client to its server until timeout after its last use")
    func holdsAndExpires() {
        var table = PersistenceTable(timeout: 300)
        table.record(self.clientA, server: 2, now: 0)
        #expect(table.lookup(self.clientA, now: 299) == 2)  // refreshed: lives to 599
        #expect(table.lookup(self.clientA, now: 598) == 2)
        #expect(table.lookup(self.clientA, now: 899) == nil)
        #expect(table.count == 0)
    }

    @Test("a template lives while connections it placed are open, and timeout after the last one closes (IPVS)")
    func heldByOpenConnections() {
        var table = PersistenceTable(timeout: 30)
        let room = PersistenceKey(hashed: KeyHash.string("room-7".utf8))
        #expect(room.isHashed && !self.clientA.isHashed)
        table.record(room, server: 1, now: 0, hold: true)
        #expect(table.lookup(room, now: 10, hold: true) == 1)
        #expect(table.holders(room) == 2)
        // an hour of WebSockets: still held, whatever the timeout
        #expect(table.expire(now: 3600) == 0)
        #expect(table.lookup(room, now: 3600) == 1)
        table.release(room, server: 1, now: 3600)
        table.release(room, server: 1, now: 3610)
        #expect(table.holders(room) == 0)
        #expect(table.lookup(room, now: 3630) == 1, "timeout runs from the last close")
        #expect(table.expire(now: 3661) == 1)
        #expect(table.lookup(room, now: 3661) == nil)
    }

    @Test("a template moved to another server counts only its new connections; releases of the old ones are ignored")
    func movedTemplateCountsAfresh() {
        var table = PersistenceTable(timeout: 30)
        let room = PersistenceKey(hashed: 42)
        table.record(room, server: 1, now: 0, hold: true)
        table.record(room, server: 2, now: 5, hold: true)  // server 1 went away; the room re-formed on 2
        table.release(room, server: 1, now: 6)
        #expect(table.holders(room) == 1)
        #expect(table.expire(now: 1000) == 0)
    }

    @Test("a netmask groups clients: /24 makes one template for the whole subnet")
    func netmask() {
        let a = PersistenceKey(address: [10, 1, 2, 3], prefixV4: 24)
        let b = PersistenceKey(address: [10, 1, 2, 200], prefixV4: 24)
        let c = PersistenceKey(address: [10, 1, 3, 3], prefixV4: 24)
        #expect(a == b)
        #expect(a != c)
        let v6a = PersistenceKey(address: [UInt8](repeating: 0x20, count: 15) + [1], prefixV6: 64)
        let v6b = PersistenceKey(address: [UInt8](repeating: 0x20, count: 15) + [9], prefixV6: 64)
        #expect(v6a == v6b)
    }

    @Test("the scheduler is asked only when there is no template; a quiesced server keeps its persistent clients")
    func consultedBeforeScheduler() {
        let servers = makeServers([1, 1, 1])
        var state = SchedulingState(kind: .rr, servers: servers, persistenceTimeout: 300)
        let first = state.schedule(PickInput(now: 0), client: self.clientA)!.id
        for t in 1...10 {
            #expect(state.schedule(PickInput(now: Double(t)), client: self.clientA)!.id == first)
        }
        let other = state.schedule(PickInput(now: 11), client: self.clientB)!.id
        #expect(other != first)
        // Weight 0 on A's server: new clients avoid it, A stays (IPVS's default, expire_quiescent_template=0).
        let quiesced = servers.map {
            RealServer(
                id: $0.id, endpoint: $0.endpoint, weight: $0.id == first ? 0 : 1,
                counters: $0.counters)
        }
        state.replaceServers(quiesced)
        #expect(state.schedule(PickInput(now: 12), client: self.clientA)!.id == first)
        for i in 0..<10 {
            let fresh = PersistenceKey(address: [172, 16, 0, UInt8(i)])
            #expect(state.schedule(PickInput(now: 13), client: fresh)!.id != first)
        }
        // Removing the server drops its templates: A is scheduled afresh.
        state.replaceServers(quiesced.filter { $0.id != first })
        #expect(state.schedule(PickInput(now: 14), client: self.clientA)!.id != first)
    }

    @Test("a retry excludes servers already tried, even when a template or the hash points at them")
    func excluding() {
        let servers = makeServers([1, 1, 1])
        var state = SchedulingState(kind: .sh, servers: servers, persistenceTimeout: 300)
        let first = state.schedule(PickInput(key: 5, now: 0), client: self.clientA)!.id
        let retry = state.schedule(PickInput(key: 5, now: 0), client: self.clientA, excluding: [first])!.id
        #expect(retry != first)
        #expect(state.schedule(PickInput(key: 5, now: 1), client: self.clientA)!.id == retry)  // template moved
    }
}
