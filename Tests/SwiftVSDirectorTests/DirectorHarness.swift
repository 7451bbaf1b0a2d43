import SwiftVSTestSupport
import Foundation
import Testing
import Logging
import NIOCore
import SwiftVSCore
@testable import SwiftVSDirector

/// Every suite that runs servers, directors or processes nests here and runs one at a time: on two cores,
/// concurrent load tests would measure each other, and blocking waits would starve the cooperative pool.
@Suite("Integration", .serialized)
struct IntegrationTests {}

/// A director started in-process from YAML, listening on an ephemeral port.
struct RunningDirector {
    let director: Director
    let port: Int

    static func start(_ yaml: String) async throws -> RunningDirector {
        let config = try ConfigLoader.load(yaml: yaml, source: "test")
        var logger = Logger(label: "test.director")
        logger.logLevel = ProcessInfo.processInfo.environment["SWIFTVS_TEST_LOG"] != nil ? .debug : .critical
        let director = try Director(config: config, logger: logger)
        try await director.start()
        let name = config.services[0].name
        return RunningDirector(director: director, port: director.boundAddress(of: name)!.port!)
    }

    func stop() async {
        await self.director.shutdown()
    }

    /// Starts the admin API on an ephemeral loopback port; returns the port.
    func startAdmin(token: String? = nil) async throws -> Int {
        let channel = try await AdminService.bind(
            director: self.director,
            config: AdminConfig(listen: .loopback(port: 0), token: token))
        return channel.localAddress!.port!
    }

    /// Starts the admin API's Unix socket at a fresh path; returns the path.
    func startAdminSocket() async throws -> String {
        let path = NSTemporaryDirectory() + "swiftvs-admin-\(UUID().uuidString.prefix(8)).sock"
        _ = try await AdminService.bindSocket(
            director: self.director, config: AdminConfig(socket: path), path: path)
        return path
    }

    var service: VirtualService { self.director.services[0] }
}

/// YAML for one service in front of `backends`.
func serviceYAML(
    name: String = "svc", proto: String = "http", scheduler: String = "rr", backends: [TestBackend],
    weights: [Int]? = nil, extra: String = ""
) -> String {
    var yaml = """
        threads: 1
        services:
          - name: \(name)
            listen: 127.0.0.1:0
            protocol: \(proto)
            scheduler: \(scheduler)

        """
    if !extra.isEmpty {
        yaml += extra.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n") + "\n"
    }
    yaml += "    servers:\n"
    for (index, backend) in backends.enumerated() {
        yaml += "      - address: \(backend.address)\n"
        if let weights { yaml += "        weight: \(weights[index])\n" }
    }
    return yaml
}

/// Runs `swiftvs` with arguments to completion; returns exit code and output.
func runSwiftVS(_ arguments: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
    let child = try ChildProcess(swiftvsBinary.path, arguments)
    defer { child.removeOutput() }
    let code = child.wait()
    return (code, child.stdout, child.stderr)
}

func runSwiftVSAsync(_ arguments: [String]) async throws -> (code: Int32, stdout: String, stderr: String) {
    try await onThread { try runSwiftVS(arguments) }
}

/// A `swiftvs director` child process, stopped by PID.
final class DirectorProcess: @unchecked Sendable {
    let child: ChildProcess
    let configURL: URL

    /// With `openFiles`, the director starts under `ulimit -n` that many (soft and hard), as a shell would.
    init(yaml: String, openFiles: Int? = nil) throws {
        self.configURL = FileManager.default.temporaryDirectory.appendingPathComponent(
            "swiftvs-\(UUID().uuidString).yaml")
        try yaml.write(to: self.configURL, atomically: true, encoding: .utf8)
        let arguments = ["director", "--config", self.configURL.path, "--log-level", "warning"]
        if let openFiles {
            self.child = try ChildProcess(
                "/bin/sh", ["-c", "ulimit -n \(openFiles) && exec \"$0\" \"$@\"", swiftvsBinary.path] + arguments)
        } else {
            self.child = try ChildProcess(swiftvsBinary.path, arguments)
        }
    }

    var pid: Int32 { self.child.pid }

    /// A director process (one thread, no admin API) with one http service on a free port in front of `backend`,
    /// listening when it returns.
    static func inFront(of backend: TestBackend) throws -> (DirectorProcess, port: Int) {
        try Self.inFront(of: [backend])
    }

    /// The same in front of `backends`, with `extra` lines in the service (scheduler, health), `admin` as the
    /// admin key's value, and, with `openFiles`, under `ulimit -n`.
    static func inFront(
        of backends: [TestBackend], extra: [String] = [], admin: String = "off", openFiles: Int? = nil
    ) throws -> (DirectorProcess, port: Int) {
        let port = try freePort()
        let lines = extra.map { "    \($0)\n" }.joined()
        let director = try DirectorProcess(
            yaml: """
                threads: 1
                admin: \(admin)
                services:
                  - name: web
                    listen: 127.0.0.1:\(port)
                \(lines)    servers: [\(backends.map(\.address).joined(separator: ", "))]

                """, openFiles: openFiles)
        try director.waitForPort(port)
        return (director, port)
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    var peakRSSKiB: Int { self.status("VmHWM:") }

    /// Resident memory now (VmRSS) in KiB.
    var rssKiB: Int { self.status("VmRSS:") }

    private func status(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
        }
        return -1
    }

    func waitForPort(_ port: Int, seconds: Double = 10) throws {
        precondition(port > 0)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let client = BlockingClient(port: port, timeout: 1)
            if (try? client.connect()) != nil {
                client.close()
                return
            }
            guard self.child.isRunning else { throw ClientError("director exited: \(self.child.stderr)") }
            usleep(50_000)
        }
        throw ClientError("director did not listen on \(port)")
    }

    /// SIGTERM and reap; returns the exit code.
    @discardableResult
    func stop() -> Int32 {
        let code = self.child.stop()
        self.child.removeOutput()
        try? FileManager.default.removeItem(at: self.configURL)
        return code
    }
}
