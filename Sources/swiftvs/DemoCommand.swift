import SwiftVSMedia
import ArgumentParser
import Logging
import NIOPosix
import ServiceLifecycle
import SwiftVSCore
import SwiftVSDirector
import SwiftVSConference
import SwiftVSIPTV

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run a director in front of three built-in HTTP real servers, two IPTV replicas and the video conference, on loopback.",
        discussion: """
            Nothing else is needed: the real servers are part of the binary. Each answers with a line naming itself, so you can watch the scheduler spread requests. The director listens on 127.0.0.1:PORT, the real servers on the ports after it.

            The director also serves IPTV on 127.0.0.1:IPTV-PORT (round robin over two swiftvs iptv replicas on the two ports after it, each playing the built-in channel 'demo'): open http://127.0.0.1:8090/ in a browser with native HLS, or play http://127.0.0.1:8090/live/demo/index.m3u8. Both replicas serve the same segments, so the viewer does not notice which one answers.

            The director also serves the video conference on 127.0.0.1:CONFERENCE-PORT (8600): web, api and two signal replicas on the four ports after it, routed by path, each room kept on one signal replica (docs/conference.md). Open http://127.0.0.1:8600/ in two browser tabs and join the same room.

            Examples:
              swiftvs demo
              for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done
              curl -so /dev/null -w '%{size_download}\\n' \\
                   http://127.0.0.1:8080/bytes/10000000
              swiftvs demo --port 9000 --scheduler wlc --servers 5
              ffprobe http://127.0.0.1:8090/live/demo/index.m3u8

            Stop it with Ctrl-C.
            """
    )

    @Option(help: "The director's port; real servers take the ports after it.")
    var port: Int = 8080

    @Option(help: "How many built-in real servers (1-16).")
    var servers: Int = 3

    @Option(help: "The IPVS scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos.")
    var scheduler: String = "rr"

    @Option(help: "The admin API's TCP port on 127.0.0.1 (reads: status, /metrics). swiftvs adm uses the admin socket.")
    var adminPort: Int = 9100

    @Option(help: "The director's IPTV port; the two IPTV replicas take the ports after it.")
    var iptvPort: Int = 8090

    @Flag(help: "Leave out the IPTV service and its replicas.")
    var noIptv = false

    @Option(
        help: "The director's video-conference port; its web, api and two signal replicas take the four ports after it."
    )
    var conferencePort: Int = 8600

    @Flag(help: "Leave out the video-conference service and its microservices.")
    var noConference = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (1...16).contains(self.servers) else { throw ValidationError("--servers must be 1...16") }
        guard (1...65500).contains(self.port) else { throw ValidationError("--port must be 1...65500") }
        guard (1...65500).contains(self.iptvPort) else { throw ValidationError("--iptv-port must be 1...65500") }
        if !self.noIptv, abs(self.iptvPort - self.port) <= max(self.servers, 2) {
            throw ValidationError(
                "--iptv-port \(self.iptvPort) overlaps the ports of --port \(self.port) and its real servers")
        }
        if !self.noConference {
            guard (1...65500).contains(self.conferencePort) else {
                throw ValidationError("--conference-port must be 1...65500")
            }
            let conference = self.conferencePort...(self.conferencePort + 4)
            if conference.overlaps(self.port...(self.port + self.servers))
                || (!self.noIptv && conference.overlaps(self.iptvPort...(self.iptvPort + 2)))
            {
                throw ValidationError(
                    "--conference-port \(self.conferencePort) and the four ports after it overlap the other demo ports")
            }
        }
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
        var replicas: [IPTVServer] = []
        if !self.noIptv {
            for index in 1...2 {
                var config = IPTVConfig()
                config.listen = .loopback(port: self.iptvPort + index)
                config.threads = 1
                replicas.append(try IPTVServer(config: config, logger: logger))
            }
        }
        let iptvService =
            self.noIptv
            ? ""
            : """

              - name: iptv
                listen: 127.0.0.1:\(self.iptvPort)
                protocol: http
                scheduler: rr
                retries: 2
                health: {check: http, path: /healthz, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
                servers:
                  - address: 127.0.0.1:\(self.iptvPort + 1)
                  - address: 127.0.0.1:\(self.iptvPort + 2)
            """
        var conference: [ConferenceServer] = []
        if !self.noConference {
            let secret = (0..<24).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
            var quiet = logger
            quiet.logLevel = max(logger.logLevel, .warning)
            conference = ConferenceLayout.servers(port: self.conferencePort, secret: secret).map {
                ConferenceServer(options: $0, logger: quiet)
            }
        }
        let conferenceService = self.noConference ? "" : "\n" + ConferenceLayout.serviceYAML(port: self.conferencePort)
        let yaml = """
            admin: 127.0.0.1:\(self.adminPort)
            services:
              - name: demo
                listen: 127.0.0.1:\(self.port)
                protocol: http
                scheduler: \(self.scheduler)
                health: {check: http, path: /, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
                servers:
            \(realServers.map { "      - address: 127.0.0.1:\($0.port)" }.joined(separator: "\n"))\(iptvService)\(conferenceService)
            """
        let config = try ConfigLoader.load(yaml: yaml, source: "demo")
        let director = try Director(config: config, logger: logger)
        print(
            """
            SwiftVS demo
              director (http, \(self.scheduler)):  http://127.0.0.1:\(self.port)/
            \(realServers.map { "  \($0.name):             http://127.0.0.1:\($0.port)/" }.joined(separator: "\n"))

              admin API:                \(config.admin?.socket ?? "") (swiftvs adm; read-only over HTTP: http://127.0.0.1:\(self.adminPort)/api/services)
            \(self.noIptv ? "" : """
              IPTV (rr over 2 replicas): http://127.0.0.1:\(self.iptvPort)/   (web player)
                                        http://127.0.0.1:\(self.iptvPort)/live/demo/index.m3u8
              IPTV replicas:            http://127.0.0.1:\(self.iptvPort + 1)/  http://127.0.0.1:\(self.iptvPort + 2)/
            """)\(self.noConference ? "" : """

              video conference:         http://127.0.0.1:\(self.conferencePort)/   (open it in two tabs, join one room)
                web, api, 2 × signal:   127.0.0.1:\(self.conferencePort + 1)-\(self.conferencePort + 4) (rooms kept whole by persistence {key: hash})
            """)

            Try:  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:\(self.port)/; done
                  swiftvs adm list
            Stop: Ctrl-C
            """)
        let group = ServiceGroup(
            configuration: .init(
                services: replicas.flatMap { $0.services.map { .init(service: $0) } }
                    + conference.map { .init(service: $0) } + [
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
