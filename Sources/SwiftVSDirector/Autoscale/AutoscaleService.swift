import Logging
import ServiceLifecycle
import SwiftVSCore
import SwiftVSSystem
import Synchronization

/// The director's autoscaled services, one `ReplicaController` each, kept in step with the config (start, reload).
public final class Autoscaling: Sendable {
    private let controllers = Mutex<[String: ReplicaController]>([:])
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    public func controller(for service: String) -> ReplicaController? {
        self.controllers.withLock { $0[service] }
    }

    public var all: [ReplicaController] {
        self.controllers.withLock { Array($0.values) }.sorted { $0.service.name < $1.service.name }
    }

    /// Controllers for every service with `autoscale` (started when new, reconfigured when changed); those whose
    /// service is gone or no longer autoscales are returned, to be stopped.
    func sync(_ services: [VirtualService], now: Double) -> [ReplicaController] {
        var started: [ReplicaController] = []
        let gone: [ReplicaController] = self.controllers.withLock { controllers in
            var keep: [String: ReplicaController] = [:]
            for service in services {
                guard let config = service.config.autoscale else { continue }
                if let existing = controllers[service.name], existing.service === service {
                    existing.reconfigure(config)
                    keep[service.name] = existing
                } else {
                    let controller = ReplicaController(service: service, config: config, logger: self.logger)
                    keep[service.name] = controller
                    started.append(controller)
                }
            }
            let gone = controllers.filter { keep[$0.key] !== $0.value }.map(\.value)
            controllers = keep
            return gone
        }
        for controller in started { controller.start(now: now) }
        return gone
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
            while !Task.isCancelled {
                let now = Monotonic.seconds()
                for controller in autoscaling.sync(self.director.services, now: now) { await controller.stop() }
                autoscaling.tick(now: now)
                try? await Task.sleep(for: Self.tick)
            }
        }
        // Stopping takes up to stop_timeout and must finish even though this task was cancelled.
        await Task.detached { await autoscaling.stopAll() }.value
    }
}
