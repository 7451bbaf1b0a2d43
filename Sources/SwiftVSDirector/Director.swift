import SwiftVSConfigKit
import SwiftVSSystem
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwiftVSCore
import Synchronization

/// The virtual server: binds every virtual service of a `DirectorConfig` and runs their data planes, health checks
/// and admin API on one event loop group. Reloads apply a new config to the running services.
public final class Director: Sendable {
    /// The config as last loaded (at start or by a reload).
    public var config: DirectorConfig { self.state.withLock { $0.config } }
    /// The file the config came from, which a reload reads again.
    public let configPath: String?
    let group: MultiThreadedEventLoopGroup
    let loops: LoopContexts
    /// The data plane's own epoll threads: every listener, tcp relaying and plain HTTP requests. The NIO `group`
    /// serves the HTTP connections the relay hands over, health checks and the admin API.
    let relay: RelayEngine
    let logger: Logger
    /// The access log, when `access_log` is on; `AccessLogService` reopens it on SIGUSR1 and stops it.
    public let accessLog: AccessLog?
    /// The autoscaled services' controllers, run by `AutoscaleService`.
    public let autoscaling: Autoscaling

    typealias Listener = RelayListener

    struct State {
        var config: DirectorConfig
        var services: [VirtualService]
        var listeners: [String: Listener] = [:]
        var started = false
        var housekeeping: RepeatedTask?
    }

    private let state: Mutex<State>
    /// The kernel path's driver, while a service has `forward: nat`.
    private let kernelBox = Mutex<KernelForwarding?>(nil)
    var kernel: KernelForwarding? { self.kernelBox.withLock { $0 } }
    /// One reload at a time: SIGHUP and `adm reload` may race.
    private let reloading = Mutex(false)

    public init(config: DirectorConfig, configPath: String? = nil, logger: Logger) throws {
        self.configPath = configPath
        self.logger = logger
        let threads = config.threads ?? System.coreCount
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let loops = LoopContexts(group: self.group)
        self.loops = loops
        let group = self.group
        self.relay = try RelayEngine(threads: threads, logger: logger) { fd, service, bytes, client, decrypted in
            Self.adopt(
                fd, service: service, bytes: bytes, client: client, decrypted: decrypted, group: group, loops: loops)
        }
        let accessLog = try config.accessLog.map { try AccessLog($0, configPath: configPath, logger: logger) }
        self.accessLog = accessLog
        self.autoscaling = Autoscaling(
            logger: logger, group: self.group,
            base: configPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path })
        let services = try config.services.map {
            try VirtualService(config: $0, logger: logger, accessLog: accessLog)
        }
        let material: TLSMaterial
        do {
            material = try TLSMaterial.load(config, configPath: configPath)
        } catch {
            throw DirectorError(code: .config, message: error.description)
        }
        material.install(on: services)
        try Self.link(services)
        self.state = Mutex(State(config: config, services: services))
    }

    public var services: [VirtualService] { self.state.withLock { $0.services } }

    private let haBox = Mutex<HAController?>(nil)
    /// The VRRP controller, when the config has `ha`.
    public var ha: HAController? { self.haBox.withLock { $0 } }
    public func attach(_ ha: HAController) { self.haBox.withLock { $0 = ha } }

    public func service(named name: String) -> VirtualService? {
        self.services.first { $0.name == name }
    }

    /// The address a service listens on (with the real port when the config said 0).
    public func boundAddress(of name: String) -> SocketAddress? {
        self.state.withLock { $0.listeners[name]?.localAddress }
    }

    /// Binds every service and starts the health checks; throws (having bound none) if any address cannot be bound.
    public func start() async throws {
        // Two descriptors per proxied client: the soft limit shells give (1024) is far below what a director
        // serves; the hard one is what the operator allowed.
        let (before, after) = OpenFiles.raiseToHard()
        let (_, hard) = OpenFiles.limit()
        self.logger.info(
            after > before ? "open files limit raised to the hard limit" : "open files limit",
            metadata: ["RLIMIT_NOFILE": "\(after)", "was": "\(before)", "hard": "\(hard)"])
        for context in self.loops.all { context.start() }
        self.relay.start()
        let services = self.services
        var bound: [String: Listener] = [:]
        do {
            for service in services where service.config.poolOf == nil && service.config.forward == .proxy {
                bound[service.name] = try await self.bind(service, at: service.config.listen)
                self.logListening(service)
            }
        } catch {
            for listener in bound.values { await self.close(listener) }
            throw DirectorError(code: .bind, message: "\(error)")
        }
        do {
            try self.startKernel(services, config: self.config)
        } catch {
            for listener in bound.values { await self.close(listener) }
            throw error
        }
        for service in services { service.checks.start(service, group: self.group) }
        let housekeeping = self.startHousekeeping()
        self.state.withLock { state in
            state.listeners = bound
            state.started = true
            state.housekeeping = housekeeping
        }
    }

    /// Hands the `forward: nat` services to the kernel forwarder, making it (and checking root and nftables) on the
    /// first; throws, naming the first such service's `forward`, if the kernel cannot be programmed.
    private func startKernel(
        _ services: [VirtualService], config: DirectorConfig, prepared: KernelForwarding? = nil
    ) throws(DirectorError) {
        guard let index = config.services.firstIndex(where: { $0.forward == .nat }) else {
            self.kernel?.follow([])
            return
        }
        if let kernel = self.kernel {
            kernel.follow(services)
            return
        }
        let kernel: KernelForwarding
        if let prepared {
            kernel = prepared
        } else {
            kernel = try KernelForwarding.make(key: "services[\(index)].forward", logger: self.logger)
        }
        try kernel.start(services)
        self.kernelBox.withLock { $0 = kernel }
        for service in services where service.config.forward == .nat { self.logListening(service) }
    }

    /// Gives every service with routes its route table and its pools (by their name in the config).
    static func link(_ services: [VirtualService]) throws {
        let byName = Dictionary(uniqueKeysWithValues: services.map { ($0.name, $0) })
        for service in services {
            let config = service.config
            guard !config.routes.isEmpty else {
                service.routing = nil
                continue
            }
            let table: RouteTable
            do {
                table = try RouteTable(config.routes)
            } catch {
                throw DirectorError(
                    code: .config, message: "services '\(config.name)' routes[\(error.index)]: \(error.message)")
            }
            var pools: [String: VirtualService] = [:]
            for pool in config.pools {
                let short = String(pool.name.dropFirst(config.name.count + 1))
                pools[short] = byName[pool.name]
            }
            service.routing = Routing(table: table, pools: pools)
        }
    }

    private func logListening(_ service: VirtualService) {
        let config = service.config
        self.logger.info(
            config.forward == .nat ? "virtual service forwarded by the kernel" : "virtual service listening",
            metadata: [
                "service": "\(config.name)", "listen": "\(config.listen)", "protocol": "\(config.proto.rawValue)",
                "scheduler": "\(config.scheduler.rawValue)", "servers": "\(config.servers.count)",
                "check": "\(config.health?.kind.rawValue ?? "none")",
            ])
    }

    /// Every 0.5 s: the weights of servers in `slow_start` step up. Every 2 s: the `--rate` estimators sample
    /// their counters and persistence templates expire.
    private func startHousekeeping() -> RepeatedTask? {
        guard let loop = self.loops.all.first else { return nil }
        let ticks = Atomic<Int>(0)
        return loop.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { _ in
            let services = self.services
            for service in services { service.rampTick() }
            guard ticks.wrappingAdd(1, ordering: .relaxed).newValue % 4 == 0 else { return }
            let now = Monotonic.seconds()
            for service in services {
                service.sampleRates(now: now)
                service.expireTemplates(now: loop.seconds)
            }
        }
    }

    /// Every service listens in the relay engine, which reads the protocol per connection (so a reload may turn a
    /// service from tcp to http) and hands to NIO the http connections it does not serve itself.
    private func bind(_ service: VirtualService, at listen: Endpoint) async throws -> Listener {
        try self.relay.listen(service, at: listen)
    }

    /// A connection the relay engine accepted and counted, with the bytes it already read, for the NIO proxy.
    private static func adopt(
        _ fd: Int32, service: VirtualService, bytes: [UInt8], client: SocketAddress?, decrypted: Bool,
        group: EventLoopGroup, loops: LoopContexts
    ) {
        // NIOHTTP1 decodes every request of a read before the proxy can withhold the next one, so one read cycle is
        // what a client that pipelines and never reads can queue: 4 reads (≤ 256 KiB) kept three such clients at
        // +11 MiB, where 16 let them reach +41 MiB.
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.maxMessagesPerRead, value: 4)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try FrontPipeline.configure(
                        channel, service: service, bytes: bytes, client: client, decrypted: decrypted,
                        loop: loops.context(for: channel.eventLoop))
                }
            }
        // NIO owns the descriptor from here, and closes it if the channel cannot be set up.
        _ = bootstrap.withConnectedSocket(fd)
    }

    private func close(_ listener: Listener) async {
        await self.relay.close(listener)
    }

    // MARK: reload

    /// What a reload changed.
    public struct ReloadSummary: Sendable, CustomStringConvertible, Codable {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
        public var unchanged: [String] = []
        public var warnings: [String] = []

        public var description: String {
            var parts: [String] = []
            if !self.added.isEmpty { parts.append("added \(self.added.joined(separator: ", "))") }
            if !self.removed.isEmpty { parts.append("removed \(self.removed.joined(separator: ", "))") }
            if !self.changed.isEmpty { parts.append("changed \(self.changed.joined(separator: ", "))") }
            parts.append("\(self.unchanged.count) unchanged")
            return parts.joined(separator: "; ")
        }
    }

    /// Reads the config file again and applies it; an invalid file changes nothing and throws its problems.
    public func reloadFromFile() async throws -> ReloadSummary {
        // systemd (Type=notify): RELOADING=1 now, READY=1 when done, whether the reload went through or not.
        SystemdNotify.reloading()
        defer { SystemdNotify.ready(status: "reloaded") }
        guard let path = self.configPath else {
            throw DirectorError(code: .reload, message: "this director was not started from a config file")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw DirectorError(code: .reload, message: "cannot read \(path): \(error.localizedDescription)")
        }
        do {
            return try await self.reload(ConfigLoader.load(yaml: text, source: path))
        } catch let error as ConfigError {
            throw DirectorError(code: .config, message: error.description)
        }
    }

    /// Applies `new`: services with a new name bind, services gone stop accepting (their connections finish),
    /// services that stay are updated in place and keep their connections, counters and health state.
    public func reload(_ new: DirectorConfig) async throws -> ReloadSummary {
        let busy = self.reloading.withLock { busy in
            defer { busy = true }
            return busy
        }
        guard !busy else { throw DirectorError(code: .reload, message: "a reload is already running") }
        defer { self.reloading.withLock { $0 = false } }

        let (old, running) = self.state.withLock { ($0.config, $0.services) }
        var summary = ReloadSummary()
        if new.threads != old.threads { summary.warnings.append("threads changes on restart only") }
        if new.admin != old.admin { summary.warnings.append("admin settings change on restart only") }
        if new.accessLog != old.accessLog { summary.warnings.append("access_log changes on restart only") }
        let byName = Dictionary(uniqueKeysWithValues: running.map { ($0.name, $0) })
        // Certificates are read again on every reload, changed or not: a renewed file on disk is what a reload
        // is for. A file that fails refuses the whole reload, before anything changes.
        let material: TLSMaterial
        do {
            material = try TLSMaterial.load(new, configPath: self.configPath)
        } catch {
            throw DirectorError(code: .config, message: "reload refused, nothing changed: \(error.description)")
        }

        // The kernel path's first service: root and nftables are checked before anything changes.
        var prepared: KernelForwarding?
        if self.kernel == nil, let index = new.services.firstIndex(where: { $0.forward == .nat }) {
            do {
                prepared = try KernelForwarding.make(key: "services[\(index)].forward", logger: self.logger)
            } catch {
                throw DirectorError(code: .config, message: "reload refused, nothing changed: \(error.message)")
            }
        }

        // Bind what is new (or moved) first: if any bind fails, nothing has changed yet.
        var fresh: [String: (VirtualService, Listener)] = [:]
        var freshPools: [VirtualService] = []
        var moved: [String: Listener] = [:]
        do {
            for config in new.services {
                if let existing = byName[config.name] {
                    if config.poolOf == nil && config.forward == .proxy
                        && (existing.config.listen != config.listen || existing.config.poolOf != nil
                            || existing.config.forward == .nat)
                    {
                        // Same service, new address: its own object (and so its state) takes the new listener.
                        moved[config.name] = try await self.bind(existing, at: config.listen)
                    }
                } else {
                    let service = try VirtualService(config: config, logger: self.logger, accessLog: self.accessLog)
                    material.install(on: service)
                    if config.poolOf != nil || config.forward == .nat {
                        freshPools.append(service)
                    } else {
                        fresh[config.name] = (service, try await self.bind(service, at: config.listen))
                    }
                }
            }
        } catch {
            for (_, listener) in fresh.values { await self.close(listener) }
            for listener in moved.values { await self.close(listener) }
            throw DirectorError(code: .bind, message: "reload refused, nothing changed: \(error)")
        }

        var services: [VirtualService] = []
        var closing: [Listener] = []
        for config in new.services {
            if let existing = byName[config.name] {
                material.install(on: existing)
                if existing.config == config {
                    summary.unchanged.append(config.name)
                } else {
                    try existing.apply(config)
                    summary.changed.append(config.name)
                }
                services.append(existing)
            } else if let (service, _) = fresh[config.name] {
                services.append(service)
                service.checks.start(service, group: self.group)
                summary.added.append(config.name)
                self.logListening(service)
            } else if let pool = freshPools.first(where: { $0.name == config.name }) {
                services.append(pool)
                pool.checks.start(pool, group: self.group)
                summary.added.append(config.name)
                if config.forward == .nat { self.logListening(pool) }
            }
        }
        try Self.link(services)
        let kept = Set(new.services.map(\.name))
        let kernelNames = Set(new.services.filter { $0.forward == .nat }.map(\.name))
        let removed = running.filter { !kept.contains($0.name) }
        for service in removed {
            service.checks.stop()
            summary.removed.append(service.name)
        }
        self.state.withLock { state in
            // Services gone, and services the kernel now forwards, stop listening.
            for name in Set(removed.map(\.name)).union(kernelNames) {
                if let channel = state.listeners.removeValue(forKey: name) { closing.append(channel) }
            }
            for (name, channel) in moved {
                if let old = state.listeners[name] { closing.append(old) }
                state.listeners[name] = channel
            }
            for (name, (_, channel)) in fresh { state.listeners[name] = channel }
            state.services = services
            state.config = new
        }
        // Closing a listener stops new connections only; the open ones drain on their own.
        for listener in closing { await self.close(listener) }
        do {
            try self.startKernel(services, config: new, prepared: prepared)
        } catch {
            summary.warnings.append("\(error.message); the services with forward: nat forward nothing")
        }
        self.logger.notice(
            "config reloaded",
            metadata: [
                "added": "\(summary.added)", "removed": "\(summary.removed)", "changed": "\(summary.changed)",
                "unchanged": "\(summary.unchanged.count)",
            ])
        for warning in summary.warnings { self.logger.warning("reload: \(warning)") }
        return summary
    }

    // MARK: shutdown

    /// Stops accepting, lets requests in flight finish for up to `timeout` seconds (keep-alive clients are told
    /// `Connection: close`), and returns how many were still open when time ran out.
    public func drain(timeout: Double) async -> Int {
        let (channels, services) = self.state.withLock { state in
            defer { state.listeners = [:] }
            return (Array(state.listeners.values), state.services)
        }
        for listener in channels { await self.close(listener) }
        for context in self.loops.all { context.drain() }
        self.relay.drain()
        for service in services { service.checks.stop() }
        let deadline = Monotonic.seconds() + timeout
        var open = services.reduce(0) { $0 + $1.inFlight() }
        if open > 0 {
            self.logger.notice("draining", metadata: ["in_flight": "\(open)", "timeout": "\(timeout)s"])
        }
        while open > 0 && Monotonic.seconds() < deadline {
            try? await Task.sleep(for: .milliseconds(50))
            open = services.reduce(0) { $0 + $1.inFlight() }
        }
        if open > 0 {
            self.logger.warning("drain timeout: closing connections still open", metadata: ["in_flight": "\(open)"])
        }
        return open
    }

    /// Stops accepting at once; open connections are closed with the event loops.
    public func stop() async {
        let (channels, services, housekeeping) = self.state.withLock { state in
            defer {
                state.listeners = [:]
                state.housekeeping = nil
            }
            return (Array(state.listeners.values), state.services, state.housekeeping)
        }
        housekeeping?.cancel()
        for service in services { service.checks.stop() }
        if let kernel = self.kernelBox.withLock({ box in
            defer { box = nil }
            return box
        }) {
            // nft runs and the worker joins off the cooperative pool.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread {
                    kernel.stop()
                    done.resume()
                }.start()
            }
        }
        for listener in channels { await self.close(listener) }
        for context in self.loops.all { context.stop() }
    }

    public func shutdown() async {
        await self.stop()
        await self.relay.stop()
        try? await self.group.shutdownGracefully()
    }
}

/// A director error with a code, as users see it.
public struct DirectorError: Error, CustomStringConvertible {
    public enum Code: String, Sendable {
        case bind
        case config
        case reload
        case ha
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}

/// Runs a director in a `ServiceGroup`: binds on start; on graceful shutdown (SIGTERM) stops accepting and lets
/// requests in flight finish for up to the config's `drain_timeout`.
public struct DirectorService: Service {
    public let director: Director

    public init(director: Director) {
        self.director = director
    }

    public func run() async throws {
        try await self.director.start()
        let services = self.director.services.filter { $0.config.poolOf == nil }.count
        SystemdNotify.ready(status: "\(services) virtual service\(services == 1 ? "" : "s") listening")
        try? await gracefulShutdown()
        SystemdNotify.stopping(status: "draining")
        _ = await self.director.drain(timeout: self.director.config.drainTimeout)
        await self.director.shutdown()
    }
}
