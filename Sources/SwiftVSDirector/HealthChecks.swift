#if canImport(Glibc)
import SwiftVSConfigKit
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOCore
import NIOPosix
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// The health checks of one virtual service: one `RealServerChecker` per real server, started, stopped and restarted as
/// membership and check settings change (`sync`).
final class ServiceChecks: Sendable {
    struct State {
        var group: EventLoopGroup?
        var health: HealthCheckConfig?
        var checkers: [Int: RealServerChecker] = [:]
    }

    private let state = Mutex(State())
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Starts checking on `group`; later membership changes follow through `sync`.
    func start(_ service: VirtualService, group: EventLoopGroup) {
        self.state.withLock { $0.group = group }
        self.sync(service)
    }

    /// Brings the checkers in line with the service's realServers and check settings.
    func sync(_ service: VirtualService) {
        let (health, targets) = service.checkTargets()
        let (started, stopped) = self.state.withLock { state -> ([RealServerChecker], [RealServerChecker]) in
            guard let group = state.group else { return ([], []) }
            var stopped: [RealServerChecker] = []
            if state.health != health {
                stopped = Array(state.checkers.values)
                state.checkers = [:]
                state.health = health
            }
            let wanted = Set(targets.map(\.0))
            for (id, checker) in state.checkers where !wanted.contains(id) {
                stopped.append(checker)
                state.checkers[id] = nil
            }
            var started: [RealServerChecker] = []
            if let health {
                for (id, endpoint) in targets where state.checkers[id] == nil {
                    let checker = RealServerChecker(
                        service: service, id: id, endpoint: endpoint, check: health,
                        loop: group.next())
                    state.checkers[id] = checker
                    started.append(checker)
                }
            }
            return (started, stopped)
        }
        for checker in stopped { checker.stop() }
        for checker in started { checker.start() }
    }

    func stop() {
        let checkers = self.state.withLock { state in
            defer {
                state.checkers = [:]
                state.group = nil
            }
            return Array(state.checkers.values)
        }
        for checker in checkers { checker.stop() }
    }
}

/// Checks one real server every `interval` (± jitter) and reports each result to its service.
final class RealServerChecker: Sendable {
    let service: VirtualService
    let id: Int
    let endpoint: Endpoint
    let check: HealthCheckConfig
    let loop: EventLoop
    private let stopped = Atomic<Bool>(false)
    private let next = Mutex<Scheduled<Void>?>(nil)

    init(service: VirtualService, id: Int, endpoint: Endpoint, check: HealthCheckConfig, loop: EventLoop) {
        self.service = service
        self.id = id
        self.endpoint = endpoint
        self.check = check
        self.loop = loop
    }

    func start() {
        // The first check goes at once (a few ms apart per server), so `alpha` servers come up without waiting.
        self.schedule(after: Double.random(in: 0...0.05))
    }

    func stop() {
        self.stopped.store(true, ordering: .relaxed)
        self.next.withLock { $0?.cancel() }
    }

    private func schedule(after seconds: Double) {
        guard !self.stopped.load(ordering: .relaxed) else { return }
        let task = self.loop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { self.runOnce() }
        self.next.withLock { $0 = task }
    }

    private func runOnce() {
        guard !self.stopped.load(ordering: .relaxed) else { return }
        let started = Monotonic.seconds()
        self.probe().whenComplete { result in
            guard !self.stopped.load(ordering: .relaxed) else { return }
            let outcome: CheckResult
            switch result {
            case .success(let value): outcome = value
            case .failure(let error):
                if let code = LocalExhaustion.code(of: error) {
                    // The check could not open its socket: the director's trouble, not the server's.
                    LocalExhaustion.warn(
                        self.service.logger, "a health check could not run", code: code, service: self.service.name)
                    outcome = .inconclusive("not checked: \(OpenFiles.describeExhaustion(code))")
                } else {
                    outcome = .failed(HTTPFetch.describe(error))
                }
            }
            self.service.recordCheck(self.id, outcome, seconds: Monotonic.seconds() - started)
            let jitter = self.check.jitter * self.check.interval
            self.schedule(after: self.check.interval + Double.random(in: -jitter...jitter))
        }
    }

    private var timeout: TimeAmount { .nanoseconds(Int64(self.check.timeout * 1e9)) }

    private func probe() -> EventLoopFuture<CheckResult> {
        let port = self.check.port ?? self.endpoint.port
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: self.endpoint.host, port: port)
        } catch {
            return self.loop.makeSucceededFuture(.failed("bad address \(self.endpoint.host):\(port)"))
        }
        switch self.check.kind {
        case .tcp:
            return ClientBootstrap(group: self.loop).connectTimeout(self.timeout).connect(to: address)
                .map { channel in
                    channel.close(promise: nil)
                    return CheckResult.passed("connected")
                }
        case .http:
            let check = self.check
            let regex = check.regex.flatMap { try? Regex($0) }
            return HTTPFetch.fetch(
                on: self.loop, to: address, path: check.path,
                host: check.host ?? Endpoint.hostHeader(self.endpoint.host, port: port),
                timeout: self.timeout,
                // Over TLS when the server takes requests over TLS (on its own port; a check `port` is clear text).
                tls: port == self.endpoint.port ? self.service.upstreamTLS[self.endpoint] : nil
            )
            .map { response in
                let matches = regex.map { regex in
                    (try? regex.firstMatch(in: String(decoding: response.body, as: UTF8.self))) != nil
                }
                return HTTPCheckVerdict.judge(
                    status: response.status, reason: response.reason, body: response.body,
                    check: check, bodyMatches: matches)
            }
        case .exec:
            return ExecProbe.run(
                self.check.command ?? "false",
                environment: [
                    "SWIFTVS_SERVER_HOST": self.endpoint.host, "SWIFTVS_SERVER_PORT": String(port),
                    "SWIFTVS_SERVICE": self.service.name,
                ], timeout: self.check.timeout, on: self.loop
            )
        }
    }
}

extension Endpoint {
    /// `host:port` as a Host header writes it (`[::1]:80` for IPv6).
    static func hostHeader(_ host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// keepalived's `MISC_CHECK`: runs `/bin/sh -c COMMAND` in its own process group; exit 0 within the timeout
/// passes. The exit is polled from the event loop, so no thread waits on it.
enum ExecProbe {
    static func run(
        _ command: String, environment: [String: String], timeout: Double, on loop: EventLoop
    )
        -> EventLoopFuture<CheckResult>
    {
        var env = ProcessEnvironment.current
        for (key, value) in environment { env[key] = value }
        let pid: pid_t
        do {
            pid = try Spawn.start(["/bin/sh", "-c", command], environment: env, ownProcessGroup: true)
        } catch {
            if OpenFiles.isLocalExhaustion(error.code) {
                return loop.makeFailedFuture(error)  // not the server's failure: the checker says what ran out
            }
            return loop.makeSucceededFuture(.failed("\(error)"))
        }
        let promise = loop.makePromise(of: CheckResult.self)
        let started = Monotonic.seconds()
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(5), delay: .milliseconds(10)) { task in
            var status: Int32 = 0
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid {
                task.cancel()
                if status == 0 {
                    promise.succeed(.passed("exit 0"))
                } else {
                    promise.succeed(.failed(ExitStatus.describe(status)))
                }
            } else if done < 0 {
                task.cancel()
                promise.succeed(.failed("lost the check process: \(String(cString: strerror(errno)))"))
            } else if Monotonic.seconds() - started > timeout {
                kill(-pid, SIGKILL)  // the whole group: the shell and what it started
                _ = waitpid(pid, &status, 0)
                task.cancel()
                promise.succeed(.failed("timed out after \(timeout)s"))
            }
        }
        return promise.futureResult
    }
}
