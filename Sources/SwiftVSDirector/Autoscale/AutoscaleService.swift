import Logging
import NIOCore
import ServiceLifecycle
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// What runs one autoscaled service: `ReplicaController` (processes the director starts) or
/// `KubernetesController` (a Deployment and its EndpointSlices).
protocol ScaledController: AnyObject, Sendable {
    var service: VirtualService { get }
    /// Right after it is made; `run` then goes on until cancelled (the Kubernetes watch), `tick` every 100 ms.
    func start(now: Double)
    func run() async
    func tick(now: Double)
    /// A reloaded `autoscale` section.
    func reconfigure(_ config: AutoscaleConfig)
    func setBounds(min: Int?, max: Int?) throws(ScaleError)
    func status() -> ScaleStatus
    /// The director stops.
    func stop() async
}

/// Why `adm scale --min/--max` was refused.
public struct ScaleError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The director's autoscaled services, one controller each, kept in step with the config (start, reload).
public final class Autoscaling: Sendable {
    private let controllers = Mutex<[String: any ScaledController]>([:])
    let logger: Logger
    let group: EventLoopGroup
    /// Where relative paths of the config (a kubeconfig) start.
    let base: String?

    init(logger: Logger, group: EventLoopGroup, base: String?) {
        self.logger = logger
        self.group = group
        self.base = base
    }

    func controller(for service: String) -> (any ScaledController)? {
        self.controllers.withLock { $0[service] }
    }

    var all: [any ScaledController] {
        self.controllers.withLock { Array($0.values) }.sorted { $0.service.name < $1.service.name }
    }

    /// Every autoscaled service's state, as `adm scale` shows it.
    public var statuses: [ScaleStatus] { self.all.map { $0.status() } }

    /// Controllers for every service with `autoscale` (made and started when new, reconfigured when changed).
    /// Returns those made (whose `run` the caller starts) and those whose service is gone or no longer autoscales
    /// (to be stopped).
    func sync(
        _ services: [VirtualService], now: Double
    ) -> (started: [any ScaledController], gone: [any ScaledController]) {
        var started: [any ScaledController] = []
        let gone: [any ScaledController] = self.controllers.withLock { controllers in
            var keep: [String: any ScaledController] = [:]
            for service in services {
                guard let config = service.config.autoscale else { continue }
                if let existing = controllers[service.name], existing.service === service {
                    existing.reconfigure(config)
                    keep[service.name] = existing
                    continue
                }
                let controller: any ScaledController
                switch config.provider {
                case .process(let process):
                    controller = ReplicaController(
                        service: service, config: config, process: process, logger: self.logger)
                case .kubernetes(let settings):
                    do {
                        controller = try KubernetesController(
                            service: service, config: config, settings: settings, base: self.base,
                            group: self.group, logger: self.logger)
                    } catch {
                        self.logger.error(
                            "cannot autoscale: \(error)", metadata: ["service": "\(service.name)"])
                        continue
                    }
                }
                keep[service.name] = controller
                started.append(controller)
            }
            let gone = controllers.filter { keep[$0.key] !== $0.value }.map(\.value)
            controllers = keep
            return gone
        }
        for controller in started { controller.start(now: now) }
        return (started, gone)
    }

    func tick(now: Double) {
        for controller in self.controllers.withLock({ Array($0.values) }) { controller.tick(now: now) }
    }

    /// Stops every replica (SIGTERM, then SIGKILL after `stop_timeout`) and forgets the controllers.
    func stopAll() async {
        let all = self.controllers.withLock { controllers in
            defer { controllers = [:] }
            return Array(controllers.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for controller in all { group.addTask { await controller.stop() } }
        }
    }
}

/// Runs the autoscaled services' controllers every 100 ms. Placed before `DirectorService` in the group so that on
/// shutdown the director drains first (requests on replicas finish), then the replicas stop.
public struct AutoscaleService: Service {
    public let director: Director
    static let tick = Duration.milliseconds(100)

    public init(director: Director) {
        self.director = director
    }

    public func run() async throws {
        let autoscaling = self.director.autoscaling
        await cancelOnGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                while !Task.isCancelled {
                    let now = Monotonic.seconds()
                    let (started, gone) = autoscaling.sync(self.director.services, now: now)
                    for controller in started { group.addTask { await controller.run() } }
                    for controller in gone { await controller.stop() }
                    autoscaling.tick(now: now)
                    try? await Task.sleep(for: Self.tick)
                }
                group.cancelAll()
            }
        }
        // Stopping takes up to stop_timeout and must finish even though this task was cancelled.
        await Task.detached { await autoscaling.stopAll() }.value
    }
}
