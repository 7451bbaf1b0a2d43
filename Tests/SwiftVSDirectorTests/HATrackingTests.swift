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
    }
}
