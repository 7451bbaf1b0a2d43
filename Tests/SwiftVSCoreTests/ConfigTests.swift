import SwiftVSConfigKit
import SwiftVSCore
import Testing

/// Each case: a config with one kind of mistake, the key path the message must name, and a word it must use.
let invalidConfigs: [(String, String, String, String)] = [
    (
        "persistence keyed by a hash the service does not have",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    protocol: http\n    persistence: {key: hash}\n    servers: [1.2.3.4:81]\n",
        "services[0].persistence.key", "give hash: {query: NAME}"
    ),
    (
        "persistence keyed by something unknown",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    persistence: {key: room}\n    servers: [1.2.3.4:81]\n",
        "services[0].persistence.key", "expected source"
    ),
    ("YAML syntax", "services: [\n  - name: x\n", "config (line", "YAML syntax"),
    (
        "forward: nat on an http service",
        "services:\n  - name: a\n    listen: 10.0.0.1:80\n    forward: nat\n    servers: [10.0.0.2:80]\n",
        "services[0].forward", "give protocol: tcp"
    ),
    (
        "an unknown forwarding mode",
        "services:\n  - name: a\n    listen: 10.0.0.1:80\n    forward: dr\n    servers: [10.0.0.2:80]\n",
        "services[0].forward", "not proxy or nat"
    ),
    (
        "udp without the kernel",
        "services:\n  - name: a\n    listen: 10.0.0.1:53\n    protocol: udp\n    servers: [10.0.0.2:53]\n",
        "services[0].protocol", "add forward: nat"
    ),
    (
        "a proxy-only key on a nat service",
        "services:\n  - name: a\n    listen: 10.0.0.1:80\n    protocol: tcp\n    forward: nat\n    proxy_protocol: v2\n"
            + "    servers: [10.0.0.2:80]\n",
        "services[0].proxy_protocol", "forward: nat"
    ),
    (
        "masquerade on a proxied service",
        "services:\n  - name: a\n    listen: 10.0.0.1:80\n    protocol: tcp\n    masquerade: true\n    servers: [10.0.0.2:80]\n",
        "services[0].masquerade", "forward: nat"
    ),
    (
        "an IPv6 virtual address on the kernel path",
        "services:\n  - name: a\n    listen: \"[::1]:80\"\n    protocol: tcp\n    forward: nat\n    servers: [10.0.0.2:80]\n",
        "services[0].listen", "IPv4"
    ),
    ("no services", "threads: 2\n", "services", "missing"),
    (
        "unknown key with a suggestion",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    schedular: rr\n    servers: [1.2.3.4:81]\n",
        "services[0].schedular", "did you mean 'scheduler'"
    ),
    (
        "unknown scheduler",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    scheduler: fastest\n    servers: [1.2.3.4:81]\n",
        "services[0].scheduler", "not an IPVS scheduler"
    ),
    (
        "bad protocol",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    protocol: sctp\n    servers: [1.2.3.4:81]\n",
        "services[0].protocol", "tcp, http or udp"
    ),
    (
        "listen not an address", "services:\n  - name: a\n    listen: example.com:80\n    servers: [1.2.3.4:81]\n",
        "services[0].listen", "not an IPv4 or IPv6"
    ),
    (
        "port out of range", "services:\n  - name: a\n    listen: 1.2.3.4:70000\n    servers: [1.2.3.4:81]\n",
        "services[0].listen", "0...65535"
    ),
    (
        "bare IPv6 without brackets", "services:\n  - name: a\n    listen: \"::1:80\"\n    servers: [1.2.3.4:81]\n",
        "services[0].listen", "brackets"
    ),
    (
        "weight out of range",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    servers:\n      - address: 1.2.3.4:81\n        weight: 70000\n",
        "services[0].servers[0].weight", "0...65535"
    ),
    (
        "weight not a number",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    servers:\n      - address: 1.2.3.4:81\n        weight: heavy\n",
        "services[0].servers[0].weight", "whole number"
    ),
    (
        "lower not below upper",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    servers:\n      - address: 1.2.3.4:81\n        upper: 10\n        lower: 20\n",
        "services[0].servers[0].lower", "below upper"
    ),
    ("no servers", "services:\n  - name: a\n    listen: 1.2.3.4:80\n    servers: []\n", "services[0].servers", "empty"),
    (
        "duplicate real server",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    servers: [1.2.3.4:81, 1.2.3.4:81]\n",
        "services[0].servers[1].address", "already"
    ),
    (
        "duplicate service name",
        "services:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n  - {name: a, listen: 1.2.3.4:90, servers: [1.2.3.4:81]}\n",
        "services[1].name", "already"
    ),
    (
        "duplicate listen",
        "services:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n  - {name: b, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "services[1].listen", "already used"
    ),
    (
        "hash on a non-hashing scheduler",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    scheduler: rr\n    hash: path\n    servers: [1.2.3.4:81]\n",
        "services[0].hash", "does not hash"
    ),
    (
        "http hash key on tcp",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    protocol: tcp\n    scheduler: sh\n    hash: {query: room}\n    servers: [1.2.3.4:81]\n",
        "services[0].hash", "needs protocol: http"
    ),
    (
        "bad netmask",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    persistence: {netmask: 255.0.255.0}\n    servers: [1.2.3.4:81]\n",
        "services[0].persistence.netmask", "not a netmask"
    ),
    (
        "bad duration",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    timeouts: {connect: soon}\n    servers: [1.2.3.4:81]\n",
        "services[0].timeouts.connect", "duration"
    ),
    (
        "threads out of range", "threads: 0\nservices:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "threads", "1...256"
    ),
    (
        "flag on the wrong scheduler",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    scheduler: wlc\n    scheduler_flags: [port]\n    servers: [1.2.3.4:81]\n",
        "services[0].scheduler_flags", "sh and mh"
    ),
    ("services not a list", "services: web\n", "services", "expected a list"),
    ("missing name and listen", "services:\n  - servers: [1.2.3.4:81]\n", "services[0].name", "missing"),
    (
        "unknown health check",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: ping}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.check", "tcp, http or exec"
    ),
    (
        "health timeout over interval",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: tcp, interval: 1s, timeout: 2s}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.timeout", "must not exceed interval"
    ),
    (
        "bad expected status",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: http, expect_status: [200, 2xx]}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.expect_status[1]", "not a status"
    ),
    (
        "bad digest",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: http, digest: abc}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.digest", "32 hex digits"
    ),
    (
        "bad regex",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: http, regex: \"(\"}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.regex", "not a valid regular expression"
    ),
    (
        "exec without command",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: exec}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.command", "needs the command"
    ),
    (
        "http key on a tcp check",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    health: {check: tcp, path: /x}\n    servers: [1.2.3.4:81]\n",
        "services[0].health.path", "check: http only"
    ),
    (
        "ejection without health",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    ejection: on\n    servers: [1.2.3.4:81]\n",
        "services[0].ejection", "needs health"
    ),
    (
        "short admin token",
        "admin: {listen: 127.0.0.1:9100, token: abc}\nservices:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "admin.token", "at least 8"
    ),
    (
        "admin on a service's address",
        "admin: 127.0.0.1:8080\nservices:\n  - {name: a, listen: 127.0.0.1:8080, servers: [1.2.3.4:81]}\n",
        "admin.listen", "127.0.0.1:8080 is also a virtual service's listen address"
    ),
    (
        "admin socket not absolute",
        "admin: {socket: run/admin.sock}\nservices:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "admin.socket", "not an absolute path"
    ),
    (
        "admin socket mode not octal",
        "admin: {socket_mode: rw-rw}\nservices:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "admin.socket_mode", "octal file mode"
    ),
    (
        "admin with neither listener",
        "admin: {listen: off, socket: off}\nservices:\n  - {name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}\n",
        "admin", "write admin: off"
    ),
    (
        "sorry without port",
        "services:\n  - name: a\n    listen: 1.2.3.4:80\n    sorry: 1.2.3.4\n    servers: [1.2.3.4:81]\n",
        "services[0].sorry", "port"
    ),
    (
        "ha without interface (raw)",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  instances:\n    - {vrid: 51, virtual_ips: [10.0.0.1/24]}\n",
        "ha.instances[0].interface", "required with the raw transport"
    ),
    (
        "ha vrid out of range",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  instances:\n    - {vrid: 300, interface: eth0}\n",
        "ha.instances[0].vrid", "1...255"
    ),
    (
        "ha bad virtual IP",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  instances:\n    - {vrid: 5, interface: eth0, virtual_ips: [10.0.0.1/40]}\n",
        "ha.instances[0].virtual_ips[0]", "IPv4 address"
    ),
    (
        "ha advert interval too short",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  instances:\n    - {vrid: 5, interface: eth0, advert_interval: 5ms}\n",
        "ha.instances[0].advert_interval", "at least 10ms"
    ),
    (
        "ha udp without peers",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  transport: udp\n  instances:\n    - {vrid: 5}\n",
        "ha.instances[0].udp", "required with the udp transport"
    ),
    (
        "ha unknown transport",
        "services:\n  - {name: a, listen: \"1.2.3.4:80\", servers: [\"1.2.3.4:81\"]}\nha:\n  transport: multicast\n  instances:\n    - {vrid: 5, interface: eth0}\n",
        "ha.transport", "expected raw"
    ),
]

@Suite("Config: loading and validation")
struct ConfigTests {
    static let valid = """
        threads: 2
        services:
          - name: web
            listen: 0.0.0.0:8080
            protocol: http
            scheduler: mh
            scheduler_flags: [fallback]
            hash: {query: room}
            persistence: {timeout: 120, netmask: 255.255.255.0}
            retries: 2
            timeouts: {connect: 500ms, header_read: 5s, idle: 2m, server: 30}
            limits: {max_header_bytes: 8192, max_headers: 50}
            health:
              check: http
              path: /healthz
              interval: 500ms
              timeout: 200ms
              rise: 1
              fall: 2
              jitter: 10%
              expect_status: "200-299,304"
              digest: D41D8CD98F00B204E9800998ECF8427E
            ejection: {consecutive_failures: 3, max_percent: 34}
            quorum: 2
            sorry: 127.0.0.1:8999
            servers:
              - address: 10.0.0.1:80
                weight: 3
                upper: 100
                lower: 50
              - 10.0.0.2:80
              - address: "[2001:db8::1]:80"
                weight: 0
          - name: stream
            listen: "[::]:9000"
            protocol: tcp
            servers: [10.0.0.3:9000]
        """

    @Test("a full config loads with its values and defaults")
    func loadsValid() throws {
        let config = try ConfigLoader.load(yaml: Self.valid)
        #expect(config.threads == 2)
        let web = config.services[0]
        #expect(web.scheduler == .mh && web.flags.fallback && web.hash == .query("room"))
        #expect(web.persistence == PersistenceConfig(timeout: 120, prefixV4: 24, prefixV6: 128))
        #expect(web.timeouts == TimeoutsConfig(connect: 0.5, headerRead: 5, idle: 120, server: 30))
        #expect(web.servers.map(\.weight) == [3, 1, 0])
        let health = try #require(web.health)
        #expect(health.kind == .http && health.path == "/healthz" && health.interval == 0.5 && health.timeout == 0.2)
        #expect(health.rise == 1 && health.fall == 2 && health.jitter == 0.1)
        #expect(health.expectStatus == [StatusRange(200, 299), StatusRange(304, 304)])
        #expect(health.digest == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(web.ejection?.consecutiveFailures == 3 && web.ejection?.maxPercent == 34)
        #expect(web.quorum == 2 && web.sorry?.port == 8999)
        #expect(config.admin == AdminConfig() && config.drainTimeout == 30)
        #expect(web.servers[2].address.isIPv6 && web.servers[2].address.host == "2001:db8::1")
        let stream = config.services[1]
        #expect(stream.proto == .tcp && stream.scheduler == .wlc && stream.retries == 1)
        #expect(stream.listen.description == "[::]:9000")
        #expect(stream.health == nil && stream.quorum == 1)
        #expect(
            try ConfigLoader.load(yaml: "admin: off\nservices: [{name: a, listen: 1.2.3.4:80, servers: [1.2.3.4:81]}]")
                .admin == nil)
    }

    @Test(
        "each kind of invalid config gets a message naming its key, and nothing crashes",
        arguments: invalidConfigs.indices)
    func invalid(index: Int) {
        let (what, yaml, path, word) = invalidConfigs[index]
        do {
            _ = try ConfigLoader.load(yaml: yaml, source: "test.yaml")
            Issue.record("\(what): accepted")
        } catch {
            let text = error.description
            #expect(text.contains(path), "\(what): \(text)")
            #expect(text.contains(word), "\(what): \(text)")
            #expect(
                error.problems.allSatisfy { $0.line != nil || $0.path.isEmpty },
                "\(what): a problem has no line: \(text)")
        }
    }

    @Test("every problem is reported, not just the first, each with its line")
    func allProblems() {
        let yaml = """
            services:
              - name: a
                listen: 1.2.3.4:80
                scheduler: nope
                servers:
                  - address: 1.2.3.4:81
                    weight: -1
                  - address: nowhere:81
            """
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            #expect(error.problems.count == 3)
            #expect(error.problems.map(\.line) == [4, 7, 8])
        }
    }

    @Test("endpoints parse IPv4, IPv6 and localhost, and say what is wrong otherwise")
    func endpoints() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:80").description == "127.0.0.1:80")
        #expect(try Endpoint(parsing: "[::1]:443").description == "[::1]:443")
        #expect(try Endpoint(parsing: "localhost:8080").host == "127.0.0.1")
        #expect(throws: EndpointError.badPort("x")) { try Endpoint(parsing: "1.2.3.4:x") }
        #expect(throws: EndpointError.syntax("1.2.3.4")) { try Endpoint(parsing: "1.2.3.4") }
    }
}
