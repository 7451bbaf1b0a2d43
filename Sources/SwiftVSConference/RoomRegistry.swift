import Crypto
import Foundation

/// Why the api refused a request: the HTTP status and the field at fault, as the client sees them.
public struct APIProblem: Error, Equatable, Sendable {
    public var status: Int
    public var field: String?
    public var message: String

    public init(_ status: Int, field: String? = nil, _ message: String) {
        self.status = status
        self.field = field
        self.message = message
    }

    public var json: String {
        var object: [String: Any] = ["error": self.message]
        if let field { object["field"] = field }
        return RoomHub.encode(object)
    }
}

/// The api service's room registry: rooms created with their password and host key (kept as salted SHA-256), and
/// the participant counts the signal replicas report. No clock of its own: `now` comes with every call.
public struct RoomRegistry: Sendable {
    public struct Record: Sendable {
        public var policy: RoomPolicy
        public var created: Double
        var hostKey: String
    }

    struct Presence: Sendable {
        var rooms: [String: Int]
        var at: Double
    }

    var rooms: [String: Record] = [:]
    var presence: [String: Presence] = [:]
    /// A replica that has not reported for this long no longer counts.
    public var presenceTimeout: Double = 30
    /// Rooms one registry holds (every create beyond it is refused with 503).
    public var maxRooms = 100_000

    public init() {}

    /// SHA-256 of `secret` salted with the room name, in hex: how passwords and host keys are kept and compared.
    public static func digest(room: String, secret: String) -> String {
        let hash = SHA256.hash(data: Data("swiftvs-room:\(room):\(secret)".utf8))
        return hash.map { String(format: "%02x", $0) }.joined()
    }

    /// `POST /api/rooms`: `name` (optional; random otherwise), `password` (optional, 4 to 128 characters), `lobby`,
    /// `hostKey` (optional, 16 to 128 characters, to list one host's rooms; random otherwise).
    public mutating func create(
        _ body: [String: Any], randomName: String, randomKey: String, now: Double
    ) throws(APIProblem)
        -> (Record, hostKey: String)
    {
        let name: String
        switch body["name"] {
        case nil, is NSNull: name = randomName
        case let given as String:
            guard RoomHub.validRoom(given) else {
                throw APIProblem(400, field: "name", "name: 1 to 64 letters, digits, '-' or '_'")
            }
            name = given
        default: throw APIProblem(400, field: "name", "name must be a string")
        }
        var password: String?
        switch body["password"] {
        case nil, is NSNull: password = nil
        case let given as String:
            guard (4...128).contains(given.count) else {
                throw APIProblem(400, field: "password", "password: 4 to 128 characters")
            }
            password = given
        default: throw APIProblem(400, field: "password", "password must be a string")
        }
        var lobby = false
        if let given = body["lobby"] {
            guard let flag = given as? Bool else {
                throw APIProblem(400, field: "lobby", "lobby must be true or false")
            }
            lobby = flag
        }
        var hostKey = randomKey
        if let given = body["hostKey"] {
            guard let key = given as? String, (16...128).contains(key.count) else {
                throw APIProblem(400, field: "hostKey", "hostKey: a string of 16 to 128 characters")
            }
            hostKey = key
        }
        let unknown = Set(body.keys).subtracting(["name", "password", "lobby", "hostKey"])
        if let field = unknown.sorted().first {
            throw APIProblem(400, field: field, "unknown field '\(field)'; a room takes name, password, lobby, hostKey")
        }
        guard self.rooms[name] == nil else { throw APIProblem(409, field: "name", "room '\(name)' exists") }
        guard self.rooms.count < self.maxRooms else {
            throw APIProblem(503, "the registry is full (\(self.maxRooms) rooms)")
        }
        let policy = RoomPolicy(
            room: name, passwordDigest: password.map { Self.digest(room: name, secret: $0) },
            hostKeyDigest: Self.digest(room: name, secret: hostKey), lobby: lobby)
        let record = Record(policy: policy, created: now, hostKey: Self.digest(room: "", secret: hostKey))
        self.rooms[name] = record
        return (record, hostKey)
    }

    public func policy(_ room: String) -> RoomPolicy? { self.rooms[room]?.policy }

    /// Participants in `room` across the replicas that reported within `presenceTimeout`.
    public func participants(_ room: String, now: Double) -> Int {
        self.presence.values.reduce(0) { $0 + ($1.at + self.presenceTimeout >= now ? $1.rooms[room] ?? 0 : 0) }
    }

    /// `GET /api/rooms/{room}`: what anyone may know of a room (not its password or host key).
    public func describe(_ room: String, now: Double) -> [String: Any]? {
        let live = self.participants(room, now: now)
        guard let record = self.rooms[room] else {
            // A room made by its first joiner on a signal replica, known only from the counts.
            return live > 0 ? ["room": room, "registered": false, "participants": live] : nil
        }
        return [
            "room": room, "registered": true, "passwordRequired": record.policy.passwordDigest != nil,
            "lobby": record.policy.lobby, "participants": live, "created": Int(record.created),
        ]
    }

    /// `GET /api/rooms?hostKey=K`: the rooms created with that host key.
    public func rooms(hostKey: String, now: Double) -> [[String: Any]] {
        let digest = Self.digest(room: "", secret: hostKey)
        return self.rooms.values.filter { $0.hostKey == digest }.sorted { $0.policy.room < $1.policy.room }
            .compactMap { self.describe($0.policy.room, now: now) }
    }

    /// A signal replica's report: its rooms and their participant counts, replacing its last one.
    public mutating func report(replica: String, rooms: [String: Int], now: Double) {
        self.presence[replica] = Presence(rooms: rooms, at: now)
        self.presence = self.presence.filter { $0.value.at + self.presenceTimeout >= now }
    }
}

/// Time-limited TURN credentials in coturn's `use-auth-secret` scheme (draft-uberti-behave-turn-rest): the username
/// is `<expiry unix time>:<user>` and the password base64(HMAC-SHA1(secret, username)).
public enum TURNCredentials {
    public static func make(secret: String, user: String, expiry: Int) -> (username: String, credential: String) {
        let username = "\(expiry):\(user)"
        let mac = HMAC<Insecure.SHA1>.authenticationCode(
            for: Data(username.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return (username, Data(mac).base64EncodedString())
    }
}
