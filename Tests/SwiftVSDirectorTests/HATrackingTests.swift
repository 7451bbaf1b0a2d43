import Foundation
import SwiftVSTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Two directors on one machine over the unprivileged UDP transport: tracking moves the master, notify reports it,
/// and `swiftvs adm ha` shows it. No root needed.
extension IntegrationTests {
    @Suite("HA over UDP: tracking, notify, adm ha", .serialized, .timeLimit(.minutes(2)))
    struct HATrackingTests {
        @Test("a failing track script lowers the master's priority below the backup's; notify reports each transition")
        func trackScriptMovesTheMaster() async throws {
            try await onThread { try Self.body() }
        }

        static func body() throws {
            let dir = NSTemporaryDirectory() + "swiftvs-ha-track-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let healthy = dir + "/healthy"
            FileManager.default.createFile(atPath: healthy, contents: Data())
            let vrrp = [try freePort(), try freePort()]
            let admin = [try freePort(), try freePort()]
            var directors: [DirectorProcess] = []
            defer { directors.forEach { $0.stop() } }
            for i in 0...1 {
                let yaml = """
                    admin: 127.0.0.1:\(admin[i])
                    services:
                      - {name: web, listen: "127.0.0.1:\(try freePort())", servers: ["127.0.0.1:9"]}
                    ha:
                      transport: udp
                      notify: "echo >> \(dir)/notify-\(i)"
                      track_scripts:
                        - {command: "\(i == 0 ? "test -f " + healthy : "true")", interval: 100ms, weight: -60, fall: 2, rise: 2}
                      instances:
                        - name: front
                          vrid: 51
                          priority: \(i == 0 ? 150 : 120)
                          advert_interval: 100ms
                          udp: {listen: "127.0.0.1:\(vrrp[i])", peers: ["127.0.0.1:\(vrrp[1 - i])"]}

                    """
                directors.append(try DirectorProcess(yaml: yaml))
            }
            func state(_ i: Int) -> (state: String, priority: String) {
                guard let out = try? runSwiftVS(["adm", "ha", "--admin", "127.0.0.1:\(admin[i])"]), out.code == 0,
                    let line = out.stdout.split(separator: "\n").first(where: { $0.hasPrefix("front") })
                else { return ("?", "?") }
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return (String(fields[2]), String(fields[3]))
            }
            func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
                let end = Date().addingTimeInterval(seconds)
                while Date() < end {
                    if condition() { return true }
                    usleep(50_000)
                }
                return false
            }
            #expect(
                waitFor(5) { state(0).state == "MASTER" && state(1).state == "BACKUP" }, "150 is master, 120 backup")
            // The track script fails twice (fall 2): 150 - 60 = 90 < 120, so the other director takes over.
            unlink(healthy)
            #expect(
                waitFor(5) { state(1).state == "MASTER" && state(0).state == "BACKUP" },
                Comment(rawValue: "after the track script failed: \(state(0)) \(state(1))"))
            #expect(state(0).priority == "90/150")
            // It passes again (rise 2): back to 150, which preempts.
            FileManager.default.createFile(atPath: healthy, contents: Data())
            #expect(waitFor(5) { state(0).state == "MASTER" && state(1).state == "BACKUP" })
            // The notify scripts run on their own: wait for the last one's line.
            func notified(_ index: Int) -> String {
                (try? String(contentsOfFile: dir + "/notify-\(index)", encoding: .utf8)) ?? ""
            }
            _ = waitFor(5) { notified(0).components(separatedBy: "INSTANCE front MASTER 150").count >= 3 }
            let notify0 = notified(0)
            let notify1 = notified(1)
            #expect(
                notify0.contains("INSTANCE front MASTER 150") && notify0.contains("INSTANCE front BACKUP 90"),
                Comment(rawValue: notify0))
            #expect(notify1.contains("INSTANCE front MASTER 120"), Comment(rawValue: notify1))
        }

        @Test("a peer director that restarts gets every live persistence template again (full resync on connect)")
        func persistenceResync() async throws {
            try await onThread { try Self.resyncBody() }
        }

        static func resyncBody() throws {
            let vrrp = [try freePort(), try freePort()]
            let admin = [try freePort(), try freePort()]
            let sync = [try freePort(), try freePort()]
            let web = [try freePort(), try freePort()]
            func yaml(_ i: Int) -> String {
                """
                admin: {listen: 127.0.0.1:\(admin[i]), socket: off}
                services:
                  - {name: web, listen: "127.0.0.1:\(web[i])", scheduler: rr, persistence: {timeout: 300}, servers: ["127.0.0.1:9", "127.0.0.1:7"]}
                ha:
                  transport: udp
                  sync: {listen: "127.0.0.1:\(sync[i])", peers: ["127.0.0.1:\(sync[1 - i])"]}
                  instances:
                    - name: front
                      vrid: 52
                      priority: \(i == 0 ? 150 : 100)
                      advert_interval: 100ms
                      udp: {listen: "127.0.0.1:\(vrrp[i])", peers: ["127.0.0.1:\(vrrp[1 - i])"]}

                """
            }
            func received(_ i: Int) -> Int {
                guard let out = try? runSwiftVS(["adm", "ha", "--json", "--admin", "127.0.0.1:\(admin[i])"]),
                    let data = out.stdout.data(using: .utf8),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let sync = object["sync"] as? [String: Any]
                else { return -1 }
                return sync["received"] as? Int ?? -1
            }
            let a = try DirectorProcess(yaml: yaml(0))
            defer { a.stop() }
            var b = try DirectorProcess(yaml: yaml(1))
            defer { b.stop() }
            try a.waitForPort(web[0])
            // One client, one template on A (the request itself fails: nothing listens on ports 9 and 7).
            _ = try? BlockingClient(port: web[0], timeout: 2).request("GET", "/")
            try waitUntilBlocking("B has A's template", seconds: 10) { received(1) >= 1 }
            // B restarts with no templates; A reconnects to it and sends every live one again.
            b.stop()
            b = try DirectorProcess(yaml: yaml(1))
            try waitUntilBlocking("the restarted B has A's template again", seconds: 10) { received(1) >= 1 }
        }
    }
}
