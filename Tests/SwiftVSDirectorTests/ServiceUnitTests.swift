import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    @Suite("Running as a system service", .serialized)
    struct ServiceUnitTests {
        @Test("systemd-analyze verify passes on both units (their ExecStart pointed at this build)")
        func unitsVerify() throws {
            let dir = try temporaryDirectory("units")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var units: [String] = []
            for unit in ["swiftvs-director", "swiftvs-iptv"] {
                let text = try String(
                    contentsOf: repositoryRoot.appendingPathComponent("packaging/systemd/\(unit).service"),
                    encoding: .utf8)
                let path = "\(dir)/\(unit).service"
                try text.replacingOccurrences(of: "/usr/local/bin/swiftvs", with: swiftvsBinary.path)
                    .write(toFile: path, atomically: true, encoding: .utf8)
                units.append(path)
            }
            let verify = try tool("systemd-analyze", ["verify"] + units)
            #expect(verify.code == 0 && verify.err.isEmpty && verify.out.isEmpty, "\(verify.out) \(verify.err)")
        }

        @Test("scripts/install.sh into a staging root: the binary, both units pointing at it, configs that check")
        func install() throws {
            let root = try temporaryDirectory("install")
            defer { try? FileManager.default.removeItem(atPath: root) }
            let run = try tool(
                "env",
                [
                    "DESTDIR=\(root)", "PREFIX=/opt/swiftvs", "SKIP_BUILD=1", "BINARY=\(swiftvsBinary.path)", "bash",
                    repositoryRoot.appendingPathComponent("scripts/install.sh").path,
                ])
            #expect(run.code == 0, "\(run.out) \(run.err)")
            let binary = "\(root)/opt/swiftvs/bin/swiftvs"
            #expect(FileManager.default.isExecutableFile(atPath: binary))
            let unit = try String(
                contentsOfFile: "\(root)/etc/systemd/system/swiftvs-director.service", encoding: .utf8)
            #expect(unit.contains("ExecStart=/opt/swiftvs/bin/swiftvs director --config ${CONFIG}"))
            for (command, file) in [("director", "director.yaml"), ("iptv", "iptv.yaml")] {
                let check = try tool(binary, [command, "--check-config", "\(root)/etc/swiftvs/\(file)"])
                #expect(check.code == 0, "\(file): \(check.err)")
            }
            // Run again: the configs an operator edited are kept.
            try "# edited\n".write(toFile: "\(root)/etc/swiftvs/iptv.yaml", atomically: true, encoding: .utf8)
            let again = try tool(
                "env",
                [
                    "DESTDIR=\(root)", "SKIP_BUILD=1", "BINARY=\(swiftvsBinary.path)", "bash",
                    repositoryRoot.appendingPathComponent("scripts/install.sh").path,
                ])
            #expect(again.code == 0 && again.out.contains("keeping"))
            #expect(try String(contentsOfFile: "\(root)/etc/swiftvs/iptv.yaml", encoding: .utf8) == "# edited\n")
        }

        /// A datagram socket standing in for systemd's notify socket; the messages it got, in order.
        final class NotifySocket {
            let path: String
            let fd: Int32

            init() throws {
                self.path = NSTemporaryDirectory() + "swiftvs-notify-\(UUID().uuidString.prefix(8)).sock"
                self.fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &address.sun_path) { raw in
                    for (index, byte) in self.path.utf8.enumerated() { raw[index] = byte }
                }
                let bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(self.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                guard bound == 0 else { throw TestSupportError("bind \(self.path): errno \(errno)") }
                var timeout = timeval(tv_sec: 15, tv_usec: 0)
                setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }

            /// The next message (its lines), or nil after 15 s.
            func next() -> [String]? {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return nil }
                return String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n").map(String.init)
            }

            deinit {
                close(self.fd)
                unlink(self.path)
            }
        }

        @Test("Type=notify: READY=1 once bound, RELOADING=1 then READY=1 around a reload, STOPPING=1 at the drain")
        func notify() async throws {
            let backend = try await TestBackend(name: "rs1")
            let notify = try NotifySocket()
            let port = try freePort()
            let config = "\(NSTemporaryDirectory())swiftvs-notify-\(UUID().uuidString.prefix(8)).yaml"
            defer { unlink(config) }
            try """
            admin: off
            services: [{name: web, listen: 127.0.0.1:\(port), servers: [\(backend.address)]}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let director = try ChildProcess(
                "/usr/bin/env", ["NOTIFY_SOCKET=\(notify.path)", swiftvsBinary.path, "director", "--config", config])
            defer {
                _ = director.stop()
                director.removeOutput()
            }
            let ready = try #require(notify.next(), "no READY: \(director.stderr)")
            #expect(ready.contains("READY=1") && ready.contains("STATUS=1 virtual service listening"), "\(ready)")
            #expect(try curl("http://127.0.0.1:\(port)/").status == 200, "bound when it said READY")

            kill(director.pid, SIGHUP)
            let reloading = try #require(notify.next())
            #expect(reloading.first == "RELOADING=1" && reloading.contains { $0.hasPrefix("MONOTONIC_USEC=") })
            #expect(notify.next()?.contains("READY=1") == true)

            kill(director.pid, SIGTERM)
            #expect(notify.next()?.first == "STOPPING=1")
            #expect(director.wait(seconds: 20) == 0)
            await backend.shutdown()
        }

        @Test("promtool check metrics passes on the director's /metrics (routes, pools, health, the access log on)")
        func promtool() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (admin, port) = (try freePort(), try freePort())
            let director = try DirectorProcess(
                yaml: """
                    threads: 1
                    admin: {listen: 127.0.0.1:\(admin), socket: off}
                    access_log: /dev/null
                    services:
                      - name: front
                        listen: 127.0.0.1:\(port)
                        routes: [{match: {path_prefix: /api}, pool: api}, {pool: web}]
                        pools:
                          api: {servers: [\(backend.address)], health: {check: tcp, interval: 500ms, timeout: 200ms}}
                          web: {scheduler: rr, servers: [\(backend.address)]}

                    """)
            defer { director.stop() }
            try director.waitForPort(port)
            for path in ["/", "/api/x", "/status/500"] { _ = try curl("http://127.0.0.1:\(port)\(path)") }
            let metrics = try curl("http://127.0.0.1:\(admin)/metrics").body
            let file = "\(NSTemporaryDirectory())swiftvs-metrics-\(UUID().uuidString.prefix(8)).txt"
            defer { unlink(file) }
            try metrics.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try tool("sh", ["-c", "promtool check metrics < \(file)"])
            #expect(check.code == 0, "\(check.out) \(check.err)")
            await backend.shutdown()
        }
    }
}
