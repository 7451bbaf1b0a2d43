import Foundation
import SwiftVSTestSupport
import Testing

extension IntegrationTests {
    @Suite("Routing rules through real sockets", .serialized)
    struct RoutingTests {
        @Test("requests go to the pool their rule names; prefix strip, header edits, redirects, fixed answers, 404")
        func table() async throws {
            let api = try await TestBackend(name: "api")
            let web = try await TestBackend(name: "web")
            let canary = try await TestBackend(name: "canary")
            let port = try freePort()
            let director = try DirectorProcess(
                yaml: """
                    threads: 1
                    admin: off
                    services:
                      - name: front
                        listen: 127.0.0.1:\(port)
                        routes:
                          - match: {host: api.example.com, path_prefix: /v1}
                            pool: api
                            strip_prefix: /v1
                            set_request_headers: {X-Route: api}
                            remove_request_headers: [Cookie]
                            set_response_headers: {X-Served-By: swiftvs}
                            remove_response_headers: [X-Real-Server]
                          - {match: {header: {X-Canary: "1"}}, pool: canary}
                          - {match: {method: POST, path: /echo}, pool: canary}
                          - {match: {path: /old}, redirect: {to: "https://new.example.com", status: 301, keep_path: true}}
                          - {match: {path_prefix: /admin}, status: 403}
                          - {match: {host: [www.example.com, "*.web.test"]}, pool: web}
                        pools:
                          api: {servers: [\(api.address)]}
                          canary: {servers: [\(canary.address)]}
                          web: {scheduler: rr, servers: [\(web.address)]}

                    """)
            defer { director.stop() }
            try director.waitForPort(port)
            let base = "http://127.0.0.1:\(port)"

            // host, path, extra curl arguments → the real server that answered (X-Real-Server, or the body).
            let table: [(String, String, [String], String)] = [
                ("www.example.com", "/", [], "web"),
                ("a.web.test", "/x", [], "web"),
                ("www.example.com", "/", ["-H", "X-Canary: 1"], "canary"),
                ("api.example.com", "/v1/", [], "api"),
                ("api.example.com", "/v1", ["-H", "X-Canary: 1"], "api"),
                ("www.example.com", "/echo", ["-X", "POST", "-d", "canary"], "canary"),
            ]
            for (host, path, extra, expected) in table {
                let answer = try curl("\(base)\(path)", ["-H", "Host: \(host)"] + extra)
                #expect(answer.status == 200 && answer.body == expected, "\(host)\(path) \(extra): \(answer)")
            }

            // The real server sees the path without the prefix, the route's header and not the client's cookie.
            let seen = try curl("\(base)/v1/headers?x=1", ["-H", "Host: api.example.com", "-H", "Cookie: a=b"])
            #expect(seen.body.hasPrefix("GET /headers?x=1\n"), "\(seen.body)")
            #expect(seen.body.contains("x-route: api") && !seen.body.contains("cookie"), "\(seen.body)")
            let edited = try curlHeaders("\(base)/v1/", ["-H", "Host: api.example.com"])
            #expect(edited.headers["x-served-by"] == "swiftvs" && edited.headers["x-real-server"] == nil)

            let moved = try curlHeaders("\(base)/old?q=1", ["-H", "Host: www.example.com"])
            #expect(moved.status == 301 && moved.headers["location"] == "https://new.example.com/old?q=1")
            #expect(try curl("\(base)/admin/x", ["-H", "Host: www.example.com"]).status == 403)
            #expect(try curl("\(base)/", ["-H", "Host: nobody.test"]).status == 404)
            #expect(api.requests.load(ordering: .relaxed) == 4 && web.requests.load(ordering: .relaxed) == 2)
            for backend in [api, web, canary] { await backend.shutdown() }
        }

        @Test("--check-config: an unknown pool and an unreachable rule are named by key")
        func configErrors() async throws {
            let dir = try temporaryDirectory("routes")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let url = "\(dir)/bad.yaml"
            try """
            services:
              - name: front
                listen: 127.0.0.1:8080
                routes:
                  - {pool: web}
                  - {match: {path_prefix: /api}, pool: apii}
                pools:
                  web: {servers: [10.0.0.1:80]}
            """.write(toFile: url, atomically: true, encoding: .utf8)
            let check = try await runSwiftVSAsync(["director", "--check-config", url])
            #expect(check.code == 2)
            #expect(
                check.stderr.contains("services[0].routes[1].pool (line 6): no pool 'apii' in pools (web)"),
                "\(check.stderr)")
            #expect(
                check.stderr.contains(
                    "services[0].routes[1] (line 6): can never match: routes[0] before it takes every request"),
                "\(check.stderr)")
        }
    }
}
