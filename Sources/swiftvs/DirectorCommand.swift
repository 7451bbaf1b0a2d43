import SwiftVSConfigKit
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwiftVSCore
import SwiftVSDirector
import SwiftVSSystem

struct DirectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "director",
        abstract: "Run the virtual server described by a YAML config.",
        discussion: """
            The config lists virtual services (a listening address, tcp or http, a scheduler) and their real servers. A minimal one:

              services:
                - name: web
                  listen: 0.0.0.0:8080
                  protocol: http        # or tcp
                  scheduler: wlc        # any IPVS scheduler: rr wrr lc wlc sh mh ...
                  servers:
                    - address: 10.0.0.11:80
                      weight: 3
                    - address: 10.0.0.12:80

            Examples:
              swiftvs director --check-config examples/http.yaml
              swiftvs director --config examples/http.yaml

            --check-config prints every problem with its key path and line and exits 2 if there is any; --config refuses an invalid file the same way, before anything binds.

            While it runs:
              kill -HUP PID         reload the config: new services bind, removed ones drain, the rest keep their
                                    connections, counters and health (an invalid file is logged and ignored)
              swiftvs adm list      real servers, weights, connections and health (through admin.socket)
              kill -TERM PID        stop accepting, let requests in flight finish (drain_timeout), exit 0

            Reference: docs/config.md.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The director's YAML config to run.", valueName: "file"))
    var config: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only validate this config: print every problem with its key path and line, exit 0 if valid, 2 if not.",
            valueName: "file"))
    var checkConfig: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if self.config == nil && self.checkConfig == nil {
            throw ValidationError("give --config FILE to run, or --check-config FILE to validate")
        }
        if self.config != nil && self.checkConfig != nil {
            throw ValidationError("give --config or --check-config, not both")
        }
    }

    func run() async throws {
        if let path = self.checkConfig {
            let config = try loadOrExit(path)
            let services = config.services.count
            print("\(path): valid (\(services) virtual service\(services == 1 ? "" : "s"))")
            return
        }
        guard let path = self.config else { return }
        let config = try loadOrExit(path)
        // The admin API binds in its own service, beside the virtual services: a taken admin address is said
        // before any service says it listens.
        if let listen = config.admin?.listen, let code = ListenFailure.probe(host: listen.host, port: listen.port) {
            let reason = ListenFailure.describe("\(listen)", errno: code, fallback: "")
            FileHandle.standardError.write(
                Data("swiftvs director: admin.listen: \(reason) (admin: off, or another admin.listen)\n".utf8))
            throw ExitCode(1)
        }
        let logger = makeLogger(label: "swiftvs.director", level: self.logLevel)
        let director = try Director(config: config, configPath: path, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var haController: HAController?
        if let ha = config.ha {
            let controller = try HAController(config: ha, director: director, logger: logger)
            director.attach(controller)
            haController = controller
            // First in the group, so it stops last: after the director has drained.
            services.append(.init(service: HAHandOverService(controller: controller)))
        }
        if let log = director.accessLog {
            // Before the director: it stops after the drain, so the last requests are written.
            services.append(.init(service: AccessLogService(log: log)))
        }
        // Before the director: on shutdown the director drains first, then the replicas it started stop.
        services.append(.init(service: AutoscaleService(director: director)))
        services.append(.init(service: DirectorService(director: director)))
        if let admin = config.admin {
            services.append(.init(service: AdminService(director: director, config: admin)))
        }
        services.append(.init(service: ReloadService(director: director)))
        if let controller = haController {
            // Last in the group, so it is the first to stop on SIGTERM: it resigns (priority 0) and the peer takes
            // the virtual IPs within its skew time, while this director drains.
            services.append(.init(service: HAService(controller: controller)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        do {
            try await group.run()
        } catch let error as DirectorError {
            FileHandle.standardError.write(Data("swiftvs director: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Reads and validates a config file; prints every problem and exits 2 when it cannot be used.
func loadOrExit(_ path: String) throws -> DirectorConfig {
    try loadOrExit(path) { (yaml, source) throws(ConfigError) in
        let config = try ConfigLoader.load(yaml: yaml, source: source)
        // The certificate and key files too: a missing, expired or mismatched one is named by its key.
        _ = try TLSMaterial.load(config, configPath: source)
        return config
    }
}

/// Reads and validates a config file with `load`; prints every problem and exits 2 when it cannot be used.
func loadOrExit<T>(_ path: String, _ load: (String, String) throws(ConfigError) -> T) throws -> T {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        FileHandle.standardError.write(
            Data("swiftvs: cannot read config \(path): \(error.localizedDescription)\n".utf8))
        throw ExitCode(2)
    }
    do {
        return try load(text, path)
    } catch {
        FileHandle.standardError.write(Data("\(error.description)\n".utf8))
        throw ExitCode(2)
    }
}

func makeLogger(label: String, level: Logger.Level) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = level
    return logger
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
