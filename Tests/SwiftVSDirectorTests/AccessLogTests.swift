import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    @Suite("Access log", .serialized)
    struct AccessLogTests {
        static func lines(_ path: String) -> [String] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        static func objects(_ path: String) throws -> [[String: Any]] {
            try Self.lines(path).map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)")
            }
        }

        @Test("JSON lines for a 200, a real server's 404, a 502 (refused), a 504 (timeout), a retried request, and tcp")
        func fields() async throws {
            let dir = try temporaryDirectory("access")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let backend = try await TestBackend(name: "rs1")
            let dead = try freePort()  // nothing listens: connects are refused
            let (web, refused, retried, tcp) = (try freePort(), try freePort(), try freePort(), try freePort())
            let log = "\(dir)/access.json"
            let director = try DirectorProcess(
                yaml: """
                    threads: 1
                    admin: off
                    access_log: {path: \(log), format: json}
                    services:
                      - {name: web, listen: 127.0.0.1:\(web), timeouts: {server: 500ms}, servers: [\(backend.address)]}
                      - {name: refused, listen: 127.0.0.1:\(refused), retries: 0, servers: [127.0.0.1:\(dead)]}
                      - name: retried
                        listen: 127.0.0.1:\(retried)
                        scheduler: fo
                        servers: [{address: 127.0.0.1:\(dead), weight: 2}, {address: \(backend.address), weight: 1}]
                      - {name: tcp, listen: 127.0.0.1:\(tcp), protocol: tcp, servers: [\(backend.address)]}

                    """)
            defer { director.stop() }
            for port in [web, refused, retried, tcp] { try director.waitForPort(port) }

            #expect(try curl("http://127.0.0.1:\(web)/ok?x=1").status == 200)
            #expect(try curl("http://127.0.0.1:\(web)/status/404").status == 404)
            #expect(try curl("http://127.0.0.1:\(web)/hang").status == 504)
            #expect(try curl("http://127.0.0.1:\(refused)/").status == 502)
            #expect(try curl("http://127.0.0.1:\(retried)/again").status == 200)
            // Before the tcp line, which the wait below looks for last.
            #expect(try curl("http://127.0.0.1:\(web)/over-h2", ["--http2-prior-knowledge"]).status == 200)
            #expect(try curl("http://127.0.0.1:\(tcp)/through-tcp").status == 200)
            try waitUntilBlocking("the lines", seconds: 10) {
                Self.lines(log).contains { $0.contains("\"protocol\":\"TCP\"") && !$0.contains("\"bytes_in\":0,") }
            }

            let lines = try Self.objects(log)
            func line(_ service: String, _ path: String?) -> [String: Any]? {
                lines.first { $0["service"] as? String == service && ($0["path"] as? String) == path }
            }
            let ok = try #require(line("web", "/ok?x=1"))
            #expect(ok["method"] as? String == "GET" && ok["protocol"] as? String == "HTTP/1.1")
            #expect(ok["status"] as? Int == 200 && ok["server"] as? String == backend.address)
            #expect(ok["bytes_out"] as? Int == 3 && ok["bytes_in"] as? Int == 0 && ok["retries"] as? Int == 0)
            #expect((ok["client"] as? String)?.hasPrefix("127.0.0.1:") == true)
            for phase in ["head_ms", "connect_ms", "ttfb_ms", "total_ms"] { #expect(ok[phase] is Double, "\(phase)") }
            #expect(line("web", "/status/404")?["status"] as? Int == 404)
            let h2 = try #require(line("web", "/over-h2"))
            #expect(
                h2["protocol"] as? String == "HTTP/2.0" && h2["status"] as? Int == 200 && h2["bytes_out"] as? Int == 3)
            let timeout = try #require(line("web", "/hang"))
            #expect(timeout["status"] as? Int == 504 && timeout["ttfb_ms"] is NSNull)
            #expect((timeout["total_ms"] as? Double ?? 0) >= 500)
            let bad = try #require(line("refused", "/"))
            #expect(bad["status"] as? Int == 502 && bad["server"] as? String == "127.0.0.1:\(dead)")
            #expect(bad["connect_ms"] is NSNull)
            let again = try #require(line("retried", "/again"))
            #expect(again["status"] as? Int == 200 && again["retries"] as? Int == 1)
            #expect(again["server"] as? String == backend.address)
            // The last: the first is the harness's probe of the port (connected, closed, nothing moved).
            let tunnel = try #require(lines.last { $0["service"] as? String == "tcp" })
            #expect(tunnel["protocol"] as? String == "TCP" && tunnel["status"] is NSNull)
            #expect((tunnel["bytes_in"] as? Int ?? 0) > 0 && (tunnel["bytes_out"] as? Int ?? 0) > 0)

            // The director's own 502 and 504 are said at warning too, with the cause.
            try waitUntilBlocking("the warnings", seconds: 5) {
                director.child.stderr.contains("answered the client with 502")
                    && director.child.stderr.contains("answered the client with 504")
            }
            #expect(director.child.stderr.lowercased().contains("connection refused"), "\(director.child.stderr)")
            #expect(director.child.stderr.contains("timeouts.server"), "\(director.child.stderr)")
            await backend.shutdown()
        }

        @Test("SIGUSR1 after mv: a new file is started, and no line is lost across the two")
        func reopen() async throws {
            let dir = try temporaryDirectory("access")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let backend = try await TestBackend(name: "rs1")
            let log = "\(dir)/access.log"
            let port = try freePort()
            let director = try DirectorProcess(
                yaml: """
                    threads: 1
                    admin: off
                    access_log: \(log)
                    services:
                      - {name: web, listen: 127.0.0.1:\(port), servers: [\(backend.address)]}

                    """)
            defer { director.stop() }
            try director.waitForPort(port)
            let client = BlockingClient(port: port)
            for i in 0..<50 { #expect(try client.request("GET", "/before/\(i)").status == 200) }
            try waitUntilBlocking("the first 50 lines", seconds: 10) { Self.lines(log).count == 50 }
            #expect(rename(log, "\(log).1") == 0)
            kill(director.pid, SIGUSR1)
            try waitUntilBlocking("a new file", seconds: 10) { FileManager.default.fileExists(atPath: log) }
            // The same keep-alive connection goes on across the reopen.
            for i in 0..<50 { #expect(try client.request("GET", "/after/\(i)").status == 200) }
            try waitUntilBlocking("the next 50 lines", seconds: 10) {
                Self.lines(log).count + Self.lines("\(log).1").count == 100
            }
            let all = Self.lines("\(log).1") + Self.lines(log)
            #expect(all.filter { $0.contains("\"GET /before/") }.count == 50)
            #expect(all.filter { $0.contains("\"GET /after/") }.count == 50)
            #expect(Self.lines("\(log).1").allSatisfy { $0.contains("/before/") }, "nothing new went to the moved file")
            #expect(all.allSatisfy { $0.hasPrefix("127.0.0.1:") && $0.contains("\" 200 3 service=web server=") })
            await backend.shutdown()
        }
    }
}
