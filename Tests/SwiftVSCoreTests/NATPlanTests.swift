import SwiftVSConfigKit
import SwiftVSCore
import Testing

/// The kernel path's pure part: which slots go to which real server, and the nftables commands.
@Suite("Kernel NAT plan")
struct NATPlanTests {
    static func backends(_ weights: [Int], down: Set<Int> = []) -> [NATBackend] {
        weights.enumerated().map {
            NATBackend(
                id: $0.offset, endpoint: try! Endpoint(host: "10.0.1.\($0.offset + 11)", port: 8080),
                weight: $0.element, inRotation: !down.contains($0.offset))
        }
    }

    static func service(
        _ kind: SchedulerKind, _ weights: [Int], down: Set<Int> = [], persistence: PersistenceConfig? = nil
    ) -> NATService {
        NATService(
            name: "web", listen: try! Endpoint(host: "10.0.0.100", port: 80), scheduler: kind,
            persistence: persistence, backends: self.backends(weights, down: down))
    }

    static func counts(_ slots: [Int], _ n: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: n)
        for slot in slots { counts[slot] += 1 }
        return counts
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let kind: SchedulerKind
        let weights: [Int]
        let down: Set<Int>
        let selector: NATSelector
        /// Slots per server.
        let counts: [Int]
        var testDescription: String { "\(kind) \(weights) down \(down.sorted())" }
    }

    @Test(
        "each scheduler's kernel form: selector and slots per server",
        arguments: [
            Row(kind: .rr, weights: [1, 5, 1], down: [], selector: .counter, counts: [1, 1, 1]),
            Row(kind: .rr, weights: [1, 0, 1], down: [], selector: .counter, counts: [1, 0, 1]),
            Row(kind: .wrr, weights: [3, 2, 1], down: [], selector: .counter, counts: [3, 2, 1]),
            Row(kind: .wrr, weights: [4, 2, 2], down: [], selector: .counter, counts: [2, 1, 1]),
            Row(kind: .wrr, weights: [3, 2, 1], down: [0], selector: .counter, counts: [0, 2, 1]),
            Row(kind: .wlc, weights: [3, 2, 1], down: [], selector: .counter, counts: [3, 2, 1]),
            Row(kind: .lc, weights: [3, 2, 1], down: [], selector: .counter, counts: [1, 1, 1]),
            Row(kind: .fo, weights: [1, 5, 2], down: [], selector: .counter, counts: [0, 1, 0]),
            Row(kind: .fo, weights: [1, 5, 2], down: [1], selector: .counter, counts: [0, 0, 1]),
            Row(kind: .sh, weights: [1, 1, 1], down: [], selector: .source(port: false), counts: [86, 85, 85]),
            Row(kind: .sh, weights: [2, 1, 1], down: [], selector: .source(port: false), counts: [128, 64, 64]),
            Row(kind: .dh, weights: [1, 1, 1], down: [], selector: .destination, counts: [86, 85, 85]),
        ])
    func schedulerForms(_ row: Row) throws {
        let choice = try #require(NATPlan.choice(Self.service(row.kind, row.weights, down: row.down)))
        #expect(choice.selector == row.selector)
        #expect(Self.counts(choice.slots, row.weights.count) == row.counts)
    }

    @Test("wrr's slots interleave as the proxy path's wrr picks")
    func wrrInterleaves() throws {
        let choice = try #require(NATPlan.choice(Self.service(.wrr, [3, 2, 1])))
        // IPVS wrr over weights 3, 2, 1: the current weight steps down from the largest.
        #expect(choice.slots == [0, 0, 1, 0, 1, 2])
    }

    @Test("weights too large for a map are scaled to at most maxCycle slots, each server keeping one")
    func largeWeights() throws {
        let choice = try #require(NATPlan.choice(Self.service(.wrr, [65535, 30000, 1])))
        #expect(choice.slots.count == NATPlan.maxCycle)
        let counts = Self.counts(choice.slots, 3)
        #expect(counts[2] == 1)
        #expect(abs(Double(counts[0]) / Double(counts[1]) - 65535.0 / 30000.0) < 0.02)
    }

    @Test("sh: a server that fails hands its buckets on; the other servers' buckets stay")
    func shPassesOn() throws {
        let all = try #require(NATPlan.choice(Self.service(.sh, [1, 1, 1])))
        let down = try #require(NATPlan.choice(Self.service(.sh, [1, 1, 1], down: [1])))
        for bucket in all.slots.indices where all.slots[bucket] != 1 {
            #expect(down.slots[bucket] == all.slots[bucket])
        }
        #expect(!down.slots.contains(1))
    }

    @Test("mh: Maglev in the kernel's table size; a server leaving moves only its own slots (and a sliver)")
    func maglev() throws {
        let all = try #require(NATPlan.choice(Self.service(.mh, [1, 1, 1])))
        #expect(all.slots.count == NATPlan.maglevSize)
        #expect(all.selector == .source(port: false))
        let counts = Self.counts(all.slots, 3)
        #expect(counts.allSatisfy { abs($0 - NATPlan.maglevSize / 3) < NATPlan.maglevSize / 100 })
        let down = try #require(NATPlan.choice(Self.service(.mh, [1, 1, 1], down: [2])))
        let moved = all.slots.indices.filter { all.slots[$0] != 2 && down.slots[$0] != all.slots[$0] }.count
        #expect(Double(moved) / Double(NATPlan.maglevSize) < 0.02, "moved \(moved)")
        #expect(!down.slots.contains(2))
    }

    @Test("no server available: no choice; the sorry server takes every slot while the quorum is lost")
    func noneAndSorry() throws {
        #expect(NATPlan.choice(Self.service(.wrr, [1, 1], down: [0, 1])) == nil)
        var sorry = Self.service(.wrr, [1, 1], down: [0, 1])
        sorry.sorry = try Endpoint(host: "10.0.1.99", port: 80)
        #expect(NATPlan.choice(sorry) == NATChoice(selector: .counter, slots: [NATChoice.sorrySlot]))
    }

    @Test("least-connection weights: the server with fewer open flows gets more of the next; balanced stays balanced")
    func leastConnection() {
        let backends = Self.backends([1, 1, 1])
        let uneven = NATPlan.leastConnectionWeights(
            backends, active: [0: 100, 1: 0, 2: 50], expected: 30, scheduler: .wlc)
        #expect(uneven[1]! > uneven[2]! && uneven[2]! > uneven[0]!)
        let even = NATPlan.leastConnectionWeights(
            backends, active: [0: 10, 1: 10, 2: 10], expected: 30, scheduler: .wlc)
        #expect(Set(even.values).count == 1)
        let weighted = NATPlan.leastConnectionWeights(
            Self.backends([3, 1, 1]), active: [:], expected: 50, scheduler: .wlc)
        #expect(weighted[0]! > 2 * weighted[1]!)
        // lc ignores weights.
        let plain = NATPlan.leastConnectionWeights(Self.backends([3, 1, 1]), active: [:], expected: 50, scheduler: .lc)
        #expect(Set(plain.values).count == 1)
    }

    @Test("the commands: one table, flushed chains, the rules with their maps, counters per real server")
    func commandsText() throws {
        let text = NATRuleset.commands([Self.service(.rr, [1, 1])], replace: true).text
        #expect(text.hasPrefix(#"{"nftables":[{"add":{"table":{"family":"ip","name":"swiftvs"}}},{"delete""#))
        #expect(text.contains(#"{"numgen":{"mode":"inc","mod":2,"offset":0}}"#))
        #expect(text.contains(#"[0,{"concat":["10.0.1.11",8080]}],[1,{"concat":["10.0.1.12",8080]}]"#))
        #expect(text.contains(NATRuleset.counterName(service: "web", id: 1, "out")))
        #expect(!NATRuleset.commands([Self.service(.rr, [1, 1])]).text.contains("delete"))
    }
}
