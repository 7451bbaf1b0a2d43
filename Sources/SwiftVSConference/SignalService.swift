import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The signal role's driver: one `RoomHub` behind a lock, a writer per WebSocket fed by a bounded stream, a tick
/// every second, and presence reports to the registry. Closes every connection with 1001 on shutdown, so that
/// clients reconnect to another replica.
final class SignalService: Service, Sendable {
    let options: ConferenceOptions
    let logger: Logger
    let hub: Mutex<RoomHub>
    let writers = Mutex<[ConnectionID: AsyncStream<Outbound>.Continuation]>([:])
    let nextID = Atomic<Int>(1)
    let replica = Mutex("")
    let lookupBox = Mutex<(any RegistryLookup)?>(nil)
    /// Frames waiting to be written per connection before it counts as too slow and is closed.
    static let queueLimit = 4096

    enum Outbound: Sendable {
        case text(String)
        case close(UInt16, String)
    }

    var lookup: (any RegistryLookup)? {
        get { self.lookupBox.withLock { $0 } }
        set { self.lookupBox.withLock { $0 = newValue } }
    }

    init(options: ConferenceOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        var seed: UInt64 = 0
        withUnsafeMutableBytes(of: &seed) { $0.copyBytes(from: (0..<8).map { _ in UInt8.random(in: 0...255) }) }
        self.hub = Mutex(
            RoomHub(settings: options.hub, seed: seed) { room, secret in RoomRegistry.digest(room: room, secret: secret)
            })
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Ticks the hub every second and reports presence every 2 s (when it changed) or 10 s, until shutdown; then
    /// closes every connection with 1001.
    func run() async throws {
        var lastReport: [String: Int] = [:]
        var lastAt = 0.0
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = Self.now()
                let (actions, counts) = self.hub.withLock { hub in (hub.handle(.tick(now: now)), hub.roomCounts) }
                self.perform(actions)
                if let lookup = self.lookup, counts != lastReport || now - lastAt >= 10 {
                    lastReport = counts
                    lastAt = now
                    await lookup.report(replica: self.replica.withLock { $0 }, rooms: counts)
                }
            }
        } onGracefulShutdown: {
            self.closeAll()
        }
    }

    /// Closes every WebSocket with 1001 (going away): clients reconnect, through the director, to another replica.
    func closeAll() {
        let all = self.writers.withLock { Array($0.values) }
        for writer in all { writer.yield(.close(1001, "the signal replica is going away; reconnect")) }
    }

    /// One WebSocket, from upgrade to close.
    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let id = self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream<Outbound>.makeStream(
            bufferingPolicy: .bufferingOldest(Self.queueLimit))
        self.writers.withLock { $0[id] = continuation }
        self.perform(self.hub.withLock { $0.handle(.opened(id, now: Self.now())) })
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await frame in stream {
                    switch frame {
                    case .text(let text):
                        do { try await outbound.write(.text(text)) } catch { return }
                    case .close(let code, let reason):
                        try? await outbound.close(.init(codeNumber: Int(code)), reason: reason)
                        return
                    }
                }
            }
            group.addTask {
                do {
                    for try await message in inbound.messages(maxSize: self.options.hub.maxMessageBytes * 4) {
                        guard case .text(let text) = message else {
                            self.perform([
                                .send(
                                    id,
                                    RoomHub.encode([
                                        "type": "error", "code": "bad-json",
                                        "message": "binary frames are not signaling; send JSON text",
                                    ]))
                            ])
                            continue
                        }
                        await self.deliver(id, text)
                    }
                } catch {
                    self.logger.debug("signal connection ended", metadata: ["error": "\(error)"])
                }
                continuation.finish()
            }
            await group.next()
            group.cancelAll()
        }
        self.writers.withLock { $0[id] = nil }
        continuation.finish()
        self.perform(self.hub.withLock { $0.handle(.closed(id, now: Self.now())) })
    }

    /// A text frame to the hub; a join for a room this replica does not know yet first asks the registry.
    func deliver(_ id: ConnectionID, _ text: String) async {
        if let lookup = self.lookup, text.contains("\"join\""), let room = Self.joinRoom(text),
            !self.hub.withLock({ $0.knows(room: room) })
        {
            if let policy = await lookup.policy(room) {
                self.perform(self.hub.withLock { $0.handle(.policy(policy)) })
            }
        }
        self.perform(self.hub.withLock { $0.handle(.received(id, text: text, now: Self.now())) })
    }

    static func joinRoom(_ text: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            object["type"] as? String == "join", let room = object["room"] as? String, RoomHub.validRoom(room)
        else { return nil }
        return room
    }

    func perform(_ actions: [HubAction]) {
        guard !actions.isEmpty else { return }
        self.writers.withLock { writers in
            for action in actions {
                switch action {
                case .send(let id, let text):
                    guard let writer = writers[id] else { continue }
                    if case .dropped = writer.yield(.text(text)) {
                        writer.yield(.close(1013, "too slow: \(Self.queueLimit) messages unread"))
                        writer.finish()
                    }
                case .close(let id, let code, let reason):
                    writers[id]?.yield(.close(code, reason))
                }
            }
        }
    }
}
