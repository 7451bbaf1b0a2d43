import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the director's config file on every SIGHUP; an invalid file is logged and the running config stays.
public struct ReloadService: Service {
    public let director: Director

    public init(director: Director) {
        self.director = director
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            self.director.logger.notice("SIGHUP: reloading", metadata: ["config": "\(self.director.configPath ?? "-")"])
            do {
                let summary = try await self.director.reloadFromFile()
                self.director.logger.notice("reload done: \(summary)")
            } catch {
                self.director.logger.error("reload refused; the running config stays", metadata: ["error": "\(error)"])
            }
        }
    }
}
