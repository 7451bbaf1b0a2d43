import Dispatch
import Foundation
import Logging
import SwiftVSCore
import SwiftVSTestSupport
import Synchronization
import Testing

@testable import SwiftVSDirector

@Suite("Snapshots: picks never wait for a rebuild, and a health flip moves only its server's keys")
struct SnapshotTests {
    /// A Maglev service of `count` real servers (nothing listens there: only picks are made) with checks that
    /// flip a server at once (rise 1, fall 1); the checks themselves are never started.
    static func maglevService(_ count: Int) throws -> VirtualService {
        let servers = (0..<count).map { "127.0.0.1:\(20_000 + $0)" }.joined(separator: ", ")
        let yaml = """
            services:
              - name: maglev
                listen: 127.0.0.1:1
                scheduler: mh
                health: {check: tcp, rise: 1, fall: 1}
                servers: [\(servers)]
            """
        let config = try ConfigLoader.load(yaml: yaml)
        var logger = Logger(label: "test")
        logger.logLevel = .critical  // 20 health flips are not news
        return try VirtualService(config: config.services[0], logger: logger)
    }

    static func pick(_ service: VirtualService, _ key: UInt32) -> Int? {
        guard let backend = service.schedule(key: key, remote: nil, now: 0) else { return nil }
        backend.release()
        return backend.server.id
    }

    @Test("50 real servers, one flipping health every 100 ms under picks: the other 49 keep every key")
    func healthFlipsUnderPicks() async throws {
        let service = try Self.maglevService(50)
        let keys = (0..<20_000).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        let baseline = keys.map { Self.pick(service, $0) }
        #expect(!baseline.contains(nil))
        let flipping = 7
        #expect(baseline.contains(flipping))

        let stop = Atomic<Bool>(false)
        let down = Atomic<Bool>(false)
        let moved = Atomic<Int>(0)
        let sentToDown = Atomic<Int>(0)
        let picks = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let picker = Thread {
            defer { done.store(true, ordering: .releasing) }
            while !stop.load(ordering: .acquiring) {
                for (key, before) in zip(keys, baseline) {
                    let wasDown = down.load(ordering: .acquiring)
                    let now = Self.pick(service, key)
                    let isDown = down.load(ordering: .acquiring)
                    picks.wrappingAdd(1, ordering: .relaxed)
                    if before != flipping && now != before { moved.wrappingAdd(1, ordering: .relaxed) }
                    // Only a pick made wholly while the server was down must avoid it.
                    if wasDown && isDown && now == flipping { sentToDown.wrappingAdd(1, ordering: .relaxed) }
                }
            }
        }
        picker.start()
        // 20 flips, 100 ms apart: 2 s of load, bounded.
        for flip in 0..<20 {
            let goingDown = flip % 2 == 0
            if goingDown {
                service.recordCheck(flipping, .failed("test flip"), seconds: 0)
                down.store(true, ordering: .releasing)
            } else {
                down.store(false, ordering: .releasing)
                service.recordCheck(flipping, .passed("test flip"), seconds: 0)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        stop.store(true, ordering: .releasing)
        try await waitUntil("the picker thread ends") { done.load(ordering: .acquiring) }
        #expect(picks.load(ordering: .relaxed) > keys.count, "the picks ran during the flips")
        #expect(moved.load(ordering: .relaxed) == 0, "keys of the other 49 servers moved")
        #expect(sentToDown.load(ordering: .relaxed) == 0, "a key went to the server while it was down")
        // Up again at the end: every key is where it started.
        #expect(keys.map { Self.pick(service, $0) } == baseline)
    }

    @Test("picks go on while a rebuild holds the control lock (the pick path takes no lock a rebuild holds)")
    func picksWhileRebuilding() throws {
        let service = try Self.maglevService(50)
        let finished = DispatchSemaphore(value: 0)
        let completed: Bool = service.state.withLock { _ in
            // The control lock is held here, as during a rebuild: picks on another thread must still complete.
            let thread = Thread {
                for key in UInt32(0)..<10_000 { _ = Self.pick(service, key) }
                finished.signal()
            }
            thread.start()
            return finished.wait(timeout: .now() + 10) == .success
        }
        if !completed { finished.wait() }
        #expect(completed, "a pick waited for the control lock")
    }
}
