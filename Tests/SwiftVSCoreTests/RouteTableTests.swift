import SwiftVSConfigKit
import SwiftVSCore
import Testing

@Suite("Routing rules")
struct RouteTableTests {
    static let yaml = """
        services:
          - name: front
            listen: 127.0.0.1:8080
            routes:
              - {match: {host: api.example.com, path_prefix: /v1}, pool: api, strip_prefix: /v1}
              - {match: {host: "*.example.com", method: [POST, PUT]}, pool: writes}
              - {match: {path_regex: "^/rooms/[0-9]+$"}, pool: rooms}
              - {match: {header: {X-Canary: "1"}}, pool: canary}
              - {match: {query: {debug: ~}}, status: 403}
              - {match: {path: /old}, redirect: {to: "https://new.example.com", status: 301, keep_path: true}}
              - {match: {host: [www.example.com, example.com]}, pool: web}
            pools:
              api: {servers: [10.0.0.1:80]}
              writes: {scheduler: rr, servers: [10.0.0.2:80, 10.0.0.3:80]}
              rooms: {scheduler: mh, hash: path, servers: [10.0.0.4:80]}
              canary: {servers: [10.0.0.5:80]}
              web: {servers: [10.0.0.6:80], health: {check: http, path: /healthz}}
        """

    /// host, method, target, headers → the rule that takes it (nil: none, the director answers 404).
    static let requests: [(String?, String, String, [String: String], Int?)] = [
        ("api.example.com", "GET", "/v1/users?id=3", [:], 0),
        ("API.example.com:8080", "GET", "/v1", [:], 0),
        ("api.example.com", "GET", "/v10/x", [:], nil),
        ("api.example.com", "POST", "/v2/x", [:], 1),
        ("deep.api.example.com", "PUT", "/", [:], 1),
        ("example.com", "POST", "/", [:], 6),
        ("other.test", "GET", "/rooms/42", [:], 2),
        ("other.test", "GET", "/rooms/42/x", [:], nil),
        ("www.example.com", "GET", "/", ["x-canary": "1"], 3),
        ("www.example.com", "GET", "/", ["x-canary": "2"], 6),
        ("www.example.com", "GET", "/a?debug", [:], 4),
        ("www.example.com", "GET", "/a?debugx=1", [:], 6),
        ("x.test", "GET", "/old", [:], 5),
        (nil, "GET", "/", [:], nil),
    ]

    @Test("a table of requests to the rule that takes them", arguments: Self.requests.indices)
    func route(_ index: Int) throws {
        let config = try ConfigLoader.load(yaml: Self.yaml)
        let front = try #require(config.services.first { $0.name == "front" })
        let table = try RouteTable(front.routes)
        let (host, method, target, headers, expected) = Self.requests[index]
        let request = RouteTable.Request(host: host, target: target, method: method, header: { headers[$0] })
        #expect(table.route(request) == expected, "\(method) \(host ?? "-") \(target)")
    }

    @Test("pools are services of their own, named SERVICE/POOL, after the listeners, with the listener's timeouts")
    func pools() throws {
        let config = try ConfigLoader.load(yaml: Self.yaml)
        #expect(
            config.services.map(\.name) == [
                "front", "front/api", "front/writes", "front/rooms", "front/canary", "front/web",
            ])
        let rooms = try #require(config.services.first { $0.name == "front/rooms" })
        #expect(rooms.poolOf == "front" && rooms.scheduler == .mh && rooms.hash == .path)
        #expect(config.services.first { $0.name == "front/web" }?.health?.path == "/healthz")
    }

    @Test("the rewrite keeps the query and never leaves an empty path")
    func rewrite() {
        var route = RouteConfig(action: .pool("x"))
        route.rewritePrefix = ("/v1", "")
        #expect(route.rewrite("/v1/users?id=3") == "/users?id=3")
        #expect(route.rewrite("/v1") == "/")
        #expect(route.rewrite("/v1?x=1") == "/?x=1")
        #expect(route.rewrite("/v2") == "/v2")
        route.rewritePrefix = ("/old/", "/new/")
        #expect(route.rewrite("/old/a") == "/new/a")
    }

    static let bad: [(String, String, String)] = [
        ("[{pool: nope}]", "services[0].routes[0].pool", "no pool 'nope' in pools (web)"),
        (
            "[{pool: web}, {match: {path: /x}, pool: web}]", "services[0].routes[1]",
            "routes[0] before it takes every request"
        ),
        (
            "[{match: {path: /x}, pool: web}, {match: {path: /x}, status: 404}]", "services[0].routes[1]",
            "has the same match"
        ),
        (
            "[{match: {path_regex: '(('}, pool: web}]", "services[0].routes[0].match.path_regex",
            "is not a regular expression"
        ),
        ("[{pool: web, status: 404}]", "services[0].routes[0]", "has pool and status: give one"),
        ("[{match: {path: x}, pool: web}]", "services[0].routes[0].match.path", "a path starts with /"),
        (
            "[{match: {path: /a, path_prefix: /b}, pool: web}]", "services[0].routes[0].match",
            "one of path, path_prefix"
        ),
        (
            "[{match: {path: /a}, pool: web}, {match: {path: /b}, redirect: {status: 301}}]",
            "services[0].routes[1].redirect.to", "missing"
        ),
    ]

    @Test("bad routes are named by key", arguments: Self.bad.indices)
    func errors(_ index: Int) {
        let (routes, path, message) = Self.bad[index]
        let yaml = """
            services:
              - name: front
                listen: 127.0.0.1:8080
                routes: \(routes)
                pools: {web: {servers: [10.0.0.6:80]}}
            """
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            Issue.record("accepted: \(routes)")
        } catch {
            #expect(error.problems.contains { $0.path == path && $0.message.contains(message) }, "\(error)")
        }
    }

    @Test("a pool nothing routes to, servers beside routes, pools without routes: each named")
    func poolErrors() {
        let yaml = """
            services:
              - name: front
                listen: 127.0.0.1:8080
                routes: [{pool: web}]
                servers: [10.0.0.1:80]
                pools: {web: {servers: [10.0.0.6:80]}, spare: {servers: [10.0.0.7:80]}, "bad name": {servers: []}}
              - name: other
                listen: 127.0.0.1:8081
                pools: {web: {servers: [10.0.0.6:80]}}
                servers: [10.0.0.1:80]
            """
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            let said = error.problems.map { "\($0.path): \($0.message)" }
            #expect(said.contains { $0.hasPrefix("services[0].pools.spare: nothing routes to it") }, "\(said)")
            #expect(said.contains { $0.hasPrefix("services[0].servers: a service with routes") }, "\(said)")
            #expect(said.contains { $0.hasPrefix("services[0].pools.bad name: a pool name") }, "\(said)")
            #expect(said.contains { $0.hasPrefix("services[1].pools: pools need routes") }, "\(said)")
        }
    }
}

extension RouteTableTests {
    @Test("a tcp service routes by sni only, to pools; an http service does not take sni; sni picks by name")
    func tcpRoutes() throws {
        let bad = """
            services:
              - name: tls
                listen: 127.0.0.1:443
                protocol: tcp
                routes: [{match: {host: a.test}, pool: a}, {match: {sni: b.test}, status: 403}]
                pools: {a: {servers: [10.0.0.1:443]}}
              - name: web
                listen: 127.0.0.1:80
                routes: [{match: {sni: a.test}, pool: a}]
                pools: {a: {servers: [10.0.0.1:80]}}
            """
        do {
            _ = try ConfigLoader.load(yaml: bad)
            Issue.record("accepted")
        } catch {
            let said = error.problems.map { "\($0.path): \($0.message)" }
            #expect(said.contains { $0.hasPrefix("services[0].routes[0].match: a tcp service routes by sni only") })
            #expect(said.contains { $0.hasPrefix("services[0].routes[1]: a tcp service's routes send to a pool") })
            #expect(said.contains { $0.hasPrefix("services[1].routes[0].match.sni: sni routes TLS") }, "\(said)")
        }
        let good = try ConfigLoader.load(
            yaml: """
                services:
                  - name: tls
                    listen: 127.0.0.1:443
                    protocol: tcp
                    routes: [{match: {sni: ["*.a.test", a.test]}, pool: a}, {pool: rest}]
                    pools: {a: {servers: [10.0.0.1:443]}, rest: {servers: [10.0.0.2:443]}}
                """)
        let table = try RouteTable(good.services[0].routes)
        #expect(table.route(.tls(serverName: "x.a.test")) == 0 && table.route(.tls(serverName: "A.test")) == 0)
        #expect(table.route(.tls(serverName: "b.test")) == 1 && table.route(.tls(serverName: nil)) == 1)
        #expect(good.services.first { $0.name == "tls/a" }?.proto == .tcp, "a tcp service's pools are tcp")
    }
}
