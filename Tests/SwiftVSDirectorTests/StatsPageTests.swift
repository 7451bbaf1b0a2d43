import Foundation
import SwiftVSTestSupport
import Testing

extension IntegrationTests {
    @Suite("The live stats page", .serialized)
    struct StatsPageTests {
        @Test(
            "in headless Chromium (phone-sized): the page's figures match /api/services; a server that dies shows down within 2 s"
        )
        func chromium() async throws {
            let a = try await TestBackend(name: "a")
            let b = try await TestBackend(name: "b")
            let admin = try freePort()
            let dir = try temporaryDirectory("stats")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (director, port) = try DirectorProcess.inFront(
                of: [a, b],
                extra: ["health: {check: tcp, interval: 200ms, timeout: 100ms, fall: 1, rise: 1}"],
                admin: "{listen: 127.0.0.1:\(admin), socket: off}")
            defer { director.stop() }
            for _ in 0..<20 { _ = try curl("http://127.0.0.1:\(port)/") }

            let page = try curlHeaders("http://127.0.0.1:\(admin)/")
            #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
            let go = "\(dir)/go"
            let checker = try ChildProcess(
                "/usr/bin/env",
                [
                    "python3", repositoryRoot.appendingPathComponent("Tests/browser/stats_check.py").path,
                    "http://127.0.0.1:\(admin)/", go, b.address,
                ])
            defer { checker.removeOutput() }
            try waitUntilBlocking("the page shows its servers", seconds: 60) {
                checker.stdout.contains("\"ready\"") || !checker.isRunning
            }
            let readyLine = try #require(
                checker.stdout.split(separator: "\n").first { $0.contains("\"ready\"") },
                "stats_check.py (scripts/test.sh installs chromium, chromium-driver and selenium): \(checker.stderr)")
            let ready = try #require(try JSONSerialization.jsonObject(with: Data(readyLine.utf8)) as? [String: Any])
            let rows = try #require(ready["ready"] as? [[String: Any]])
            let api = try #require(
                try JSONSerialization.jsonObject(with: Data(curl("http://127.0.0.1:\(admin)/api/services").body.utf8))
                    as? [[String: Any]])
            let servers = api.flatMap { service in
                (service["servers"] as? [[String: Any]] ?? []).map { (service["name"] as? String ?? "", $0) }
            }
            #expect(rows.count == servers.count && rows.count == 2, "\(rows)")
            for (service, server) in servers {
                let row = rows.first { $0["address"] as? String == server["address"] as? String }
                #expect(row?["service"] as? String == service)
                #expect(row?["state"] as? String == server["state"] as? String)
                #expect(row?["weight"] as? Int == server["weight"] as? Int)
            }
            #expect((ready["overflow"] as? Int ?? 1) <= 0, "the page fits a phone's width: \(ready)")

            await b.kill()
            FileManager.default.createFile(atPath: go, contents: nil)
            #expect(checker.wait(seconds: 30) == 0, "\(checker.stderr)")
            let doneLine = try #require(checker.stdout.split(separator: "\n").last { $0.contains("downAfter") })
            let done = try #require(try JSONSerialization.jsonObject(with: Data(doneLine.utf8)) as? [String: Any])
            let after = try #require(done["downAfter"] as? Double, "the page never showed b down: \(done)")
            #expect(after <= 2, "shown down after \(after) s")
            #expect((done["errors"] as? [String])?.isEmpty == true, "\(done)")
            await a.shutdown()
        }
    }
}
