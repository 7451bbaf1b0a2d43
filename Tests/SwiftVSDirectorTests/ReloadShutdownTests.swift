import SwiftVSTestSupport
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    @Suite("Reload and graceful shutdown", .serialized, .timeLimit(.minutes(3)))
    struct ReloadShutdownTests {
        /// The admin socket of the director whose admin port is `port`.
        static func socket(_ port: Int) -> String { NSTemporaryDirectory() + "swiftvs-admin-\(port).sock" }

        static func config(
            web: Int, extra: Int?, admin: Int, backends: [TestBackend], weights: [Int],
            scheduler: String = "rr", proto: String = "http"
        ) -> String {
            var yaml = """
                threads: 1
                admin: {listen: 127.0.0.1:\(admin), socket: \(Self.socket(admin))}
                services:
                  - name: web
                    listen: 127.0.0.1:\(web)
                    protocol: \(proto)
                    scheduler: \(scheduler)
                    servers:
                      - {address: \(backends[0].address), weight: \(weights[0])}
                      - {address: \(backends[1].address), weight: \(weights[1])}

                """
            if let extra {
                yaml += """
                      - name: extra
                        listen: 127.0.0.1:\(extra)
                        servers: [\(backends[2].address)]

                    """
            }
            return yaml
        }

        @Test(
            "SIGHUP adds a service and changes a weight while keep-alive connections live on; a broken config is refused and the old one serves; a protocol change takes new connections"
        )
        func sighup() async throws {
            try await withBackends { backends in
                try await onThread { try Self.sighupBody(backends) }
            }
        }

        static func sighupBody(_ backends: [TestBackend]) throws {
            let (web, extra, admin) = (try freePort(), try freePort(), try freePort())
            let director = try DirectorProcess(
                yaml: Self.config(
                    web: web, extra: nil, admin: admin, backends: backends,
                    weights: [1, 1]))
            defer { director.stop() }
            try director.waitForPort(web)
            let client = BlockingClient(port: web)
            let first = try (0..<4).map { _ in try client.request("GET", "/").text }
            #expect(Set(first) == ["rs0", "rs1"])

            try Self.config(web: web, extra: extra, admin: admin, backends: backends, weights: [1, 0])
                .write(to: director.configURL, atomically: true, encoding: .utf8)
            kill(director.pid, SIGHUP)
            try director.waitForPort(extra)
            // The same keep-alive connection, after the reload: rs1 now has weight 0.
            let after = try (0..<10).map { _ in try client.request("GET", "/").text }
            #expect(Set(after) == ["rs0"])
            #expect(client.connects == 1, "the keep-alive connection survived the reload")
            #expect(try BlockingClient(port: extra).request("GET", "/").text == "rs2")

            try
                "services:\n  - name: web\n    listen: 127.0.0.1:\(web)\n    scheduler: fastest\n    servers: [1.2.3.4:80]\n"
                .write(to: director.configURL, atomically: true, encoding: .utf8)
            kill(director.pid, SIGHUP)
            let adm = try runSwiftVS(["adm", "reload", "--admin", Self.socket(admin)])
            #expect(adm.code == 1 && adm.stderr.contains("services[0].scheduler"), Comment(rawValue: adm.stderr))
            let deadline = Date().addingTimeInterval(5)
            while !director.child.stderr.contains("reload refused") && Date() < deadline { usleep(20_000) }
            #expect(director.child.stderr.contains("reload refused"), Comment(rawValue: director.child.stderr))
            #expect(director.child.isRunning)
            #expect(try client.request("GET", "/").text == "rs0", "the running config still serves")
            #expect(try BlockingClient(port: extra).request("GET", "/").text == "rs2")
            #expect(client.connects == 1)

            // A reload that turns `web` into a tcp service keeps its listener: new connections are relayed as bytes
            // (no X-Forwarded-For added), the open keep-alive connection stays an HTTP one.
            try Self.config(web: web, extra: nil, admin: admin, backends: backends, weights: [1, 0], proto: "tcp")
                .write(to: director.configURL, atomically: true, encoding: .utf8)
            kill(director.pid, SIGHUP)
            var relayed: Response?
            let tcpDeadline = Date().addingTimeInterval(5)
            while Date() < tcpDeadline {
                let fresh = try BlockingClient(port: web).request("GET", "/")
                if fresh.header("X-Seen-XFF")?.isEmpty ?? true {
                    relayed = fresh
                    break
                }
                usleep(50_000)
            }
            #expect(relayed?.text == "rs0", "after the reload a new connection is relayed as tcp")
            let old = try client.request("GET", "/")
            #expect(old.text == "rs0" && old.header("X-Seen-XFF") == "127.0.0.1" && client.connects == 1)
        }

        @Test("SIGTERM under load: requests in flight complete, new ones are refused, exit code 0")
        func sigtermDrains() async throws {
            try await withBackends { backends in
                try await onThread { try Self.sigtermBody(backends) }
            }
        }

        static func sigtermBody(_ backends: [TestBackend]) throws {
            let (web, admin) = (try freePort(), try freePort())
            let director = try DirectorProcess(
                yaml: Self.config(
                    web: web, extra: nil, admin: admin, backends: backends,
                    weights: [1, 1]))
            defer { director.stop() }
            try director.waitForPort(web)
            let results = Mutex<[Int]>([])
            let threads = (0..<4).map { _ in
                Thread {
                    let client = BlockingClient(port: web)
                    let status = (try? client.request("GET", "/delay/1000"))?.status ?? -1
                    results.withLock { $0.append(status) }
                }
            }
            for thread in threads { thread.start() }
            let deadline = Date().addingTimeInterval(3)
            while backends[0].count + backends[1].count < 4 && Date() < deadline { usleep(10_000) }
            let started = Date()
            kill(director.pid, SIGTERM)
            // The listener closes as the drain starts; the four requests are still in flight then.
            var refused = false
            let closing = Date().addingTimeInterval(5)
            while !refused && Date() < closing {
                let probe = BlockingClient(port: web, timeout: 1)
                refused = (try? probe.connect()) == nil
                probe.close()
                if !refused { usleep(20_000) }
            }
            #expect(refused, "a stopped director accepts no new connections")
            let code = director.child.wait(seconds: 10)
            while results.withLock({ $0.count }) < 4 && Date() < deadline.addingTimeInterval(5) { usleep(10_000) }
            #expect(results.withLock { $0 } == [200, 200, 200, 200], "every request in flight completed")
            #expect(code == 0)
            #expect(Date().timeIntervalSince(started) < 5, "it exits once the drain is done, not at the timeout")
        }

        /// The interruption scenario's drain that never reached zero: real servers die mid-request on an http and a
        /// tcp service, a tcp client keeps its half of a finished connection open, then SIGTERM. Every request's
        /// accounting ends with its connection, and a tunnel whose real server has finished does not hold the drain.
        @Test(
            "SIGTERM after real servers died mid-request on http and tcp: exit 0 once the last real connection is done")
        func drainAfterServersDied() async throws {
            try await withBackends(2) { backends in
                let (web, stream) = (try freePort(), try freePort())
                let yaml = """
                    threads: 1
                    admin: off
                    drain_timeout: 30s
                    services:
                      - name: web
                        listen: 127.0.0.1:\(web)
                        protocol: http
                        scheduler: rr
                        retries: 1
                        servers: [\(backends[0].address), \(backends[1].address)]
                      - name: stream
                        listen: 127.0.0.1:\(stream)
                        protocol: tcp
                        scheduler: rr
                        servers: [\(backends[0].address), \(backends[1].address)]

                    """
                let director = try DirectorProcess(yaml: yaml)
                defer { director.stop() }
                try director.waitForPort(web)
                try director.waitForPort(stream)
                // Four slow requests on each service, half of them on the real server about to die.
                let results = Mutex<[String: [Int]]>([:])
                let threads = [(web, "web"), (stream, "stream")].flatMap { port, name in
                    (0..<4).map { _ in
                        Thread {
                            let status = (try? BlockingClient(port: port).request("GET", "/delay/1500"))?.status ?? -1
                            results.withLock { $0[name, default: []].append(status) }
                        }
                    }
                }
                for thread in threads { thread.start() }
                try await waitUntil("8 requests reach the real servers") { backends[0].count + backends[1].count >= 8 }
                // A tcp client that reads its whole answer, sees the real server close, and neither sends nor closes.
                let lingering = BlockingClient(port: stream)
                try lingering.connect()
                try lingering.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                #expect(try lingering.readResponse().status == 200)
                #expect(lingering.waitForClose(), "the real server closed, and the director passed that on")
                #expect(lingering.isOpen, "the client keeps its half open")
                await backends[0].kill()
                let started = Date()
                kill(director.pid, SIGTERM)
                let code = try await onThread { director.child.wait(seconds: 25) }
                let seconds = Date().timeIntervalSince(started)
                try await waitUntil("every client has its answer") {
                    results.withLock { $0.values.joined().count } == 8
                }
                let byService = results.withLock { $0 }
                #expect(code == 0, Comment(rawValue: director.child.stderr))
                #expect(seconds < 10, "the drain ended with the last request (1.5 s), not at its 30 s timeout")
                #expect(byService["web"]?.sorted() == [200, 200, 200, 200], "GETs on the dead server were retried")
                #expect(
                    byService["stream"]?.filter { $0 == 200 }.count == 2, "tcp connections on the live server finished")
                lingering.close()
            }
        }
    }
}
