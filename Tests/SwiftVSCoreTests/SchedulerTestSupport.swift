import SwiftVSConfigKit
import SwiftVSCore

/// Servers 10.0.0.1:80, 10.0.0.2:80, … with the given weights.
func makeServers(_ weights: [Int], upper: Int = 0) -> [RealServer] {
    weights.enumerated().map { index, weight in
        RealServer(
            id: index, endpoint: try! Endpoint(host: "10.0.0.\(index + 1)", port: 80), weight: weight, upper: upper)
    }
}

func setActive(_ servers: [RealServer], _ active: [Int]) {
    for (server, count) in zip(servers, active) {
        server.counters.active.store(count, ordering: .relaxed)
    }
}

/// Runs `count` picks; each pick holds a connection until `hold` later picks have been made (a steady load).
func distribution(
    _ kind: SchedulerKind, weights: [Int], picks count: Int, hold: Int = 0,
    key: (Int) -> UInt32 = { _ in 0 }
) -> [Int] {
    let servers = makeServers(weights)
    var scheduler = Scheduler(kind: kind, servers: servers)
    var random = SplitMix64(seed: 42)
    var counts = [Int](repeating: 0, count: weights.count)
    var open: [Int] = []
    for i in 0..<count {
        guard let index = scheduler.pick(servers, PickInput(key: key(i)), &random) else { continue }
        counts[index] += 1
        if hold > 0 {
            servers[index].counters.open(upper: 0)
            open.append(index)
            if open.count > hold {
                let oldest = open.removeFirst()
                servers[oldest].counters.close(upper: 0, lower: 0)
            }
        }
    }
    return counts
}

func shares(_ counts: [Int]) -> [Double] {
    let total = Double(counts.reduce(0, +))
    return counts.map { Double($0) / total }
}

func weightShares(_ weights: [Int]) -> [Double] {
    let total = Double(weights.reduce(0, +))
    return weights.map { Double($0) / total }
}

/// Picks in order with no load.
func sequence(_ kind: SchedulerKind, _ servers: [RealServer], _ count: Int, key: UInt32 = 0) -> [Int?] {
    var scheduler = Scheduler(kind: kind, servers: servers)
    var random = SplitMix64(seed: 1)
    return (0..<count).map { _ in scheduler.pick(servers, PickInput(key: key), &random) }
}
