import Foundation
import SwiftVSBench
import SwiftVSTestSupport
import Synchronization
import Testing

/// A participant as the browser client behaves: joins through the director, and when its WebSocket closes it
/// reconnects and joins again (to whatever replica the director gives it).
final class Member: Sendable {
    let url: String
    let room: String
    let name: String
    let state = Mutex<(client: SignalClient?, replica: String, id: String)>((nil, "", ""))

    init(url: String, room: String, name: String) {
        self.url = url
        self.room = room
        self.name = name
    }

    var replica: String { self.state.withLock { $0.replica } }
    var client: SignalClient? { self.state.withLock { $0.client } }

    /// Joins (again if its connection closed); the joined message, or nil after `seconds` of trying.
    @discardableResult
    func join(seconds: Double = 15) async -> [String: Any]? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let client = self.client, !client.isClosed { return [:] }
            guard let client = try? await SignalClient.connect(url: "\(self.url)/ws?room=\(self.room)", timeout: 3)
            else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            client.send(["type": "join", "room": self.room, "name": self.name])
            if let joined = await client.waitFor("joined", timeout: 5) {
                self.state.withLock { $0 = (client, joined["replica"] as? String ?? "", joined["id"] as? String ?? "") }
                return joined
            }
            client.close()
        }
        return nil
    }
}

@Suite(.serialized)
struct AffinityTests {
    static func startSignal(_ port: Int) throws -> ChildProcess {
        try ChildProcess(
            swiftvsBinary.path, ["conference", "signal", "--listen", "127.0.0.1:\(port)", "--grace", "2s"])
    }

    /// 50 rooms × 3 on two signal replicas; a third joins with `swiftvs adm add`; a fourth participant per room
    /// lands with the other three (0 split rooms); new rooms reach the new replica; then a replica is drained and
    /// stopped: its rooms re-form elsewhere, every member seeing every other.
    @Test(.timeLimit(.minutes(3))) func roomsNeverSplitWhileScaling() async throws {
        let dir = try temporaryDirectory("affinity")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ports = try (0..<3).map { _ in try freePort() }
        let front = try freePort()
        let admin = try freePort()
        var replicas = try ports.prefix(2).map(Self.startSignal)
        defer { for r in replicas { _ = r.stop() } }
        for port in ports.prefix(2) {
            try await waitUntilAsync("signal replica \(port) serves") {
                (try? await curlAsync("http://127.0.0.1:\(port)/healthz").status) == 200
            }
        }
        let config = "\(dir)/director.yaml"
        try """
        admin: {listen: 127.0.0.1:\(admin), token: affinity-token, socket: off}
        services:
          - name: signal
            listen: 127.0.0.1:\(front)
            protocol: http
            scheduler: mh
            scheduler_flags: [fallback]
            hash: {query: room}
            persistence: {key: hash, timeout: 30}
            health: {check: tcp, interval: 500ms, timeout: 250ms, rise: 1, fall: 1}
            servers: [127.0.0.1:\(ports[0]), 127.0.0.1:\(ports[1])]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let director = try ChildProcess(swiftvsBinary.path, ["director", "--config", config])
        defer { _ = director.stop() }
        let url = "ws://127.0.0.1:\(front)"
        let adm = ["--admin", "127.0.0.1:\(admin)", "--token", "affinity-token"]
        try await waitUntilAsync("the director serves") {
            (try? await curlAsync("http://127.0.0.1:\(front)/healthz").status) == 200
        }

        let rooms = (0..<50).map { "room-\($0)" }
        var members: [String: [Member]] = [:]
        for room in rooms {
            members[room] = (0..<3).map { Member(url: url, room: room, name: "\(room)-m\($0)") }
        }
        try await Self.joinAll(members.values.flatMap { $0 })
        for room in rooms {
            #expect(Set(members[room]!.map(\.replica)).count == 1, "\(room) formed on one replica")
        }
        let before = Dictionary(grouping: rooms) { members[$0]![0].replica }.mapValues(\.count)
        #expect(before.count == 2, "both replicas hold rooms: \(before)")

        // Scale out: a third replica through the admin API.
        replicas.append(try Self.startSignal(ports[2]))
        try await waitUntilAsync("replica 3 serves") {
            (try? await curlAsync("http://127.0.0.1:\(ports[2])/healthz").status) == 200
        }
        let added = try await toolAsync(swiftvsBinary.path, ["adm", "add", "signal", "127.0.0.1:\(ports[2])"] + adm)
        #expect(added.code == 0, "\(added.err)")
        try await waitUntilAsync("replica 3 is up in the director") {
            let listing = try await toolAsync(swiftvsBinary.path, ["adm", "list"] + adm).out
            return listing.split(separator: "\n").contains { $0.contains("127.0.0.1:\(ports[2])") && $0.contains("up") }
        }
        // A fourth participant per room: every one lands with its room and sees the other three.
        var split = 0
        for room in rooms {
            let late = Member(url: url, room: room, name: "\(room)-late")
            let joined = await late.join()
            let others = (joined?["participants"] as? [[String: Any]])?.count ?? -1
            if late.replica != members[room]![0].replica || others != 3 { split += 1 }
            members[room]!.append(late)
        }
        #expect(split == 0, "rooms split by the scale-out")
        // New rooms follow the hash, so some fill the new replica.
        var fresh: [Member] = []
        for i in 0..<30 {
            let m = Member(url: url, room: "new-\(i)", name: "n\(i)")
            await m.join()
            fresh.append(m)
        }
        #expect(fresh.contains { $0.replica.hasSuffix(":\(ports[2])") }, "new rooms reach the added replica")

        // Scale in with drain: weight 0, stop the replica (it closes its WebSockets with 1001), remove it.
        let drained = "127.0.0.1:\(ports[0])"
        let moved = rooms.filter { members[$0]![0].replica == drained }
        #expect(!moved.isEmpty)
        #expect(try await toolAsync(swiftvsBinary.path, ["adm", "weight", "signal", drained, "0"] + adm).code == 0)
        #expect(replicas[0].stop() == 0, "the replica stops on SIGTERM once its sockets are closed")
        #expect(try await toolAsync(swiftvsBinary.path, ["adm", "remove", "signal", drained] + adm).code == 0)
        let movedMembers = moved.flatMap { members[$0]! }
        try await waitUntilAsync("every member of the drained rooms noticed", seconds: 20) {
            movedMembers.allSatisfy { $0.client?.isClosed == true }
        }
        try await Self.joinAll(moved.flatMap { members[$0]! })
        var reformed = 0
        for room in moved {
            let group = members[room]!
            guard Set(group.map(\.replica)).count == 1, group[0].replica != drained else { continue }
            // Everyone hears everyone: a chat from the first reaches the other three.
            group[0].client?.send(["type": "chat", "text": "back in \(room)"])
            var heard = 0
            for other in group.dropFirst() {
                if await other.client?.waitFor(
                    "chat", timeout: 5, matching: { $0["text"] as? String == "back in \(room)" }) != nil
                {
                    heard += 1
                }
            }
            if heard == 3 { reformed += 1 }
        }
        #expect(reformed == moved.count, "rooms re-formed after the drain: \(reformed) of \(moved.count)")
        for m in members.values.flatMap({ $0 }) + fresh { m.client?.close() }
    }

    static func joinAll(_ members: [Member]) async throws {
        let failed = await withTaskGroup(of: Bool.self) { group in
            for (i, member) in members.enumerated() {
                group.addTask {
                    // a few at a time, as people arrive
                    try? await Task.sleep(for: .milliseconds(2 * (i % 50)))
                    return await member.join() != nil
                }
            }
            var failed = 0
            for await ok in group where !ok { failed += 1 }
            return failed
        }
        #expect(failed == 0, "\(failed) joins failed")
    }
}
