import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    @Suite("The director at its file-descriptor limit", .serialized, .timeLimit(.minutes(2)))
    struct OpenFilesTests {
        /// Opens `count` connections to `port` without waiting for them to be accepted; their descriptors.
        static func flood(_ port: Int, count: Int) -> [Int32] {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var fds: [Int32] = []
            for _ in 0..<count {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0)
                guard fd >= 0 else { break }
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                fds.append(fd)
            }
            return fds
        }

        static func occurrences(_ text: String, _ needle: String) -> Int {
            text.components(separatedBy: needle).count - 1
        }

        @Test(
            "under ulimit -n 256, 400 clients: the log names the limit, no real server is marked down, and when they go all is served at once"
        )
        func exhaustion() async throws {
            try await withBackends(2) { backends in
                let (director, port) = try DirectorProcess.inFront(
                    of: backends,
                    extra: [
                        "scheduler: rr",
                        "health: {check: http, path: /health, interval: 200ms, timeout: 150ms, rise: 1, fall: 2, jitter: 0}",
                    ], openFiles: 256)
                defer { director.stop() }

                var clients = Self.flood(port, count: 400)
                defer { for fd in clients { close(fd) } }
                #expect(clients.count == 400, "the test itself could open only \(clients.count) sockets")
                // What ran out is said, with the limit; the checks that could not run say so too.
                try await waitUntil("the log names the limit", seconds: 20) {
                    director.child.stderr.contains("RLIMIT_NOFILE is 256")
                        && director.child.stderr.contains("a health check could not run")
                }
                // Checks keep failing to run for many times fall × interval (the warning repeats every 5 s).
                try await waitUntil("checks went on failing to run", seconds: 20) {
                    Self.occurrences(director.child.stderr, "a health check could not run") >= 2
                }
                #expect(!director.child.stderr.contains("real server down"), "\(director.child.stderr)")

                for fd in clients { close(fd) }
                clients = []
                // Served again at once (the listener pauses at most 1 s after a refused accept), by both servers.
                var seen = Set<String>()
                try waitUntilBlocking("both real servers serve again", seconds: 5) {
                    let client = BlockingClient(port: port, timeout: 2)
                    defer { client.close() }
                    guard let response = try? client.request("GET", "/"), response.status == 200 else { return false }
                    seen.insert(String(decoding: response.body, as: UTF8.self))
                    return seen.count == 2
                }
                #expect(!director.child.stderr.contains("real server down"), "\(director.child.stderr)")
                #expect(director.stop() == 0)
            }
        }
    }
}
