import Foundation
import Testing

@testable import SwiftVSConference

/// The hub as a table of scripted conversations: each step is a frame in (or an event) and the messages out.
struct RoomHubTests {
    static func digest(_ room: String, _ secret: String) -> String { "\(room)|\(secret)" }

    struct Script {
        var hub: RoomHub
        var now = 100.0
        init(_ settings: HubSettings = .init()) {
            self.hub = RoomHub(settings: settings, seed: 7) { RoomHubTests.digest($0, $1) }
        }

        /// Sends `message` from connection `c`; returns what each connection got, as parsed objects.
        mutating func send(_ c: ConnectionID, _ message: [String: Any]) -> [ConnectionID: [[String: Any]]] {
            let text = String(decoding: try! JSONSerialization.data(withJSONObject: message), as: UTF8.self)
            return self.raw(c, text)
        }

        mutating func raw(_ c: ConnectionID, _ text: String) -> [ConnectionID: [[String: Any]]] {
            Self.sorted(self.hub.handle(.received(c, text: text, now: self.now)))
        }

        mutating func event(_ event: HubEvent) -> [ConnectionID: [[String: Any]]] {
            Self.sorted(self.hub.handle(event))
        }

        mutating func open(_ c: ConnectionID) { _ = self.hub.handle(.opened(c, now: self.now)) }

        /// Opens `c` and joins `room`; returns the joined message.
        mutating func join(
            _ c: ConnectionID, _ room: String, _ name: String, extra: [String: Any] = [:]
        )
            -> [String: Any]
        {
            self.open(c)
            var message: [String: Any] = ["type": "join", "room": room, "name": name]
            message.merge(extra) { $1 }
            return self.send(c, message)[c]?.first ?? [:]
        }

        static func sorted(_ actions: [HubAction]) -> [ConnectionID: [[String: Any]]] {
            var out: [ConnectionID: [[String: Any]]] = [:]
            for action in actions {
                switch action {
                case .send(let c, let text):
                    out[c, default: []].append(
                        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:])
                case .close(let c, let code, let reason):
                    out[c, default: []].append(["type": "close", "code": Int(code), "reason": reason])
                }
            }
            return out
        }
    }

    static func types(_ messages: [[String: Any]]?) -> [String] {
        (messages ?? []).map { $0["type"] as? String ?? "?" }
    }

    @Test func joinPresenceRelayChatState() {
        var s = Script()
        let a = s.join(1, "r", "Alice")
        #expect(a["type"] as? String == "joined")
        #expect(a["host"] as? Bool == true)
        #expect((a["participants"] as? [Any])?.count == 0)
        s.open(2)
        let joinB = s.send(2, ["type": "join", "room": "r", "name": "Bob"])
        #expect(Self.types(joinB[2]) == ["joined"])
        #expect(Self.types(joinB[1]) == ["peer-joined"])
        let aliceID = a["id"] as! String
        let bob = joinB[2]![0]
        let bobID = bob["id"] as! String
        let others = bob["participants"] as! [[String: Any]]
        #expect(others.map { $0["name"] as? String } == ["Alice"])
        // relay: offer from Bob to Alice arrives with "from"
        let offer = s.send(2, ["type": "offer", "to": aliceID, "data": ["type": "offer", "sdp": "v=0"]])
        #expect(offer[1]?.first?["from"] as? String == bobID)
        #expect((offer[1]?.first?["data"] as? [String: Any])?["sdp"] as? String == "v=0")
        #expect(offer[2] == nil)
        // chat to both, kept for late joiners
        let chat = s.send(1, ["type": "chat", "text": "hello"])
        #expect(Self.types(chat[1]) == ["chat"] && Self.types(chat[2]) == ["chat"])
        let c = s.join(3, "r", "Carol")
        #expect((c["chat"] as? [[String: Any]])?.first?["text"] as? String == "hello")
        // mute shows to everyone
        let mute = s.send(1, ["type": "state", "audio": false])
        let state = mute[2]?.first?["state"] as? [String: Any]
        #expect(mute[2]?.first?["id"] as? String == aliceID && state?["audio"] as? Bool == false)
        #expect(state?["video"] as? Bool == true)
        // leave
        let leave = s.send(2, ["type": "leave"])
        #expect(Self.types(leave[2]) == ["left"])
        #expect(Self.types(leave[1]) == ["peer-left"] && Self.types(leave[3]) == ["peer-left"])
        #expect(s.hub.roomCounts == ["r": 2])
    }

    /// Every refusal names its cause, and leaves the connection and the room as they were.
    @Test(arguments: [
        ("{not json", "bad-json"),
        ("[1,2]", "bad-json"),
        ("{\"kind\":\"join\"}", "bad-message"),
        ("{\"type\":\"teleport\"}", "unknown-type"),
        ("{\"type\":\"offer\",\"to\":\"nobody\",\"data\":{}}", "no-such-participant"),
        ("{\"type\":\"offer\",\"data\":{}}", "bad-message"),
        ("{\"type\":\"chat\",\"text\":\"\"}", "bad-message"),
        ("{\"type\":\"kick\",\"id\":\"x\"}", "not-host"),
        ("{\"type\":\"end\"}", "not-host"),
        ("{\"type\":\"join\",\"room\":\"r\",\"name\":\"again\"}", "already-joined"),
    ])
    func refusals(frame: String, code: String) {
        var s = Script()
        _ = s.join(1, "r", "Host")
        _ = s.join(2, "r", "Guest")
        let out = s.raw(2, frame)
        #expect(Self.types(out[2]) == ["error"], "\(frame)")
        #expect(out[2]?.first?["code"] as? String == code, "\(frame)")
        #expect((out[2]?.first?["message"] as? String)?.isEmpty == false)
        #expect(out[1] == nil, "nothing reaches the others")
        #expect(s.hub.roomCounts == ["r": 2])
        // still served
        #expect(Self.types(s.send(2, ["type": "ping"])[2]) == ["pong"])
    }

    @Test(arguments: [
        "plain", "quote \" and \\ backslash", "line\nbreak\ttab\r", "bell \u{07} nul-free", "ünïcødé 🎥", "</script>",
    ])
    func chatTextRoundTrips(text: String) {
        var s = Script()
        _ = s.join(1, "r", "Name \"quoted\"")
        let out = s.send(1, ["type": "chat", "text": text, "sent": 12.5])
        #expect(out[1]?.first?["text"] as? String == text)
        #expect(out[1]?.first?["name"] as? String == "Name \"quoted\"")
        #expect(out[1]?.first?["sent"] as? Double == 12.5)
    }

    @Test func tooLargeAndNotJoined() {
        var settings = HubSettings()
        settings.maxMessageBytes = 1024
        var s = Script(settings)
        s.open(1)
        let big = s.send(1, ["type": "chat", "text": String(repeating: "x", count: 2000)])
        #expect(big[1]?.first?["code"] as? String == "too-large")
        #expect((big[1]?.first?["message"] as? String)?.contains("1024") == true)
        #expect(s.send(1, ["type": "chat", "text": "hi"])[1]?.first?["code"] as? String == "not-joined")
    }

    @Test func passwordsFullRoomsAndJoinFloods() {
        var settings = HubSettings()
        settings.roomLimit = 3
        var s = Script(settings)
        _ = s.join(1, "r", "Host", extra: ["password": "secret"])
        let wrong = s.join(2, "r", "Eve", extra: ["password": "guess"])
        #expect(wrong["code"] as? String == "wrong-password")
        let none = s.join(3, "r", "Eve")
        #expect(none["code"] as? String == "password-required")
        #expect(s.join(4, "r", "Bob", extra: ["password": "secret"])["type"] as? String == "joined")
        #expect(s.join(5, "r", "Cat", extra: ["password": "secret"])["type"] as? String == "joined")
        let full = s.join(6, "r", "Dan", extra: ["password": "secret"])
        #expect(full["code"] as? String == "room-full")
        #expect((full["message"] as? String)?.contains("3 participants") == true)
        // one connection hammering joins is closed after the limit; the room is untouched
        var closed = false
        for _ in 0..<settings.failedJoins {
            let out = s.send(2, ["type": "join", "room": "r", "name": "Eve", "password": "nope"])
            closed = closed || Self.types(out[2]).contains("close")
        }
        #expect(closed)
        #expect(s.hub.roomCounts == ["r": 3])
        // another room is unaffected
        #expect(s.join(7, "other", "Zed")["type"] as? String == "joined")
    }

    @Test func registryPolicyLobbyAdmitKickEnd() {
        var s = Script()
        _ = s.event(
            .policy(RoomPolicy(room: "r", passwordDigest: nil, hostKeyDigest: Self.digest("r", "hk"), lobby: true)))
        // a guest arriving first waits in the lobby; the host sees the knock on joining
        s.open(1)
        let waiting = s.send(1, ["type": "join", "room": "r", "name": "Guest"])
        #expect(Self.types(waiting[1]) == ["lobby"])
        let host = s.join(2, "r", "Host", extra: ["hostKey": "hk"])
        #expect(host["host"] as? Bool == true)
        let guestID = waiting[1]![0]["id"] as! String
        let admit = s.send(2, ["type": "admit", "id": guestID])
        #expect(Self.types(admit[1]) == ["joined"])
        #expect(Self.types(admit[2]) == ["peer-joined"])
        // a second guest: its knock reaches only the host; deny
        s.open(3)
        let knock = s.send(3, ["type": "join", "room": "r", "name": "Other"])
        #expect(Self.types(knock[2]) == ["knock"] && knock[1] == nil)
        let deny = s.send(2, ["type": "deny", "id": knock[3]![0]["id"] as! String])
        #expect(deny[3]?.first?["code"] as? String == "denied")
        // kick the guest
        let kick = s.send(2, ["type": "kick", "id": guestID])
        #expect(Self.types(kick[1]) == ["kicked", "close"])
        #expect(Self.types(kick[2]) == ["peer-left"])
        // end closes everyone
        _ = s.join(4, "r", "Late", extra: ["hostKey": "hk"])
        let end = s.send(2, ["type": "end"])
        #expect(Self.types(end[2]) == ["ended", "close"] && Self.types(end[4]) == ["ended", "close"])
        #expect(s.hub.roomCounts.isEmpty)
    }

    @Test func dropGraceReconnectAndHeartbeat() {
        var settings = HubSettings()
        settings.grace = 10
        settings.heartbeatTimeout = 30
        var s = Script(settings)
        let a = s.join(1, "r", "Alice")
        _ = s.join(2, "r", "Bob")
        // Alice's connection drops: Bob sees her away, she keeps her place for the grace period
        #expect(Self.types(s.event(.closed(1, now: s.now))[2]) == ["peer-away"])
        s.now += 5
        #expect(s.event(.tick(now: s.now)).isEmpty)
        let back = s.join(3, "r", "Alice", extra: ["token": a["token"] as! String])
        #expect(back["id"] as? String == a["id"] as? String, "a reconnect keeps the identity")
        // now Bob drops and does not come back: removed after the grace
        _ = s.event(.closed(2, now: s.now))
        s.now += 11
        let expired = s.event(.tick(now: s.now))
        #expect(Self.types(expired[3]) == ["peer-left"])
        #expect(s.hub.roomCounts == ["r": 1])
        // a silent connection is closed after the heartbeat timeout
        s.now += 31
        let silent = s.event(.tick(now: s.now))
        #expect(Self.types(silent[3]).contains("close"))
    }

    @Test func rateLimitClosesOnlyTheFlooder() {
        var settings = HubSettings()
        settings.messageRate = 10
        settings.messageBurst = 20
        var s = Script(settings)
        _ = s.join(1, "r", "Flood")
        _ = s.join(2, "r", "Calm")
        var closed = false
        for _ in 0..<25 where !closed {
            closed = Self.types(s.send(1, ["type": "ping"])[1]).contains("close")
        }
        #expect(closed)
        #expect(Self.types(s.send(2, ["type": "ping"])[2]) == ["pong"])
    }
}
