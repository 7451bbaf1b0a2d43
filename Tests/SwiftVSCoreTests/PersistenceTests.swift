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
