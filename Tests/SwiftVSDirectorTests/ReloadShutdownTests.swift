import SwiftVSTestSupport
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    @Suite("Reload and graceful shutdown", .serialized, .timeLimit(.minutes(3)))
    struct ReloadShutdownTests {
        static func config(web: Int, extra: Int?, admin: Int, backends: [TestBackend], weights: [Int],
                           scheduler: String = "rr", proto: String = "http") -> String {
            var yaml = """
                threads: 1
                admin: 127.0.0.1:\(admin)
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

        @Test("SIGHUP adds a service and changes a weight while keep-alive connections live on; a broken config is refused and the old one serves; a protocol change takes new connections")
        func sighup() async throws {
            try await withBackends { backends in
                try await onThread { try Self.sighupBody(backends) }
            }
        }

        static func sighupBody(_ backends: [TestBackend]) throws {
            let (web, extra, admin) = (try freePort(), try freePort(), try freePort())
            let director = try DirectorProcess(yaml: Self.config(web: web, extra: nil, admin: admin, backends: backends,
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

            try "services:\n  - name: web\n    listen: 127.0.0.1:\(web)\n    scheduler: fastest\n    servers: [1.2.3.4:80]\n"
                .write(to: director.configURL, atomically: true, encoding: .utf8)
            kill(director.pid, SIGHUP)
            let adm = try runSwiftVS(["adm", "reload", "--admin", "127.0.0.1:\(admin)"])
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
            let director = try DirectorProcess(yaml: Self.config(web: web, extra: nil, admin: admin, backends: backends,
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
            usleep(200_000)
            #expect(throws: (any Error).self, "a stopped director accepts no new connections") {
                try BlockingClient(port: web, timeout: 1).connect()
            }
            let code = director.child.wait(seconds: 10)
            while results.withLock({ $0.count }) < 4 && Date() < deadline.addingTimeInterval(5) { usleep(10_000) }
            #expect(results.withLock { $0 } == [200, 200, 200, 200], "every request in flight completed")
            #expect(code == 0)
            #expect(Date().timeIntervalSince(started) < 5, "it exits once the drain is done, not at the timeout")
        }
    }
}
