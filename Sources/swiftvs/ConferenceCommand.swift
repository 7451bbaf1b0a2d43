import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwiftVSConfigKit
import SwiftVSConference
import SwiftVSSystem

struct ConferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conference",
        abstract: "Run the WebRTC video-conference service: web client, room api and WebSocket signaling.",
        discussion: """
            With no role, all three run in one process on one port (the embedded default): open \
            http://127.0.0.1:8600/ in two browser tabs and join the same room. With a role, the process serves \
            that part alone, so each scales by its own replicas behind the director, as \
            examples/conference.yaml runs them:

              web      the browser client (join page, video grid, chat, participants), cacheable
              api      rooms (POST/GET /api/rooms), ICE servers with TURN credentials (/api/ice), /healthz
              signal   WebSocket signaling on /ws?room=ROOM: join/leave, offer/answer/ice relay, presence,
                       chat with history, mute/camera/screen/hand state, password, lobby, kick, end

            Examples:

              swiftvs conference                                   # everything on 127.0.0.1:8600
              swiftvs conference api --listen 127.0.0.1:8611 --secret s3cret
              swiftvs conference signal --listen 127.0.0.1:8621 --api http://127.0.0.1:8611 --secret s3cret
              swiftvs conference api --listen 127.0.0.1:8612 --registry http://127.0.0.1:8611 --secret s3cret
              swiftvs conference --turn turn:turn.example.org:3478 --turn-secret KEY   # coturn use-auth-secret

            Rooms hold at most --room-limit participants (6): the client is a mesh, where every participant \
            sends its video to every other, so each browser's uplink and CPU bound the room. docs/conference.md \
            has the protocol, every option and the TURN set-up. Stops on SIGTERM or Ctrl-C; the signal role \
            first closes its WebSockets with 1001 so that clients reconnect to another replica.
            """
    )

    enum Role: String, ExpressibleByArgument, CaseIterable {
        case web, api, signal
    }

    @Argument(help: "The role to run alone: web, api or signal [default: all three].")
    var role: Role?

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:8600"

    @Option(
        help: ArgumentHelp(
            "The api service (signal role): where room passwords, host keys and lobbies are looked up and "
                + "participant counts reported. Without it, a room is made by its first joiner.",
            valueName: "URL"))
    var api: String?

    @Option(
        help: ArgumentHelp(
            "api role: keep no rooms here but at this api (http://IP:PORT), which holds them for every api replica; "
                + "/api/ice is still answered here.", valueName: "URL"))
    var registry: String?

    @Option(
        help: ArgumentHelp(
            "Shared secret between api and signal replicas (or set SWIFTVS_CONFERENCE_SECRET).", valueName: "TEXT"))
    var secret: String?

    @Option(help: ArgumentHelp("Participants per room (mesh video; 2...16).", valueName: "N"))
    var roomLimit = 6

    @Option(help: ArgumentHelp("Longest signaling message, bytes (1024...1048576).", valueName: "BYTES"))
    var maxMessage = 65_536

    @Option(
        help: ArgumentHelp(
            "How long a dropped participant keeps their place and identity for a reconnect.", valueName: "DURATION"))
    var grace: DurationArgument = DurationArgument(seconds: 20)

    @Option(help: ArgumentHelp("Chat messages kept for late joiners.", valueName: "N"))
    var chatHistory = 50

    @Option(
        help: ArgumentHelp(
            "Messages per second one connection may send on average (more: closed with 1008).", valueName: "N"))
    var messageRate: Double = 50

    @Option(help: ArgumentHelp("The burst a connection may send above --message-rate.", valueName: "N"))
    var messageBurst: Double = 200

    @Option(help: ArgumentHelp("Failed joins one connection may make before it is closed.", valueName: "N"))
    var failedJoins = 5

    @Option(
        help: ArgumentHelp(
            "A STUN server for browsers, e.g. stun:stun.example.org:3478 (repeatable).", valueName: "URL"))
    var stun: [String] = []

    @Option(
        help: ArgumentHelp(
            "A TURN server, e.g. turn:turn.example.org:3478?transport=udp (repeatable).", valueName: "URL"))
    var turn: [String] = []

    @Option(
        help: ArgumentHelp(
            "coturn's static-auth-secret: /api/ice hands out time-limited credentials (use-auth-secret).",
            valueName: "TEXT"))
    var turnSecret: String?

    @Option(help: ArgumentHelp("How long TURN credentials last.", valueName: "DURATION"))
    var turnTtl: DurationArgument = DurationArgument(seconds: 86_400)

    @Option(help: ArgumentHelp("Event loops (threads) [default: one per core].", valueName: "N"))
    var threads: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    func validate() throws {
        do { _ = try Endpoint(parsing: self.listen) } catch { throw ValidationError("--listen: \(error)") }
        guard (2...16).contains(self.roomLimit) else { throw ValidationError("--room-limit must be 2...16") }
        guard (1024...1_048_576).contains(self.maxMessage) else {
            throw ValidationError("--max-message must be 1024...1048576")
        }
        if let threads = self.threads, !(1...64).contains(threads) { throw ValidationError("--threads must be 1...64") }
        guard (1...1_000_000).contains(self.messageRate) else {
            throw ValidationError("--message-rate must be 1...1000000")
        }
        guard (1...1_000_000).contains(self.messageBurst) else {
            throw ValidationError("--message-burst must be 1...1000000")
        }
        guard (1...1_000_000).contains(self.failedJoins) else {
            throw ValidationError("--failed-joins must be 1...1000000")
        }
        guard (0...10_000).contains(self.chatHistory) else { throw ValidationError("--chat-history must be 0...10000") }
        /// `--NAME URL` must be http://IP:PORT; `what` says what it names.
        func checkHTTP(_ url: String?, _ name: String, _ what: String) throws {
            guard let url else { return }
            guard url.hasPrefix("http://"),
                (try? Endpoint(parsing: String(url.dropFirst(7).prefix { $0 != "/" }))) != nil
            else { throw ValidationError("--\(name) '\(url)': expected http://IP:PORT (\(what))") }
        }
        try checkHTTP(self.api, "api", "the director's address or an api replica")
        try checkHTTP(self.registry, "registry", "the api that holds the rooms")
        if self.api != nil && self.role != .signal && self.role != nil {
            throw ValidationError("--api is for the signal role (it looks rooms up there)")
        }
        if self.registry != nil && self.role != .api { throw ValidationError("--registry is for the api role") }
        for url in self.stun where !url.hasPrefix("stun:") && !url.hasPrefix("stuns:") {
            throw ValidationError("--stun '\(url)': expected stun:HOST:PORT")
        }
        for url in self.turn where !url.hasPrefix("turn:") && !url.hasPrefix("turns:") {
            throw ValidationError("--turn '\(url)': expected turn:HOST:PORT or turns:HOST:PORT")
        }
        if self.turnSecret != nil && self.turn.isEmpty {
            throw ValidationError("--turn-secret needs at least one --turn server")
        }
    }

    func run() async throws {
        let endpoint = try Endpoint(parsing: self.listen)
        var options = ConferenceOptions()
        options.roles =
            self.role.map {
                switch $0 {
                case .web: return .web
                case .api: return .api
                case .signal: return .signal
                }
            } ?? .all
        options.host = endpoint.host
        options.port = endpoint.port
        options.apiURL = self.api
        options.registryURL = self.registry
        options.secret = self.secret ?? ProcessInfo.processInfo.environment["SWIFTVS_CONFERENCE_SECRET"]
        options.hub.roomLimit = self.roomLimit
        options.hub.maxMessageBytes = self.maxMessage
        options.hub.grace = self.grace.seconds
        options.hub.chatHistory = self.chatHistory
        options.hub.messageRate = self.messageRate
        options.hub.messageBurst = self.messageBurst
        options.hub.failedJoins = self.failedJoins
        options.stun = self.stun
        options.turn = self.turn
        options.turnSecret = self.turnSecret
        options.turnTTL = Int(self.turnTtl.seconds)
        options.threads = self.threads
        if let code = ListenFailure.probe(host: endpoint.host, port: endpoint.port) {
            FileHandle.standardError.write(
                Data(
                    "swiftvs conference: \(ListenFailure.describe(endpoint.description, errno: code, fallback: ""))\n"
                        .utf8))
            throw ExitCode(2)
        }
        let logger = makeLogger(label: "swiftvs.conference", level: self.logLevel)
        let roles = options.roles
        let server = ConferenceServer(options: options, logger: logger) { port in
            let base = "http://\(endpoint.host):\(port)"
            print(
                roles == .all
                    ? "SwiftVS conference on \(base)/ (web, api and signaling); open it in two tabs and join one room"
                    : "SwiftVS conference \(roles.names) on \(base)")
            SystemdNotify.ready(status: "serving \(roles.names)")
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
