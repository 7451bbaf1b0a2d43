import ArgumentParser
import Logging
import NIOPosix
import ServiceLifecycle
import SwiftVSCore
import SwiftVSDirector

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a director in front of three built-in HTTP real servers on loopback.",
        discussion: """
            Nothing else is needed: the real servers are part of the binary. Each answers with a line naming itself, so you can watch the scheduler spread requests. The director listens on 127.0.0.1:PORT, the real servers on the ports after it.

            Examples:
              swiftvs demo
              for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done
              curl -so /dev/null -w '%{size_download}\\n' \\
                   http://127.0.0.1:8080/bytes/10000000
              swiftvs demo --port 9000 --scheduler wlc --servers 5

            Stop it with Ctrl-C.
            """
    )

    @Option(help: "The director's port; real servers take the ports after it.")
    var port: Int = 8080

    @Option(help: "How many built-in real servers (1-16).")
    var servers: Int = 3

    @Option(help: "The IPVS scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos.")
    var scheduler: String = "rr"

    @Option(help: "The admin API's port on 127.0.0.1, for swiftvs adm.")
    var adminPort: Int = 9100

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (1...16).contains(self.servers) else { throw ValidationError("--servers must be 1...16") }
        guard (1...65500).contains(self.port) else { throw ValidationError("--port must be 1...65500") }
        guard SchedulerKind(rawValue: self.scheduler) != nil else {
            let all = SchedulerKind.allCases.map(\.rawValue).joined(separator: " ")
            throw ValidationError("--scheduler '\(self.scheduler)' is not one of: \(all)")
        }
    }

    func run() async throws {
        let logger = makeLogger(label: "swiftvs.demo", level: self.logLevel)
        var realServers: [DemoRealServer] = []
        for index in 1...self.servers {
            let server = try await DemoRealServer.start(
                name: "real-server-\(index)", host: "127.0.0.1", port: self.port + index,
                group: MultiThreadedEventLoopGroup.singleton
            )
            realServers.append(server)
        }
        let yaml = """
            admin: 127.0.0.1:\(self.adminPort)
            services:
              - name: demo
                listen: 127.0.0.1:\(self.port)
                protocol: http
                scheduler: \(self.scheduler)
                health: {check: http, path: /, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
                servers:
            \(realServers.map { "      - address: 127.0.0.1:\($0.port)" }.joined(separator: "\n"))
            """
        let config = try ConfigLoader.load(yaml: yaml, source: "demo")
        let director = try Director(config: config, logger: logger)
        print("""
            SwiftVS demo
              director (http, \(self.scheduler)):  http://127.0.0.1:\(self.port)/
            \(realServers.map { "  \($0.name):             http://127.0.0.1:\($0.port)/" }.joined(separator: "\n"))

              admin API:                http://127.0.0.1:\(self.adminPort)/api/services

            Try:  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:\(self.port)/; done
                  swiftvs adm list\(self.adminPort == 9100 ? "" : " --admin 127.0.0.1:\(self.adminPort)")
            Stop: Ctrl-C
            """)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: DirectorService(director: director)),
                .init(service: AdminService(director: director, config: config.admin ?? AdminConfig())),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        for server in realServers { await server.stop() }
    }
}
