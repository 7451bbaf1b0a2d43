import SwiftVSTestSupport
import Foundation
import NIOCore
import SwiftVSCore
@testable import SwiftVSDirector
import Synchronization
import Testing

/// Runs clients in a loop until `stop` is set or `maxRequests` each are done (bounded in count and time).
func loadUntil(
    port: Int, clients: Int, path: String = "/", maxRequests: Int = 20_000, seconds: Double = 30,
    stop: Counter, failures: Counter, done: Counter
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<clients {
            group.addTask {
                try await onThread {
                    let client = BlockingClient(port: port, timeout: 5)
                    let deadline = Date().addingTimeInterval(seconds)
                    for _ in 0..<maxRequests where stop.value == 0 && Date() < deadline {
                        let response = try? client.request("GET", path)
                        if response?.status != 200 {
                            failures.add()
                            client.close()
                        }
                        done.add()
                    }
                }
            }
        }
        try await group.waitForAll()
    }
}

/// Polls `condition` every 10 ms for up to `seconds`; returns the seconds it took, or nil.
func secondsUntil(_ seconds: Double, _ condition: () -> Bool) async throws -> Double? {
    let start = Date()
    while Date().timeIntervalSince(start) < seconds {
        if condition() { return Date().timeIntervalSince(start) }
        try await Task.sleep(for: .milliseconds(10))
    }
    return nil
}

extension VirtualService {
    func state(of address: String) -> ServerState? {
        self.status().servers.first { $0.address == address }?.state
    }
}

extension IntegrationTests {
    @Suite("Health checks and runtime control", .serialized, .timeLimit(.minutes(3)))
    struct PoolControlTests {
        static let interval = 0.2
        static let health =
            "health: {check: http, path: /health, interval: 200ms, timeout: 150ms, rise: 2, fall: 2, jitter: 0}"

        @Test(
            "under load, a killed real server costs no GET, leaves within fall × interval, returns within rise × interval; adm list and /metrics show it"
        )
        func killAndRestore() async throws {
            try await withBackends { backends in
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends, extra: Self.health)) {
                    director in
                    let admin = try await director.startAdmin()
                    let victim = backends[1].address
                    #expect(
                        try await secondsUntil(2) { director.service.status().servers.allSatisfy { $0.checks >= 2 } }
                            != nil)
                    let stop = Counter(), failures = Counter(), done = Counter()
                    async let load: Void = loadUntil(
                        port: director.port, clients: 3, path: "/delay/1", stop: stop,
                        failures: failures, done: done)
                    _ = try await secondsUntil(5) { done.value >= 300 }

                    await backends[1].kill()
                    let down = try await secondsUntil(3) { director.service.state(of: victim) == .down }
                    let listDown = try await runSwiftVSAsync(["adm", "list", "--admin", "127.0.0.1:\(admin)"])

                    try await backends[1].restart()
                    let up = try await secondsUntil(3) { director.service.state(of: victim) == .up }
                    let listUp = try await runSwiftVSAsync(["adm", "list", "--admin", "127.0.0.1:\(admin)"])
                    let servedAfter = backends[1].count
                    _ = try await secondsUntil(3) { backends[1].count > servedAfter + 20 }
                    stop.add()
                    try await load

                    // Connection refused fails a check at once: down after `fall` checks, up after `rise`, each
                    // within one interval of the event (plus the 10 ms polling here and a loaded machine's slack).
                    let down2 = try #require(down, "never marked down")
                    let up2 = try #require(up, "never came back")
                    #expect(down2 <= 2 * Self.interval + 0.25, "down after \(down2)s")
                    #expect(up2 <= 2 * Self.interval + 0.25, "up after \(up2)s")
                    #expect(failures.value == 0, "\(failures.value) failed GETs of \(done.value)")
                    #expect(backends[1].count > servedAfter, "the restored server takes requests again")

                    #expect(listDown.code == 0)
                    let downLine = listDown.stdout.split(separator: "\n").first { $0.contains(victim) } ?? ""
                    #expect(
                        downLine.contains("down") && downLine.contains("check failed 2/2: connection refused"),
                        Comment(rawValue: listDown.stdout))
                    let upLine = listUp.stdout.split(separator: "\n").first { $0.contains(victim) } ?? ""
                    #expect(
                        upLine.contains("up") && upLine.contains("check passed 2/2: 200 OK"),
                        Comment(rawValue: listUp.stdout))

                    let metrics = try await runSwiftVSAsync(["adm", "metrics", "--admin", "127.0.0.1:\(admin)"])
                    #expect(
                        metrics.stdout.contains(
                            "swiftvs_server_health_transitions_total{service=\"svc\",server=\"\(victim)\"} 2"),
                        Comment(rawValue: metrics.stdout))
                    #expect(metrics.stdout.contains("swiftvs_server_up{service=\"svc\",server=\"\(victim)\"} 1"))
                }
            }
        }

        @Test("a real server answering 500 to its health URL is taken out; with digest, so is one whose body changes")
        func statusAndDigest() async throws {
            try await withBackends { backends in
                let digest = MD5.hex(Array("ok\n".utf8))
                let health =
                    "health: {check: http, path: /health, interval: 200ms, timeout: 150ms, rise: 2, fall: 2, digest: \(digest)}"
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends, extra: health)) { director in
                    #expect(
                        try await secondsUntil(2) { director.service.status().servers.allSatisfy { $0.checks >= 2 } }
                            != nil)
                    #expect(director.service.status().servers.allSatisfy { $0.state == .up })
                    backends[0].healthStatus.store(500, ordering: .relaxed)
                    backends[1].healthBody.withLock { $0 = "v2\n" }
                    #expect(
                        try await secondsUntil(3) {
                            director.service.state(of: backends[0].address) == .down
                                && director.service.state(of: backends[1].address) == .down
                        } != nil)
                    let servers = director.service.status().servers
                    #expect(servers[0].reason.contains("status 500"), Comment(rawValue: servers[0].reason))
                    #expect(servers[1].reason.contains("body digest"), Comment(rawValue: servers[1].reason))
                    #expect(director.service.state(of: backends[2].address) == .up)
                    let before = backends.map(\.count)
                    let port = director.port
                    try await onThread {
                        let client = BlockingClient(port: port)
                        for _ in 0..<30 { _ = try client.request("GET", "/") }
                    }
                    #expect(zip(backends.map(\.count), before).map { $0 - $1 } == [0, 0, 30])
                }
            }
        }

        @Test(
            "adm weight 0 drains: no new requests, the open one completes; servers added and removed under load fail nothing"
        )
        func drainAddRemove() async throws {
            try await withBackends(4) { backends in
                let three = Array(backends.prefix(3))
                try await withDirector(serviceYAML(scheduler: "rr", backends: three)) { director in
                    // Writes go through the admin socket, as swiftvs adm's default does.
                    let admin = try await director.startAdminSocket()
                    defer { unlink(admin) }
                    let port = director.port
                    // A slow request in flight on rs0 when it is drained.
                    async let slow: Response = onThread {
                        let client = BlockingClient(port: port)
                        return try client.request("GET", "/delay/800")
                    }
                    #expect(try await secondsUntil(2) { backends[0].count == 1 } != nil)
                    let weight = try await runSwiftVSAsync([
                        "adm", "weight", "svc", backends[0].address, "0", "--admin", admin,
                    ])
                    #expect(weight.code == 0, Comment(rawValue: weight.stderr))
                    let before = backends[0].count
                    try await onThread {
                        let client = BlockingClient(port: port)
                        for _ in 0..<30 { _ = try client.request("GET", "/") }
                    }
                    #expect(backends[0].count == before, "a drained server got new requests")
                    let response = try await slow
                    #expect(response.status == 200 && response.text == "rs0", "the open request completes")

                    let stop = Counter(), failures = Counter(), done = Counter()
                    async let load: Void = loadUntil(
                        port: port, clients: 3, path: "/delay/1", stop: stop,
                        failures: failures, done: done)
                    _ = try await secondsUntil(5) { done.value >= 200 }
                    let add = try await runSwiftVSAsync(["adm", "add", "svc", backends[3].address, "--admin", admin])
                    #expect(add.code == 0, Comment(rawValue: add.stderr))
                    #expect(
                        try await secondsUntil(5) { backends[3].count >= 50 } != nil, "the added server takes requests")
                    let remove = try await runSwiftVSAsync([
                        "adm", "remove", "svc", backends[1].address, "--admin", admin,
                    ])
                    #expect(remove.code == 0, Comment(rawValue: remove.stderr))
                    let removedAt = backends[1].count
                    let mark = done.value
                    _ = try await secondsUntil(5) { done.value >= mark + 300 }
                    stop.add()
                    try await load
                    #expect(failures.value == 0, "\(failures.value) failed of \(done.value)")
                    #expect(backends[1].count <= removedAt + 3, "a removed server gets no new requests")
                    let missing = try await runSwiftVSAsync([
                        "adm", "weight", "svc", "127.0.0.1:1", "5", "--admin", admin,
                    ])
                    #expect(missing.code == 1 && missing.stderr.contains("no real server 127.0.0.1:1"))
                }
            }
        }

        @Test(
            "passive ejection: 5xx in a row take a server out early, no more than max_percent of the pool; checks bring it back"
        )
        func passiveEjection() async throws {
            try await withBackends { backends in
                let extra =
                    Self.health.replacingOccurrences(of: "interval: 200ms", with: "interval: 2s")
                    .replacingOccurrences(of: "timeout: 150ms", with: "timeout: 1s")
                    + "\nejection: {consecutive_failures: 3, max_percent: 34}"
                try await withDirector(serviceYAML(scheduler: "rr", backends: backends, extra: extra)) { director in
                    backends[0].failing.store(true, ordering: .relaxed)
                    backends[1].failing.store(true, ordering: .relaxed)
                    let port = director.port
                    let statuses = try await onThread {
                        let client = BlockingClient(port: port)
                        return try (0..<30).map { _ in try client.request("GET", "/").status }
                    }
                    // rs0 is ejected after its third 500; rs1 may not be (two of three out would exceed 34%).
                    #expect(director.service.state(of: backends[0].address) == .down)
                    #expect(director.service.state(of: backends[1].address) == .up)
                    #expect(statuses.filter { $0 == 500 }.count < 20)
                    #expect(director.service.status().servers[0].ejections == 1)
                    backends[0].failing.store(false, ordering: .relaxed)
                    // /health answers 200: two passed checks (2 s apart) bring it back.
                    #expect(
                        try await secondsUntil(6) { director.service.state(of: backends[0].address) == .up } != nil)
                }
            }
        }

        @Test("with a token, every admin route over TCP refuses a missing or wrong one")
        func token() async throws {
            try await withBackends(1) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let admin = "127.0.0.1:\(try await director.startAdmin(token: "s3cret-token"))"
                    let none = try await runSwiftVSAsync(["adm", "list", "--admin", admin])
                    #expect(none.code == 1 && none.stderr.contains("401"), Comment(rawValue: none.stderr))
                    let wrong = try await runSwiftVSAsync(["adm", "list", "--admin", admin, "--token", "s3cret-tokex"])
                    #expect(wrong.code == 1 && wrong.stderr.contains("401"))
                    let right = try await runSwiftVSAsync(["adm", "list", "--admin", admin, "--token", "s3cret-token"])
                    #expect(
                        right.code == 0 && right.stdout.contains(backends[0].address), Comment(rawValue: right.stderr))
                    // Every route, reads and writes, without and with a wrong token.
                    let routes = [
                        ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/api/services"),
                        ("GET", "/api/services/svc"),
                        ("GET", "/api/ha"), ("POST", "/api/reload"), ("POST", "/api/services/svc/servers"),
                        ("PATCH", "/api/services/svc/servers/\(backends[0].address)"), ("GET", "/no/such/route"),
                    ]
                    for (method, path) in routes {
                        for token in [nil, "nope-nope"] {
                            var args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]
                            args += ["-H", "Content-Type: application/json"]
                            if let token { args += ["-H", "Authorization: Bearer \(token)"] }
                            let r = try runTool("curl", args + ["http://\(admin)\(path)"])
                            #expect(r.stdout == "401", "\(method) \(path) with token \(token ?? "none"): \(r.stdout)")
                        }
                    }
                }
            }
        }

        @Test(
            "over TCP, a browser's cross-origin write, a rebinding Host, text/plain and tokenless writes are refused; the socket serves swiftvs adm and refuses another user"
        )
        func adminGuards() async throws {
            try await withBackends(2) { backends in
                try await withDirector(serviceYAML(backends: [backends[0]])) { director in
                    let open = "127.0.0.1:\(try await director.startAdmin())"
                    let guarded = "127.0.0.1:\(try await director.startAdmin(token: "s3cret-token"))"
                    let add = "{\"address\": \"\(backends[1].address)\"}"
                    func post(
                        _ admin: String, _ headers: [String], path: String = "/api/services/svc/servers"
                    )
                        throws -> (status: String, body: String)
                    {
                        let r = try runTool(
                            "curl",
                            ["-s", "-w", "\n%{http_code}", "-X", "POST", "--data", add]
                                + headers.flatMap { ["-H", $0] } + ["http://\(admin)\(path)"])
                        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
                    }
                    let json = "Content-Type: application/json", auth = "Authorization: Bearer s3cret-token"
                    // What the issue reproduced: text/plain, a foreign Origin, Host: evil.example. Refused.
                    let attack = try post(
                        open, ["Content-Type: text/plain", "Origin: http://evil.example", "Host: evil.example"])
                    #expect(attack.status == "403" && attack.body.contains("Host 'evil.example'"), "\(attack)")
                    let reload = try post(
                        open, ["Content-Type: text/plain", "Origin: http://evil.example"], path: "/api/reload")
                    #expect(reload.status == "403" && reload.body.contains("cross-origin"), "\(reload)")
                    // Each guard alone, with the token so that only it can refuse.
                    let rebinding = try post(guarded, [json, auth, "Host: evil.example:9100"])
                    #expect(rebinding.status == "403" && rebinding.body.contains("admin.names"), "\(rebinding)")
                    let crossOrigin = try post(guarded, [json, auth, "Origin: http://evil.example"])
                    #expect(crossOrigin.status == "403" && crossOrigin.body.contains("Origin"), "\(crossOrigin)")
                    let fetchSite = try post(guarded, [json, auth, "Sec-Fetch-Site: cross-site"])
                    #expect(fetchSite.status == "403" && fetchSite.body.contains("Sec-Fetch-Site"), "\(fetchSite)")
                    let plain = try post(guarded, ["Content-Type: text/plain", auth])
                    #expect(plain.status == "415" && plain.body.contains("application/json"), "\(plain)")
                    let tokenless = try post(open, [json])
                    #expect(tokenless.status == "403" && tokenless.body.contains("admin.token"), "\(tokenless)")
                    #expect(director.service.state(of: backends[1].address) == nil, "no attack added a server")
                    // Reads over TCP need nothing; the right token and a same-origin write go through.
                    #expect(try runTool("curl", ["-s", "http://\(open)/metrics"]).stdout.contains("swiftvs_server_up"))
                    let good = try post(guarded, [json, auth, "Origin: http://\(guarded)"])
                    #expect(good.status == "201", "\(good)")

                    // The socket: swiftvs adm drives it; a user who may not open the file is refused.
                    let socket = try await director.startAdminSocket()
                    defer { unlink(socket) }
                    let remove = try await runSwiftVSAsync([
                        "adm", "remove", "svc", backends[1].address, "--admin", socket,
                    ])
                    #expect(remove.code == 0, Comment(rawValue: remove.stderr))
                    #expect(director.service.state(of: backends[1].address) == nil)
                    var info = stat()
                    #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o600)
                    let asNobody = try runTool(
                        "runuser",
                        ["-u", "nobody", "--", "curl", "-s", "--unix-socket", socket, "http://localhost/healthz"])
                    #expect(
                        asNobody.code != 0 && !asNobody.stdout.contains("ok"), "nobody reached the socket: \(asNobody)")
                    let asRoot = try runTool("curl", ["-s", "--unix-socket", socket, "http://localhost/healthz"])
                    #expect(asRoot.stdout == "ok\n")
                }
            }
        }

        @Test(
            "exec checks take servers out; below the quorum the sorry server answers, and the pool returns; a tcp check sees a dead server"
        )
        func execQuorumSorryTcp() async throws {
            try await withBackends { backends in
                let flag = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "swiftvs-down-\(UUID().uuidString)"
                ).path
                let health =
                    "health: {check: exec, command: 'test ! -e \(flag)-$SWIFTVS_SERVER_PORT', interval: 200ms, timeout: 150ms, rise: 1, fall: 1}"
                let two = Array(backends.prefix(2))
                let yaml = serviceYAML(
                    scheduler: "rr", backends: two, extra: health + "\nquorum: 2\nsorry: \(backends[2].address)")
                defer { for backend in two { unlink("\(flag)-\(backend.port)") } }
                try await withDirector(yaml) { director in
                    let port = director.port
                    #expect(
                        try await secondsUntil(2) { director.service.status().servers.allSatisfy { $0.checks >= 1 } }
                            != nil)
                    _ = FileManager.default.createFile(atPath: "\(flag)-\(two[0].port)", contents: nil)
                    #expect(try await secondsUntil(3) { director.service.status().sorryActive } != nil)
                    let status = director.service.status()
                    #expect(
                        status.state == .down && status.servers[0].reason.contains("exit 1"),
                        Comment(rawValue: status.servers[0].reason))
                    let names = try await onThread { () -> [String] in
                        let client = BlockingClient(port: port)
                        return try (0..<6).map { _ in try client.request("GET", "/").text }
                    }
                    #expect(Set(names) == ["rs2"], "the sorry server has all the traffic while the quorum is lost")
                    unlink("\(flag)-\(two[0].port)")
                    #expect(try await secondsUntil(3) { !director.service.status().sorryActive } != nil)
                    let back = try await onThread { () -> [String] in
                        let client = BlockingClient(port: port)
                        return try (0..<6).map { _ in try client.request("GET", "/").text }
                    }
                    #expect(Set(back) == ["rs0", "rs1"])
                }
                let tcp = serviceYAML(
                    scheduler: "rr", backends: two,
                    extra: "health: {check: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}")
                try await withDirector(tcp) { director async throws in
                    await two[1].kill()
                    #expect(try await secondsUntil(3) { director.service.state(of: two[1].address) == .down } != nil)
                    #expect(director.service.status().servers[1].reason.contains("connection refused"))
                }
            }
        }
    }
}
