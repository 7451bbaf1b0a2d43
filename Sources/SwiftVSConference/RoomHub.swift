import Foundation
import SwiftVSConfigKit

/// A WebSocket connection as the hub knows it: a number the driver gives it.
public typealias ConnectionID = Int

/// What the signaling hub is told: connections opening and closing, frames arriving, time passing.
public enum HubEvent: Sendable {
    case opened(ConnectionID, now: Double)
    case received(ConnectionID, text: String, now: Double)
    case closed(ConnectionID, now: Double)
    /// Every second or so: drops participants whose grace ran out and connections that went silent.
    case tick(now: Double)
    /// A room's policy from the room registry (the api service), learned before its first join is delivered.
    case policy(RoomPolicy)
}

/// What the hub asks of its driver.
public enum HubAction: Sendable, Equatable {
    /// Send this text frame to that connection.
    case send(ConnectionID, String)
    /// Close the connection (WebSocket close code and reason).
    case close(ConnectionID, code: UInt16, reason: String)
}

/// A room as the registry (the api service) created it: its password and host key, compared as SHA-256 digests.
public struct RoomPolicy: Sendable, Equatable, Codable {
    public var room: String
    /// Hex SHA-256 of the password, salted with the room name; nil for an open room.
    public var passwordDigest: String?
    /// Hex SHA-256 of the host key (salted with the room name); whoever joins with it is a host.
    public var hostKeyDigest: String?
    /// Joiners wait in the lobby until a host admits them.
    public var lobby: Bool

    public init(room: String, passwordDigest: String? = nil, hostKeyDigest: String? = nil, lobby: Bool = false) {
        self.room = room
        self.passwordDigest = passwordDigest
        self.hostKeyDigest = hostKeyDigest
        self.lobby = lobby
    }
}

/// The hub's limits. Defaults are documented in docs/conference.md.
public struct HubSettings: Sendable, Equatable {
    /// Participants in one room: mesh WebRTC sends every stream to every peer, so about 6 is the useful top.
    public var roomLimit = 6
    /// Chat messages kept for late joiners.
    public var chatHistory = 50
    /// Longest text frame accepted (bytes); longer ones are refused with `too-large`, the connection kept.
    public var maxMessageBytes = 64 * 1024
    /// A participant whose connection dropped keeps their place (and identity, for a reconnect) this long.
    public var grace: Double = 20
    /// A connection that sends nothing (not even `ping`) this long is closed.
    public var heartbeatTimeout: Double = 30
    /// Messages per second one connection may send on average, and its burst.
    public var messageRate: Double = 50
    public var messageBurst: Double = 200
    /// Failed joins one connection may make before it is closed.
    public var failedJoins = 5

    public init() {}
}

/// Hashes for passwords and host keys; the hub compares digests, never plain text it did not receive. Injected so
/// that this file stays free of the crypto library (the driver passes SHA-256).
public typealias Digest = @Sendable (_ room: String, _ secret: String) -> String

/// The signaling hub: rooms, participants, presence, chat, media state, lobby and host powers, as a pure state
/// machine. The driver feeds it `HubEvent`s and performs the `HubAction`s it returns; it has no sockets, clocks or
/// randomness of its own (participant ids and resume tokens come from `ids`, a seeded generator the driver gives).
public struct RoomHub: Sendable {
    public struct Participant: Sendable {
        public var id: String
        public var name: String
        var token: String
        public var host: Bool
        public var state: MediaState
        var connection: ConnectionID?
        var droppedAt: Double?
    }

    public struct MediaState: Sendable, Equatable {
        public var audio = true
        public var video = true
        public var screen = false
        public var hand = false

        var json: [String: Any] { ["audio": audio, "video": video, "screen": screen, "hand": hand] }
    }

    struct Pending: Sendable {
        var connection: ConnectionID
        var id: String
        var name: String
    }

    struct Room: Sendable {
        var policy: RoomPolicy
        var participants: [String: Participant] = [:]
        var order: [String] = []
        var lobby: [String: Pending] = [:]
        var chat: [String] = []
    }

    struct Connection: Sendable {
        var lastSeen: Double
        var room: String?
        var participant: String?
        var waiting: String?
        var tokens: Double
        var refilled: Double
        var failedJoins = 0
    }

    public let settings: HubSettings
    /// This replica's name (host:port), told to joiners so that a person (or a test) can see where a room lives.
    public var replica = ""
    let digest: Digest
    var rooms: [String: Room] = [:]
    var policies: [String: RoomPolicy] = [:]
    var connections: [ConnectionID: Connection] = [:]
    var random: UInt64

    public init(settings: HubSettings = .init(), seed: UInt64, digest: @escaping Digest) {
        self.settings = settings
        self.random = seed
        self.digest = digest
    }

    /// Participants per live room (connected or within their grace): what the registry's counts show.
    public var roomCounts: [String: Int] { self.rooms.mapValues { $0.participants.count } }
    public var connectionCount: Int { self.connections.count }
    /// Whether the hub already knows this room (live, or its policy learned): a driver fetches a policy otherwise.
    public func knows(room: String) -> Bool { self.rooms[room] != nil || self.policies[room] != nil }
    /// A live room's participants in join order (tests and the status page).
    public func participants(in room: String) -> [Participant] {
        guard let live = self.rooms[room] else { return [] }
        return live.order.compactMap { live.participants[$0] }
    }

    public mutating func handle(_ event: HubEvent) -> [HubAction] {
        var out: [HubAction] = []
        switch event {
        case .opened(let connection, let now):
            self.connections[connection] = Connection(
                lastSeen: now, tokens: self.settings.messageBurst, refilled: now)
        case .policy(let policy):
            self.policies[policy.room] = policy
        case .closed(let connection, let now):
            self.dropConnection(connection, now: now, out: &out)
        case .tick(let now):
            self.expire(now: now, out: &out)
        case .received(let connection, let text, let now):
            guard var state = self.connections[connection] else { return [] }
            state.lastSeen = now
            state.tokens = min(
                self.settings.messageBurst, state.tokens + (now - state.refilled) * self.settings.messageRate)
            state.refilled = now
            guard state.tokens >= 1 else {
                self.connections[connection] = state
                out.append(
                    .close(
                        connection, code: 1008,
                        reason: "rate-limited: over \(Int(self.settings.messageRate)) messages/s"))
                self.dropConnection(connection, now: now, out: &out)
                return out
            }
            state.tokens -= 1
            self.connections[connection] = state
            self.receive(connection, text, now: now, out: &out)
        }
        return out
    }

    // MARK: messages

    mutating func receive(_ connection: ConnectionID, _ text: String, now: Double, out: inout [HubAction]) {
        guard text.utf8.count <= self.settings.maxMessageBytes else {
            return out.append(
                Self.error(
                    connection, "too-large",
                    "message of \(text.utf8.count) bytes; the limit is \(self.settings.maxMessageBytes)"))
        }
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
            let message = object as? [String: Any]
        else {
            return out.append(
                Self.error(connection, "bad-json", "a message is one JSON object, like {\"type\":\"ping\"}"))
        }
        guard let type = message["type"] as? String else {
            return out.append(Self.error(connection, "bad-message", "the message has no \"type\" string"))
        }
        switch type {
        case "ping":
            out.append(.send(connection, Self.encode(["type": "pong"])))
        case "join":
            self.join(connection, message, now: now, out: &out)
        case "offer", "answer", "ice":
            self.relay(connection, type, message, out: &out)
        case "chat":
            self.chat(connection, message, now: now, out: &out)
        case "state":
            self.updateState(connection, message, out: &out)
        case "leave":
            guard let (room, id) = self.member(connection, out: &out) else { return }
            self.remove(id, from: room, reason: "left", out: &out)
            self.connections[connection]?.room = nil
            self.connections[connection]?.participant = nil
            out.append(.send(connection, Self.encode(["type": "left", "room": room])))
        case "admit", "deny", "kick":
            self.hostAction(connection, type, message, out: &out)
        case "end":
            guard let (room, id) = self.member(connection, out: &out) else { return }
            guard self.rooms[room]?.participants[id]?.host == true else {
                return out.append(Self.error(connection, "not-host", "only a host may end the room"))
            }
            self.end(room, out: &out)
        default:
            out.append(Self.error(connection, "unknown-type", "unknown message type '\(type.prefix(64))'"))
        }
    }

    mutating func join(_ connection: ConnectionID, _ message: [String: Any], now: Double, out: inout [HubAction]) {
        guard var state = self.connections[connection] else { return }
        func refuse(_ code: String, _ text: String) {
            state.failedJoins += 1
            self.connections[connection] = state
            out.append(Self.error(connection, code, text))
            if state.failedJoins >= self.settings.failedJoins {
                out.append(.close(connection, code: 1008, reason: "too many failed joins"))
                self.dropConnection(connection, now: now, out: &out)
            }
        }
        guard state.participant == nil, state.waiting == nil else {
            return refuse("already-joined", "this connection is already in room '\(state.room ?? "")'; leave first")
        }
        guard let room = message["room"] as? String, Self.validRoom(room) else {
            return refuse("bad-room", "room: 1 to 64 letters, digits, '-' or '_'")
        }
        let name = ((message["name"] as? String) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 64 else {
            return refuse("bad-name", "name: 1 to 64 characters")
        }
        let password = message["password"] as? String
        let hostKey = message["hostKey"] as? String
        // A reconnect within the grace period: the same participant on a new connection.
        if let token = message["token"] as? String, var live = self.rooms[room],
            let id = live.participants.first(where: { $0.value.token == token })?.key
        {
            var participant = live.participants[id]!
            if let old = participant.connection, old != connection {
                out.append(.close(old, code: 4000, reason: "replaced by a reconnect"))
                self.connections[old] = nil
            }
            participant.connection = connection
            participant.droppedAt = nil
            live.participants[id] = participant
            self.rooms[room] = live
            state.room = room
            state.participant = id
            self.connections[connection] = state
            out.append(.send(connection, self.joined(room, participant)))
            self.broadcast(room, except: id, ["type": "peer-back", "id": id], out: &out)
            return
        }
        var live =
            self.rooms[room]
            ?? Room(
                policy: self.policies[room]
                    ?? RoomPolicy(
                        room: room, passwordDigest: password.flatMap { $0.isEmpty ? nil : self.digest(room, $0) },
                        lobby: (message["lobby"] as? Bool) ?? false))
        let isNew = self.rooms[room] == nil
        let host =
            (live.policy.hostKeyDigest != nil && hostKey.map { self.digest(room, $0) } == live.policy.hostKeyDigest)
            || (isNew && live.policy.hostKeyDigest == nil)
        if let expected = live.policy.passwordDigest, !host {
            guard let password, self.digest(room, password) == expected else {
                return refuse(
                    password == nil ? "password-required" : "wrong-password",
                    password == nil ? "room '\(room)' needs a password" : "wrong password for room '\(room)'")
            }
        }
        guard live.participants.count + live.lobby.count < self.settings.roomLimit else {
            return refuse(
                "room-full",
                "room '\(room)' is full: \(self.settings.roomLimit) participants is the limit of a mesh call")
        }
        let id = self.nextID(prefix: "p")
        state.room = room
        // With a lobby, a guest waits even while no host is in: the first host to come in sees the knock.
        if live.policy.lobby && !host {
            live.lobby[id] = Pending(connection: connection, id: id, name: name)
            state.waiting = id
            self.connections[connection] = state
            self.rooms[room] = live
            out.append(.send(connection, Self.encode(["type": "lobby", "room": room, "id": id])))
            self.broadcast(room, except: nil, ["type": "knock", "id": id, "name": name], hostsOnly: true, out: &out)
            return
        }
        let participant = Participant(
            id: id, name: name, token: self.nextID(prefix: "t") + self.nextID(prefix: ""), host: host,
            state: MediaState(), connection: connection)
        live.participants[id] = participant
        live.order.append(id)
        self.rooms[room] = live
        state.participant = id
        self.connections[connection] = state
        out.append(.send(connection, self.joined(room, participant)))
        self.broadcast(room, except: id, ["type": "peer-joined", "participant": Self.describe(participant)], out: &out)
        if host {
            for pending in live.lobby.values {
                out.append(.send(connection, Self.encode(["type": "knock", "id": pending.id, "name": pending.name])))
            }
        }
    }

    func joined(_ room: String, _ participant: Participant) -> String {
        guard let live = self.rooms[room] else { return "" }
        let others = live.order.compactMap { id in id == participant.id ? nil : live.participants[id] }
        return Self.encode([
            "type": "joined", "room": room, "id": participant.id, "token": participant.token,
            "host": participant.host, "limit": self.settings.roomLimit, "replica": self.replica,
            "participants": others.map(Self.describe),
            "chat": live.chat.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) },
        ])
    }

    mutating func relay(_ connection: ConnectionID, _ type: String, _ message: [String: Any], out: inout [HubAction]) {
        guard let (room, id) = self.member(connection, out: &out) else { return }
        guard let to = message["to"] as? String else {
            return out.append(Self.error(connection, "bad-message", "\(type) needs \"to\": a participant id"))
        }
        guard let target = self.rooms[room]?.participants[to] else {
            return out.append(
                Self.error(connection, "no-such-participant", "participant '\(to.prefix(64))' is not in room '\(room)'")
            )
        }
        guard let targetConnection = target.connection else {
            return out.append(Self.error(connection, "participant-away", "participant '\(to)' is reconnecting"))
        }
        out.append(
            .send(targetConnection, Self.encode(["type": type, "from": id, "data": message["data"] ?? NSNull()])))
    }

    mutating func chat(_ connection: ConnectionID, _ message: [String: Any], now: Double, out: inout [HubAction]) {
        guard let (room, id) = self.member(connection, out: &out) else { return }
        guard let text = message["text"] as? String, !text.isEmpty, text.count <= 2000 else {
            return out.append(Self.error(connection, "bad-message", "chat needs \"text\": 1 to 2000 characters"))
        }
        let name = self.rooms[room]?.participants[id]?.name ?? ""
        // The busiest message, written by hand: JSONSerialization's encoder was a tenth of a loaded replica's CPU.
        var line = "{\"type\":\"chat\",\"from\":" + Self.quoted(id) + ",\"name\":" + Self.quoted(name)
        line += ",\"text\":" + Self.quoted(text) + ",\"at\":" + String(Int(now * 1000))
        if let sent = message["sent"] as? Double, sent.isFinite { line += ",\"sent\":" + String(sent) }
        line += "}"
        self.rooms[room]!.chat.append(line)
        if self.rooms[room]!.chat.count > self.settings.chatHistory { self.rooms[room]!.chat.removeFirst() }
        self.send(room, except: nil, line, out: &out)
    }

    mutating func updateState(_ connection: ConnectionID, _ message: [String: Any], out: inout [HubAction]) {
        guard let (room, id) = self.member(connection, out: &out) else { return }
        var state = self.rooms[room]!.participants[id]!.state
        if let value = message["audio"] as? Bool { state.audio = value }
        if let value = message["video"] as? Bool { state.video = value }
        if let value = message["screen"] as? Bool { state.screen = value }
        if let value = message["hand"] as? Bool { state.hand = value }
        self.rooms[room]!.participants[id]!.state = state
        self.broadcast(room, except: nil, ["type": "state", "id": id, "state": state.json], out: &out)
    }

    mutating func hostAction(
        _ connection: ConnectionID, _ type: String, _ message: [String: Any], out: inout [HubAction]
    ) {
        guard let (room, id) = self.member(connection, out: &out) else { return }
        guard self.rooms[room]?.participants[id]?.host == true else {
            return out.append(Self.error(connection, "not-host", "only a host may \(type)"))
        }
        guard let target = message["id"] as? String else {
            return out.append(Self.error(connection, "bad-message", "\(type) needs \"id\": a participant id"))
        }
        switch type {
        case "admit", "deny":
            guard let pending = self.rooms[room]?.lobby.removeValue(forKey: target) else {
                return out.append(
                    Self.error(connection, "no-such-participant", "nobody '\(target.prefix(64))' in the lobby"))
            }
            self.connections[pending.connection]?.waiting = nil
            guard type == "admit" else {
                self.connections[pending.connection]?.room = nil
                out.append(Self.error(pending.connection, "denied", "a host of '\(room)' did not let you in"))
                return
            }
            let participant = Participant(
                id: pending.id, name: pending.name, token: self.nextID(prefix: "t") + self.nextID(prefix: ""),
                host: false, state: MediaState(), connection: pending.connection)
            self.rooms[room]!.participants[pending.id] = participant
            self.rooms[room]!.order.append(pending.id)
            self.connections[pending.connection]?.participant = pending.id
            out.append(.send(pending.connection, self.joined(room, participant)))
            self.broadcast(
                room, except: pending.id, ["type": "peer-joined", "participant": Self.describe(participant)], out: &out)
        default:  // kick
            guard let victim = self.rooms[room]?.participants[target] else {
                return out.append(
                    Self.error(
                        connection, "no-such-participant", "participant '\(target.prefix(64))' is not in room '\(room)'"
                    ))
            }
            if let kicked = victim.connection {
                out.append(.send(kicked, Self.encode(["type": "kicked", "room": room])))
                out.append(.close(kicked, code: 4001, reason: "removed by a host"))
                self.connections[kicked] = nil
            }
            self.remove(target, from: room, reason: "kicked", out: &out)
        }
    }

    // MARK: membership

    func member(_ connection: ConnectionID, out: inout [HubAction]) -> (String, String)? {
        guard let state = self.connections[connection], let room = state.room, let id = state.participant,
            self.rooms[room]?.participants[id] != nil
        else {
            out.append(Self.error(connection, "not-joined", "join a room first"))
            return nil
        }
        return (room, id)
    }

    mutating func remove(_ id: String, from room: String, reason: String, out: inout [HubAction]) {
        guard self.rooms[room]?.participants.removeValue(forKey: id) != nil else { return }
        self.rooms[room]!.order.removeAll { $0 == id }
        self.broadcast(room, except: nil, ["type": "peer-left", "id": id, "reason": reason], out: &out)
        if self.rooms[room]!.participants.isEmpty {
            for pending in self.rooms[room]!.lobby.values {
                out.append(
                    Self.error(pending.connection, "room-ended", "room '\(room)' emptied before you were let in"))
                self.connections[pending.connection]?.waiting = nil
                self.connections[pending.connection]?.room = nil
            }
            self.rooms[room] = nil
        }
    }

    mutating func end(_ room: String, out: inout [HubAction]) {
        guard let live = self.rooms[room] else { return }
        let connections = live.participants.values.compactMap(\.connection) + live.lobby.values.map(\.connection)
        for connection in connections {
            out.append(.send(connection, Self.encode(["type": "ended", "room": room])))
            out.append(.close(connection, code: 1000, reason: "the room was ended"))
            self.connections[connection] = nil
        }
        self.rooms[room] = nil
    }

    mutating func dropConnection(_ connection: ConnectionID, now: Double, out: inout [HubAction]) {
        guard let state = self.connections.removeValue(forKey: connection), let room = state.room else { return }
        if let waiting = state.waiting {
            self.rooms[room]?.lobby[waiting] = nil
        }
        if let id = state.participant, self.rooms[room]?.participants[id]?.connection == connection {
            self.rooms[room]!.participants[id]!.connection = nil
            self.rooms[room]!.participants[id]!.droppedAt = now
            self.broadcast(room, except: id, ["type": "peer-away", "id": id], out: &out)
        }
    }

    mutating func expire(now: Double, out: inout [HubAction]) {
        for (connection, state) in self.connections where now - state.lastSeen > self.settings.heartbeatTimeout {
            out.append(
                .close(connection, code: 1001, reason: "no heartbeat for \(Int(self.settings.heartbeatTimeout)) s"))
            self.dropConnection(connection, now: now, out: &out)
        }
        for (room, live) in self.rooms {
            for (id, participant) in live.participants {
                if let dropped = participant.droppedAt, now - dropped >= self.settings.grace {
                    self.remove(id, from: room, reason: "dropped", out: &out)
                }
            }
        }
    }

    // MARK: output

    mutating func broadcast(
        _ room: String, except: String?, _ message: [String: Any], hostsOnly: Bool = false, out: inout [HubAction]
    ) {
        self.send(room, except: except, Self.encode(message), hostsOnly: hostsOnly, out: &out)
    }

    func send(_ room: String, except: String?, _ text: String, hostsOnly: Bool = false, out: inout [HubAction]) {
        guard let live = self.rooms[room] else { return }
        for id in live.order where id != except {
            guard let participant = live.participants[id], let connection = participant.connection else { continue }
            if hostsOnly && !participant.host { continue }
            out.append(.send(connection, text))
        }
    }

    static func describe(_ participant: Participant) -> [String: Any] {
        [
            "id": participant.id, "name": participant.name, "host": participant.host,
            "state": participant.state.json, "away": participant.connection == nil,
        ]
    }

    static func error(_ connection: ConnectionID, _ code: String, _ message: String) -> HubAction {
        .send(connection, Self.encode(["type": "error", "code": code, "message": message]))
    }

    public static func encode(_ object: [String: Any]) -> String {
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.withoutEscapingSlashes])
        else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func quoted(_ text: String) -> String { JSONText.quoted(text) }

    public static func validRoom(_ room: String) -> Bool {
        !room.isEmpty && room.utf8.count <= 64
            && room.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F
            }
    }

    mutating func nextID(prefix: String) -> String {
        // splitmix64: ids unique per hub and unguessable enough to serve as resume tokens with a seeded start
        self.random &+= 0x9E37_79B9_7F4A_7C15
        var z = self.random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return prefix + String(z, radix: 36)
    }
}
