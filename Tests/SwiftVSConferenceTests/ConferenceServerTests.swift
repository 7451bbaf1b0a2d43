import Foundation
import SwiftVSBench
import SwiftVSTestSupport
import Testing

@testable import SwiftVSConference

/// Runs `swiftvs conference` (with `arguments`) on a free port for `body`, then stops it by PID. A child process,
/// as users run it, so that the test process's cooperative pool (which other tests may keep busy) does not serve it.
func withConference<T: Sendable>(_ arguments: [String] = [], _ body: (Int) async throws -> T) async throws -> T {
    let port = try freePort()
    let server = try ChildProcess(
        swiftvsBinary.path, ["conference", "--listen", "127.0.0.1:\(port)", "--log-level", "warning"] + arguments)
    defer {
        _ = server.stop()
        server.removeOutput()
    }
    try await waitUntilAsync("the conference server listens", seconds: 30) {
        (try? await curlAsync("http://127.0.0.1:\(port)/healthz").status) == 200 || !server.isRunning
    }
    guard server.isRunning else { throw TestSupportError("swiftvs conference exited: \(server.stderr)") }
    return try await body(port)
}

func joinRoom(
    _ port: Int, _ room: String, _ name: String, extra: [String: Any] = [:]
) async throws
    -> (SignalClient, [String: Any])
{
    let client = try await SignalClient.connect(url: "ws://127.0.0.1:\(port)/ws?room=\(room)")
    var message: [String: Any] = ["type": "join", "room": room, "name": name]
    message.merge(extra) { $1 }
    client.send(message)
    let answer = await client.next(timeout: 5) ?? [:]
    return (client, answer)
}

@Suite(.serialized)
struct ConferenceServerTests {
    @Test func apiRoomsPasswordsAndBadInput() async throws {
        try await withConference { port in
            let base = "http://127.0.0.1:\(port)/api"
            let created = try await curlAsync(
                "\(base)/rooms", ["-X", "POST", "-d", #"{"name":"standup","password":"hunter22"}"#])
            #expect(created.status == 201, "\(created.body)")
            let room = try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as! [String: Any]
            #expect(room["room"] as? String == "standup" && room["passwordRequired"] as? Bool == true)
            let hostKey = room["hostKey"] as! String
            let got = try await curlAsync("\(base)/rooms/standup")
            #expect(
                got.status == 200 && got.body.contains(#""passwordRequired":true"#) && !got.body.contains("hunter22"))
            #expect(try await curlAsync("\(base)/rooms/nope").status == 404)
            // a host lists their rooms by key
            let listed = try await curlAsync("\(base)/rooms?hostKey=\(hostKey)")
            #expect(listed.status == 200 && listed.body.contains("standup"))
            #expect(try await curlAsync("\(base)/rooms").status == 400)
            // bad input: 400 naming the field
            let cases: [(String, String, Int)] = [
                (#"{"name":"has space"}"#, "name", 400),
                (#"{"name":"ok","password":"abc"}"#, "password", 400),
                (#"{"name":"ok","password":7}"#, "password", 400),
                (#"{"name":"ok","lobby":"yes"}"#, "lobby", 400),
                (#"{"name":"ok","hostKey":"short"}"#, "hostKey", 400),
                (#"{"name":"ok","colour":"red"}"#, "colour", 400),
                (#"{"name":"standup"}"#, "name", 409),
                ("not json", "body", 400),
            ]
            for (body, field, status) in cases {
                let r = try await curlAsync("\(base)/rooms", ["-X", "POST", "-d", body])
                #expect(r.status == status, "\(body): \(r.body)")
                #expect(r.body.contains(#""field":"\#(field)""#), "\(body): \(r.body)")
            }
            // the registry's password holds on the signal side (same process): wrong, then right
            let (eve, refused) = try await joinRoom(port, "standup", "Eve", extra: ["password": "guess"])
            #expect(refused["code"] as? String == "wrong-password")
            eve.close()
            let (host, joined) = try await joinRoom(port, "standup", "Host", extra: ["hostKey": hostKey])
            #expect(joined["type"] as? String == "joined" && joined["host"] as? Bool == true)
            let (guest, ok) = try await joinRoom(port, "standup", "Guest", extra: ["password": "hunter22"])
            #expect(ok["type"] as? String == "joined" && ok["host"] as? Bool == false)
            // counts reach the registry with the next report (every second while they change)
            try await waitUntilAsync("the api counts 2 participants") {
                (try? await curlAsync("\(base)/rooms/standup").body.contains(#""participants":2"#)) == true
            }
            host.close()
            guest.close()
        }
    }

    /// api replicas in front of one registry: a room created through one is read through another, and a signal
    /// replica's counts, reported through a replica, reach the registry.
    @Test func apiReplicasShareTheRegistry() async throws {
        try await withConference(["api", "--secret", "shared-secret"]) { registry in
            let replicaPort = try freePort()
            let replica = try ChildProcess(
                swiftvsBinary.path,
                [
                    "conference", "api", "--listen", "127.0.0.1:\(replicaPort)", "--registry",
                    "http://127.0.0.1:\(registry)", "--secret", "shared-secret",
                ])
            defer {
                _ = replica.stop()
                replica.removeOutput()
            }
            let signalPort = try freePort()
            let signal = try ChildProcess(
                swiftvsBinary.path,
                [
                    "conference", "signal", "--listen", "127.0.0.1:\(signalPort)", "--api",
                    "http://127.0.0.1:\(replicaPort)", "--secret", "shared-secret",
                ])
            defer {
                _ = signal.stop()
                signal.removeOutput()
            }
            for port in [replicaPort, signalPort] {
                try await waitUntilAsync("127.0.0.1:\(port) serves", seconds: 30) {
                    (try? await curlAsync("http://127.0.0.1:\(port)/healthz").status) == 200
                }
            }
            let created = try await curlAsync(
                "http://127.0.0.1:\(replicaPort)/api/rooms",
                ["-X", "POST", "-d", #"{"name":"shared","password":"pass-word"}"#])
            #expect(created.status == 201, "\(created.body)")
            #expect(try await curlAsync("http://127.0.0.1:\(registry)/api/rooms/shared").status == 200)
            #expect(try await curlAsync("http://127.0.0.1:\(replicaPort)/api/rooms/shared").status == 200)
            let bad = try await curlAsync(
                "http://127.0.0.1:\(replicaPort)/api/rooms", ["-X", "POST", "-d", #"{"name":"a b"}"#])
            #expect(bad.status == 400 && bad.body.contains(#""field":"name""#))
            // The registry's password holds on the signal replica, which asked through the api replica.
            let (eve, refused) = try await joinRoom(signalPort, "shared", "Eve", extra: ["password": "wrong"])
            #expect(refused["code"] as? String == "wrong-password")
            eve.close()
            let (ann, joined) = try await joinRoom(signalPort, "shared", "Ann", extra: ["password": "pass-word"])
            #expect(joined["type"] as? String == "joined")
            try await waitUntilAsync("the registry counts Ann") {
                (try? await curlAsync("http://127.0.0.1:\(registry)/api/rooms/shared").body.contains(
                    #""participants":1"#)) == true
            }
            ann.close()
        }
    }

    /// TURN credentials as coturn checks them: username `expiry:user`, password base64(HMAC-SHA1(secret, username)),
    /// recomputed here with openssl.
    @Test func turnCredentialsMatchCoturnScheme() async throws {
        try await withConference([
            "--turn", "turn:127.0.0.1:3478?transport=udp", "--turn-secret", "north-sea", "--turn-ttl", "3600s",
            "--stun", "stun:127.0.0.1:3478",
        ]) { port in
            let before = Int(Date().timeIntervalSince1970)
            let r = try await curlAsync("http://127.0.0.1:\(port)/api/ice?user=alice")
            #expect(r.status == 200)
            let answer = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as! [String: Any]
            let servers = answer["iceServers"] as! [[String: Any]]
            #expect((servers[0]["urls"] as? [String]) == ["stun:127.0.0.1:3478"])
            let turn = servers[1]
            let username = turn["username"] as! String
            let parts = username.split(separator: ":")
            #expect(parts.count == 2 && parts[1] == "alice")
            let expiry = Int(parts[0])!
            #expect(expiry >= before + 3600 && expiry <= before + 3700)
            let openssl = try await toolAsync(
                "sh", ["-c", "printf '%s' '\(username)' | openssl dgst -sha1 -hmac 'north-sea' -binary | base64"])
            #expect(turn["credential"] as? String == openssl.out.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(try await curlAsync("http://127.0.0.1:\(port)/api/ice?user=a:b").body.contains(#""field":"user""#))
        }
    }

    @Test func webClientIsCacheable() async throws {
        try await withConference { port in
            let page = try await curlHeadersAsync("http://127.0.0.1:\(port)/")
            #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["cache-control"] == "no-cache" && page.headers["etag"] != nil)
            let again = try await curlHeadersAsync(
                "http://127.0.0.1:\(port)/", ["-H", "If-None-Match: \(page.headers["etag"]!)"])
            #expect(again.status == 304)
            let html = try await curlAsync("http://127.0.0.1:\(port)/").body
            let script = html.range(of: #"/assets/app\.js\?v=[0-9a-f]+"#, options: .regularExpression).map {
                String(html[$0])
            }
            #expect(script != nil)
            let js = try await curlHeadersAsync("http://127.0.0.1:\(port)\(script ?? "/assets/app.js")")
            #expect(js.status == 200 && js.headers["content-type"] == "text/javascript; charset=utf-8")
            #expect(js.headers["cache-control"] == "public, max-age=31536000, immutable")
            #expect(
                try await curlHeadersAsync("http://127.0.0.1:\(port)/assets/app.css").headers["content-type"]
                    == "text/css; charset=utf-8")
            #expect(try await curlAsync("http://127.0.0.1:\(port)/healthz").status == 200)
        }
    }

    /// Hostile input over a real WebSocket: each bad frame gets its error, and neither the server nor another
    /// room notices; then 10 000 random and mutated frames, and the server still serves.
    @Test func hostileFramesAndFuzz() async throws {
        try await withConference([
            "--max-message", "4096", "--message-rate", "1000000", "--message-burst", "1000000",
            "--failed-joins", "1000000",
        ]) { port in
            let (calm, _) = try await joinRoom(port, "calm", "Calm")
            let (peer, _) = try await joinRoom(port, "calm", "Peer")
            _ = await calm.waitFor("peer-joined", timeout: 5)
            let (bad, joined) = try await joinRoom(port, "rough", "Rough")
            #expect(joined["type"] as? String == "joined")
            let frames: [(String, String)] = [
                ("{oops", "bad-json"),
                (#"{"type":"warp"}"#, "unknown-type"),
                (#"{"type":"chat","text":"\#(String(repeating: "x", count: 5000))"}"#, "too-large"),
                (#"{"type":"offer","to":"p-nobody","data":{}}"#, "no-such-participant"),
            ]
            for (frame, code) in frames {
                bad.sendText(frame)
                let error = await bad.waitFor("error", timeout: 5)
                #expect(error?["code"] as? String == code, "\(frame.prefix(40))")
            }
            // a flood of joins into one room: each refused with room-full once it is full
            var flood: [SignalClient] = []
            var full = 0
            for i in 0..<8 {
                let (c, answer) = try await joinRoom(port, "crowd", "n\(i)")
                flood.append(c)
                if answer["code"] as? String == "room-full" { full += 1 }
            }
            #expect(full == 2)
            // fuzz: random bytes, and valid messages with mutated fields
            var generator = SystemRandomNumberGenerator()
            let seeds = [
                #"{"type":"join","room":"r","name":"x"}"#, #"{"type":"chat","text":"hi"}"#,
                #"{"type":"state","audio":false}"#, #"{"type":"offer","to":"p1","data":{"sdp":"v=0"}}"#,
                #"{"type":"kick","id":"p1"}"#, #"{"type":"admit","id":null}"#, #"{"type":"leave"}"#,
            ]
            for i in 0..<10_000 {
                var bytes: [UInt8]
                if i % 2 == 0 {
                    bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
                } else {
                    bytes = Array(seeds[i % seeds.count].utf8)
                    for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                        bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(
                            in: 0x20...0x7e, using: &generator)
                    }
                }
                bad.sendText(String(decoding: bytes, as: UTF8.self))
            }
            bad.send(["type": "ping"])
            let survived = await bad.waitFor("pong", timeout: 20)
            #expect(survived != nil || bad.isClosed, "the fuzzed connection answers or was closed, never hangs")
            // the other room never noticed
            calm.send(["type": "chat", "text": "still here"])
            let heard = await peer.waitFor("chat", timeout: 5)
            #expect(heard?["text"] as? String == "still here")
            #expect(try await curlAsync("http://127.0.0.1:\(port)/healthz").status == 200)
            for c in flood + [calm, peer, bad] { c.close() }
        }
    }
}

/// `swiftvs bench conference` against a signal server, both child processes (a client in the test process would
/// share its cooperative pool with tests that block it): every participant joins, every chat message reaches each
/// room-mate, and the text, JSON and HTML reports add up.
@Test func benchConferenceReportAddsUp() async throws {
    try await withConference { port in
        let dir = try temporaryDirectory("bench-conference")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await toolAsync(
            swiftvsBinary.path,
            [
                "bench", "conference", "ws://127.0.0.1:\(port)", "--rooms", "5", "--participants", "3", "--ramp",
                "0.5s", "-d", "1.5s", "--rate", "2", "--quiet", "--json", "\(dir)/r.json", "--html", "\(dir)/r.html",
            ], seconds: 120)
        #expect(run.code == 0, "\(run.out)\(run.err)")
        #expect(run.out.contains("Joined         15 of 15"), "\(run.out)")
        let report = try JSONDecoder().decode(
            ConferenceLoadReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/r.json")))
        #expect(report.joined == 15 && report.joinFailed == 0)
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.sent > 0 && report.expected == report.sent * 2)
        #expect(report.delivered == report.expected, "\(report.delivered) of \(report.expected)")
        #expect(report.delivery.count == report.delivered && report.joinTime.count == 15)
        #expect(report.memory.first { $0.name == "bench" }?.peakMiB ?? 0 > 0)
        #expect(try String(contentsOfFile: "\(dir)/r.html", encoding: .utf8).contains("<svg"))
    }
    #expect(throws: BenchSpecError.self) {
        try ConferenceLoadSpec(url: "http://x", rooms: 1, participants: 1, ramp: 0, duration: 1)
    }
}
