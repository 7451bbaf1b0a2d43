import SwiftVSTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    @Suite("swiftvs command line", .serialized)
    struct CLITests {
        @Test("--check-config accepts every shipped example")
        func examplesAreValid() async throws {
            let examples = repositoryRoot.appendingPathComponent("examples")
            let files = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter {
                $0.hasSuffix(".yaml")
            }
            #expect(files.count >= 3)
            for file in files {
                // iptv.yaml is the IPTV server's config; every other example is a director's.
                let command = file == "iptv.yaml" ? "iptv" : "director"
                let result = try runSwiftVS([command, "--check-config", examples.appendingPathComponent(file).path])
                #expect(result.code == 0, "\(file): \(result.stderr)")
                #expect(result.stdout.contains("valid"))
            }
        }

        @Test("an invalid config: every problem with its key and line, exit 2, and the director refuses to start")
        func invalidConfig() async throws {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml")
            defer { try? FileManager.default.removeItem(at: url) }
            try """
            services:
              - name: web
                listen: 0.0.0.0:8080
                scheduler: fastest
                servers:
                  - address: 10.0.0.1:80
                    weight: 70000
            """.write(to: url, atomically: true, encoding: .utf8)
            let check = try await runSwiftVSAsync(["director", "--check-config", url.path])
            #expect(check.code == 2)
            #expect(check.stderr.contains("services[0].scheduler (line 4)"))
            #expect(check.stderr.contains("services[0].servers[0].weight (line 7): must be 0...65535"))
            let run = try await runSwiftVSAsync(["director", "--config", url.path])
            #expect(run.code == 2)
            #expect(run.stderr.contains("2 problems"))
            let missing = try await runSwiftVSAsync(["director", "--config", "/nonexistent/swiftvs.yaml"])
            #expect(missing.code == 2 && missing.stderr.contains("cannot read config"))
        }

        @Test("--check-config refuses a bad autoscale section, naming each key at fault")
        func badAutoscale() async throws {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftvs-\(UUID().uuidString).yaml")
            defer { try? FileManager.default.removeItem(at: url) }
            try """
            services:
              - name: api
                listen: 127.0.0.1:8080
                autoscale:
                  min_replicas: 5
                  max_replicas: 4
                  metrics: [{type: latency, average: 1}]
                  process:
                    command: [swiftvs, realserver]
                    ports: 20000-20001
            """.write(to: url, atomically: true, encoding: .utf8)
            let check = try await runSwiftVSAsync(["director", "--check-config", url.path])
            #expect(check.code == 2)
            for expected in [
                "services[0].autoscale.min_replicas (line 5): must not exceed max_replicas (4)",
                "services[0].autoscale.metrics[0].type (line 7): 'latency' is not a metric",
                "services[0].autoscale.process.command (line 9): has no {port}",
                "services[0].autoscale.process.ports (line 10): 20000-20001 has 2 ports, fewer than max_replicas (4)",
            ] {
                #expect(check.stderr.contains(expected), "\(check.stderr)")
            }
        }

        @Test("every subcommand's --help explains its options with an example")
        func help() async throws {
            for arguments in [
                ["--help"], ["director", "--help"], ["demo", "--help"], ["adm", "--help"], ["adm", "list", "--help"],
                ["adm", "weight", "--help"], ["adm", "reload", "--help"], ["adm", "scale", "--help"],
                ["realserver", "--help"], ["conference", "--help"], ["bench", "conference", "--help"],
            ] {
                let result = try await runSwiftVSAsync(arguments)
                #expect(result.code == 0)
                #expect(result.stdout.contains("swiftvs"))
                #expect(result.stdout.lowercased().contains("example") || result.stdout.contains("Try"), "\(arguments)")
            }
            let director = try await runSwiftVSAsync(["director", "--help"])
            #expect(director.stdout.contains("--check-config"))
            #expect(director.stdout.contains("scheduler:"))
        }

        @Test("a port in use is said with its address, and no command prints a banner or 'listening' first")
        func portInUse() async throws {
            try await onThread { try Self.portInUseBody() }
        }

        static func portInUseBody() throws {
            let port = try freePort()
            let holder = try DirectorProcess(
                yaml: "admin: off\nservices:\n  - {name: web, listen: 127.0.0.1:\(port), servers: [127.0.0.1:9]}\n")
            defer { holder.stop() }
            try holder.waitForPort(port)
            let taken = "cannot listen on 127.0.0.1:\(port): the address is in use"
            let real = try runSwiftVS(["realserver", "--listen", "127.0.0.1:\(port)"])
            #expect(real.code != 0 && real.stderr.contains(taken), Comment(rawValue: real.stderr))
            #expect(!real.stdout.contains("listening"), Comment(rawValue: real.stdout))
            let iptv = try runSwiftVS(["iptv", "--listen", "127.0.0.1:\(port)", "--log-level", "warning"])
            #expect(iptv.code != 0 && iptv.stderr.contains(taken), Comment(rawValue: iptv.stderr))
            #expect(!iptv.stdout.contains("SwiftVS IPTV on"), "no banner for a server that did not start")
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("swiftvs-\(UUID()).yaml")
            defer { try? FileManager.default.removeItem(at: config) }
            try
                "admin: {listen: 127.0.0.1:\(port), socket: off}\nservices:\n  - {name: a, listen: 127.0.0.1:\(try freePort()), servers: [127.0.0.1:9]}\n"
                .write(to: config, atomically: true, encoding: .utf8)
            let director = try runSwiftVS(["director", "--config", config.path])
            #expect(
                director.code == 1 && director.stderr.contains("admin.listen: " + taken),
                Comment(rawValue: director.stderr))
            #expect(!director.stderr.contains("virtual service listening"), Comment(rawValue: director.stderr))
        }

        @Test("the director's own 502 and 503 answers are logged at the default level, with the server and why")
        func errorAnswersLogged() async throws {
            try await onThread { try Self.errorAnswersBody() }
        }

        static func errorAnswersBody() throws {
            let (port, other) = (try freePort(), try freePort())
            // One service whose only real server refuses (nothing listens on `dead`), one with every server disabled.
            let dead = try freePort()
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("swiftvs-\(UUID()).yaml")
            defer { try? FileManager.default.removeItem(at: config) }
            try """
            admin: off
            services:
              - {name: web, listen: 127.0.0.1:\(port), retries: 0, servers: [127.0.0.1:\(dead)]}
              - {name: empty, listen: 127.0.0.1:\(other), servers: [{address: 127.0.0.1:\(dead), weight: 0}]}
            """.write(to: config, atomically: true, encoding: .utf8)
            let director = try ChildProcess(swiftvsBinary.path, ["director", "--config", config.path])
            defer {
                director.stop()
                director.removeOutput()
            }
            try DirectorProcessWaiter(port: port).wait()
            #expect(try BlockingClient(port: port).request("GET", "/").status == 502)
            #expect(try BlockingClient(port: other).request("GET", "/").status == 503)
            try waitUntilBlocking("the director logged both answers", seconds: 5) {
                director.stderr.contains("answered the client with 502")
                    && director.stderr.contains("answered the client with 503")
            }
            let log = director.stderr
            #expect(
                log.contains("server=127.0.0.1:\(dead)") && log.lowercased().contains("connection refused"),
                Comment(rawValue: log))
            #expect(log.contains("no real server available"), Comment(rawValue: log))
        }

        @Test("SIGTERM stops the director with exit code 0")
        func sigterm() async throws {
            try await onThread { try Self.sigtermBody() }
        }

        static func sigtermBody() throws {
            let port = try freePort()
            let director = try DirectorProcess(
                yaml: """
                    admin: off
                    services:
                      - name: web
                        listen: 127.0.0.1:\(port)
                        servers: [127.0.0.1:9]
                    """)
            try director.waitForPort(port)
            let started = Date()
            #expect(director.stop() == 0)
            #expect(Date().timeIntervalSince(started) < 5)
        }

        @Test("the demo serves through its director on the ports it prints")
        func demo() async throws {
            try await onThread { try Self.demoBody() }
        }

        static func demoBody() throws {
            // The demo also listens on the ports after these two (real servers, IPTV replicas).
            let port = try freePortBlock(4), iptvPort = try freePortBlock(3), adminPort = try freePort()
            let conferencePort = try freePortBlock(5)
            let demo = try ChildProcess(
                swiftvsBinary.path,
                [
                    "demo", "--port", String(port), "--iptv-port", String(iptvPort),
                    "--admin-port", String(adminPort), "--conference-port", String(conferencePort),
                    "--log-level", "warning",
                ])
            defer {
                demo.stop()
                demo.removeOutput()
            }
            let waiter = DirectorProcessWaiter(port: port)
            do {
                try waiter.wait()
            } catch {
                // Say why: whether the demo still runs, and what it printed.
                Issue.record("demo on \(port): running \(demo.isRunning); stderr: \(demo.stderr.suffix(2000))")
                throw error
            }
            // The video conference behind its own entry point: page, api and a WebSocket route.
            try waitUntilBlocking("the demo's conference answers through the director", seconds: 20) {
                try runTool("curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(conferencePort)/api/ice"]).stdout
                    .contains("iceServers")
            }
            let page = try runTool("curl", ["-s", "--max-time", "5", "http://127.0.0.1:\(conferencePort)/"])
            #expect(page.stdout.contains("SwiftVS conference"))
            let client = BlockingClient(port: port)
            let names = try (0..<6).map { _ in try client.request("GET", "/").text }
            #expect(
                Set(names.map { $0.split(separator: ":")[0] }) == ["real-server-1", "real-server-2", "real-server-3"])
            // curl, as a user would: keep-alive over several URLs, HEAD, a chunked upload, a large download.
            let url = "http://127.0.0.1:\(port)"
            let curl = try runTool("curl", ["-sS", "--max-time", "20", "\(url)/a", "\(url)/b", "\(url)/c"])
            #expect(curl.code == 0 && curl.stdout.split(separator: "\n").count == 3, Comment(rawValue: curl.stderr))
            let head = try runTool("curl", ["-sSI", "--max-time", "5", url])
            #expect(head.stdout.hasPrefix("HTTP/1.1 200 OK") && head.stdout.contains("X-Real-Server"))
            let upload = try runTool(
                "curl",
                [
                    "-sS", "--max-time", "5", "-H", "Transfer-Encoding: chunked", "--data-binary",
                    "hello", "\(url)/upload",
                ])
            #expect(upload.stdout.contains("POST /upload"))
            let download = try runTool(
                "curl",
                [
                    "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                    "\(url)/bytes/50000000",
                ])
            #expect(download.stdout == "200 50000000")
            // IPTV through the director, once its health checks have seen the replicas live (rise 2 x 1 s).
            var playlist = (code: Int32(0), stdout: "", stderr: "")
            for _ in 0..<40 {
                playlist = try runTool(
                    "curl", ["-sf", "--max-time", "5", "http://127.0.0.1:\(iptvPort)/live/demo/index.m3u8"])
                if playlist.code == 0 { break }
                usleep(250_000)
            }
            #expect(playlist.stdout.hasPrefix("#EXTM3U"), Comment(rawValue: playlist.stderr))
            let segment = playlist.stdout.split(separator: "\n").last.map(String.init) ?? ""
            let fetched = try runTool(
                "curl",
                [
                    "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code} %{content_type}",
                    "http://127.0.0.1:\(iptvPort)/live/demo/\(segment)",
                ])
            #expect(fetched.stdout == "200 video/mp2t")
        }
    }
}

/// Runs an outside tool found on PATH.
func runTool(_ name: String, _ arguments: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
    let child = try ChildProcess("/usr/bin/env", [name] + arguments)
    defer { child.removeOutput() }
    let code = child.wait(seconds: 60)
    return (code, child.stdout, child.stderr)
}

/// Waits for a port to accept.
struct DirectorProcessWaiter {
    let port: Int

    func wait(seconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let client = BlockingClient(port: self.port, timeout: 1)
            if (try? client.connect()) != nil { return }
            usleep(50_000)
        }
        throw ClientError("nothing listened on \(self.port)")
    }
}
