import SwiftVSBench
import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftVSDirector
import SwiftVSCore

/// Where the admin API is and how to get in; shared by every `adm` subcommand.
struct AdminOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The director's admin API: its Unix socket (a path) or its TCP address (host:port; writes there need "
                + "--token). Default: $SWIFTVS_ADMIN or the standard socket, \(AdminConfig.standardSocket).",
            valueName: "path|host:port"))
    var admin: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Bearer token, when the director's config sets admin.token. Default: $SWIFTVS_ADMIN_TOKEN.",
            valueName: "token"))
    var token: String?

    /// Prints `message` as swiftvs adm's error; the exit to throw.
    static func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("swiftvs adm: \(message)\n".utf8))
        return ExitCode(1)
    }

    /// Calls the admin API; prints its error and exits 1 when the call fails.
    func call(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil) async throws -> [UInt8] {
        let environment = ProcessInfo.processInfo.environment
        var target = self.admin ?? environment["SWIFTVS_ADMIN"] ?? AdminConfig.standardSocket
        let address: SocketAddress
        let hostHeader: String
        if target.hasPrefix("/") {
            // The Unix socket: who may open the file may drive the director.
            if access(target, F_OK) != 0 {
                throw Self.failure(
                    "no admin socket at \(target) (is the director running? its admin.socket, or --admin, says where)")
            }
            if access(target, W_OK) != 0 {
                throw Self.failure(
                    "permission denied on the admin socket \(target): run as its owner, or set admin.socket_mode "
                        + "(0660 lets its group in)")
            }
            address = try SocketAddress(unixDomainSocketPath: target)
            hostHeader = "localhost"
        } else {
            if target.hasPrefix("http://") { target.removeFirst("http://".count) }
            while target.hasSuffix("/") { target.removeLast() }
            let host: String
            let port: Int
            if let colon = target.lastIndex(of: ":"), let value = Int(target[target.index(after: colon)...]) {
                host = String(target[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                port = value
            } else {
                throw ValidationError(
                    "--admin must be a socket path or host:port, like /run/swiftvs/admin.sock or 127.0.0.1:9100; got '\(target)'"
                )
            }
            do {
                address = try SocketAddress(ipAddress: host == "localhost" ? "127.0.0.1" : host, port: port)
            } catch {
                throw ValidationError("--admin: '\(host)' is not an IP address")
            }
            hostHeader = target
        }
        var headers: [(String, String)] = []
        if let token = self.token ?? environment["SWIFTVS_ADMIN_TOKEN"] {
            headers.append(("Authorization", "Bearer \(token)"))
        }
        var bytes: [UInt8]?
        if method != .GET {
            // Every write is JSON (the API refuses others: a web page cannot send it across origins).
            headers.append(("Content-Type", "application/json"))
            bytes = Array(try JSONSerialization.data(withJSONObject: body ?? [:]))
        }
        let response: FetchedResponse
        do {
            response = try await HTTPFetch.fetch(
                on: MultiThreadedEventLoopGroup.singleton.next(), to: address, method: method, path: path,
                host: hostHeader, headers: headers, body: bytes, timeout: .seconds(30), maxBody: 64 << 20
            ).get()
        } catch {
            throw Self.failure(
                "cannot reach the admin API at \(target): \(error) (is the director running? --admin sets the address)")
        }
        guard (200..<300).contains(response.status) else {
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            let message = (object?["error"] as? String) ?? String(decoding: response.body, as: UTF8.self)
            throw Self.failure("\(response.status) \(response.reason): \(message)")
        }
        return response.body
    }

    /// `PATCH /api/services/SERVICE/servers/SERVER` with `body`: weight, enable and disable.
    func patchServer(_ service: String, _ server: String, _ body: [String: Any]) async throws {
        _ = try await self.call(
            .PATCH, "/api/services/\(pathComponent(service))/servers/\(pathComponent(server))", body: body)
    }

    func services() async throws -> [ServiceStatus] {
        try JSONDecoder().decode([ServiceStatus].self, from: Data(try await self.call(.GET, "/api/services")))
    }
}

/// A real server's address for a URL path.
func pathComponent(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
}

struct AdmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adm",
        abstract: "Control a running director through its admin API, as ipvsadm controls IPVS.",
        discussion: """
            Examples:
              swiftvs adm list                          services and real servers: weight, connections, health
              swiftvs adm list --stats                  totals: connections, bytes, responses by class
              swiftvs adm list --rate                   rates: connections (or requests) and bytes per second
              swiftvs adm weight web 10.0.0.11:80 0     drain a real server: no new requests, open ones finish
              swiftvs adm add web 10.0.0.14:80 --weight 2
              swiftvs adm remove web 10.0.0.14:80
              swiftvs adm disable web 10.0.0.12:80      out of rotation, health checks go on
              swiftvs adm enable web 10.0.0.12:80
              swiftvs adm reload                        read the config file again (as SIGHUP)
              swiftvs adm metrics                       the Prometheus text of /metrics
              swiftvs adm scale                         autoscaled services: replicas, metrics, decisions
              swiftvs adm scale api --max 8             new bounds for the autoscaler of 'api'

            swiftvs adm talks to the director's admin socket (admin.socket; default /run/swiftvs/admin.sock for root,
            else $XDG_RUNTIME_DIR/swiftvs/admin.sock or /tmp/swiftvs-UID/admin.sock): whoever may open that file may
            drive the director. --admin names another socket, or a TCP address (admin.listen, 127.0.0.1:9100 by
            default), where reads need nothing but writes need --token (admin.token).
            """,
        subcommands: [
            AdmList.self, AdmWeight.self, AdmAdd.self, AdmRemove.self, AdmEnable.self, AdmDisable.self, AdmReload.self,
            AdmMetrics.self, AdmHA.self, AdmScale.self,
        ],
        defaultSubcommand: AdmList.self
    )
}

struct AdmList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List virtual services and their real servers (ipvsadm -L -n).",
        discussion: """
            Columns: Weight, ActiveConn (tcp connections or http requests in flight), InActConn, State (up, down, disabled) and Why (the reason of the last health change). The service line shows its quorum state and whether the sorry server has the traffic.

            Examples:
              swiftvs adm list
              swiftvs adm list --stats
              swiftvs adm list --rate --service web
              swiftvs adm list --json
            """
    )

    @OptionGroup var options: AdminOptions
    @Flag(name: .long, help: "Totals: connections or requests, bytes in and out, responses by class, failures.")
    var stats = false
    @Flag(name: .long, help: "Rates, smoothed as ipvsadm --rate: connections or requests per second, bytes per second.")
    var rate = false
    @Flag(name: .long, help: "The admin API's JSON as it is.")
    var json = false
    @Option(name: .long, help: "Only this service.")
    var service: String?

    func run() async throws {
        if self.json {
            let path = self.service.map { "/api/services/\(pathComponent($0))" } ?? "/api/services"
            FileHandle.standardOutput.write(Data(try await self.options.call(.GET, path)))
            return
        }
        var services = try await self.options.services()
        if let name = self.service {
            services = services.filter { $0.name == name }
            if services.isEmpty {
                throw AdminOptions.failure("no virtual service named '\(name)'")
            }
        }
        print(AdmTable.render(services, stats: self.stats, rate: self.rate), terminator: "")
    }
}

/// ipvsadm-style tables.
enum AdmTable {
    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func render(_ services: [ServiceStatus], stats: Bool, rate: Bool) -> String {
        var out = ""
        if stats {
            out +=
                pad("Prot LocalAddress:Port", 34) + pad("Conns", 10) + pad("InPkts", 10) + pad("OutPkts", 10)
                + pad("InBytes", 12) + pad("OutBytes", 12)
                + pad("2xx", 9) + pad("3xx", 9) + pad("4xx", 9) + pad("5xx", 9) + pad("Fails", 7) + "Ejects\n"
            out += "  -> RemoteAddress:Port\n"
        } else if rate {
            out += pad("Prot LocalAddress:Port", 34) + pad("CPS", 10) + pad("InBPS", 12) + "OutBPS\n"
            out += "  -> RemoteAddress:Port\n"
        } else {
            out += pad("Prot LocalAddress:Port Scheduler", 34) + pad("Name", 12) + "State\n"
            out +=
                "  -> " + pad("RemoteAddress:Port", 30) + pad("Forward", 8) + pad("Weight", 7) + pad("ActiveConn", 11)
                + pad("InActConn", 10) + pad("State", 9) + "Why\n"
        }
        for service in services {
            let prot = service.proto.uppercased()
            if stats {
                let conns = service.servers.reduce(0) { $0 + $1.total }
                let sum = { (key: KeyPath<ServerStatus, Int>) in service.servers.reduce(0) { $0 + $1[keyPath: key] } }
                let byClass = (0..<5).map { index in service.servers.reduce(0) { $0 + $1.responses[index] } }
                // Packets: the kernel path counts them; the proxy path, which sees a byte stream, shows "-".
                let packets = { (key: KeyPath<ServerStatus, Int?>) -> String in
                    service.servers.contains { $0[keyPath: key] != nil }
                        ? "\(service.servers.reduce(0) { $0 + ($1[keyPath: key] ?? 0) })" : "-"
                }
                out +=
                    pad("\(pad(prot, 5))\(service.listen)", 34) + pad("\(conns)", 10) + pad(packets(\.packetsIn), 10)
                    + pad(packets(\.packetsOut), 10) + pad("\(sum(\.bytesIn))", 12)
                    + pad("\(sum(\.bytesOut))", 12) + pad("\(byClass[1])", 9) + pad("\(byClass[2])", 9)
                    + pad("\(byClass[3])", 9) + pad("\(byClass[4])", 9) + pad("\(sum(\.failures))", 7)
                    + "\(sum(\.ejections))\n"
                for server in service.servers {
                    out +=
                        pad("  -> \(server.address)", 34) + pad("\(server.total)", 10)
                        + pad(server.packetsIn.map(String.init) ?? "-", 10)
                        + pad(server.packetsOut.map(String.init) ?? "-", 10) + pad("\(server.bytesIn)", 12)
                        + pad("\(server.bytesOut)", 12) + pad("\(server.responses[1])", 9)
                        + pad("\(server.responses[2])", 9) + pad("\(server.responses[3])", 9)
                        + pad("\(server.responses[4])", 9) + pad("\(server.failures)", 7) + "\(server.ejections)\n"
                }
            } else if rate {
                let cps = service.servers.reduce(0.0) { $0 + $1.cps }
                let inBps = service.servers.reduce(0.0) { $0 + $1.inBps }
                let outBps = service.servers.reduce(0.0) { $0 + $1.outBps }
                out +=
                    pad("\(pad(prot, 5))\(service.listen)", 34) + pad(Self.number(cps), 10)
                    + pad(Self.number(inBps), 12)
                    + Self.number(outBps) + "\n"
                for server in service.servers {
                    out +=
                        pad("  -> \(server.address)", 34) + pad(Self.number(server.cps), 10)
                        + pad(Self.number(server.inBps), 12) + Self.number(server.outBps) + "\n"
                }
            } else {
                var state = service.state.rawValue
                if service.state == .down {
                    state += " (healthy weight \(service.healthyWeight) < quorum \(service.quorum))"
                }
                if service.sorryActive, let sorry = service.sorry { state += ", sorry server \(sorry) serving" }
                out +=
                    pad("\(pad(prot, 5))\(service.listen) \(service.scheduler)", 34) + pad(service.name, 12)
                    + state + "\n"
                for server in service.servers {
                    let since = server.sinceSeconds > 0 ? " (\(Self.duration(server.sinceSeconds)) ago)" : ""
                    out +=
                        "  -> " + pad(server.address, 30) + pad(service.forward == "nat" ? "Masq" : "Proxy", 8)
                        + pad("\(server.weight)", 7)
                        + pad("\(server.active)", 11) + pad("\(server.inactive)", 10) + pad(server.state.rawValue, 9)
                        + server.reason + since + "\n"
                }
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 120 { return "\(Int(seconds))s" }
        if seconds < 7200 { return "\(Int(seconds / 60))m" }
        return "\(Int(seconds / 3600))h"
    }
}

struct AdmWeight: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weight",
        abstract: "Set a real server's weight; 0 drains it (no new requests, open ones finish).",
        discussion: "Example:\n  swiftvs adm weight web 10.0.0.11:80 0"
    )
    @OptionGroup var options: AdminOptions
    @Argument(help: "The virtual service's name.") var service: String
    @Argument(help: "The real server, ip:port.") var server: String
    @Argument(help: "\(RealServerConfig.weights); 0 drains (no new connections, open ones finish).") var weight: Int

    func run() async throws {
        try await self.options.patchServer(self.service, self.server, ["weight": self.weight])
        print("\(self.service) \(self.server): weight \(self.weight)\(self.weight == 0 ? " (draining)" : "")")
    }
}

struct AdmAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a real server to a running virtual service.",
        discussion: "Example:\n  swiftvs adm add web 10.0.0.14:80 --weight 2"
    )
    @OptionGroup var options: AdminOptions
    @Argument(help: "The virtual service's name.") var service: String
    @Argument(help: "The real server, ip:port.") var server: String
    @Option(help: "\(RealServerConfig.weights).") var weight = 1
    @Option(help: "Upper connection threshold (0 = none).") var upper = 0
    @Option(help: "Lower connection threshold (0 = three quarters of upper).") var lower = 0

    func run() async throws {
        _ = try await self.options.call(
            .POST, "/api/services/\(pathComponent(self.service))/servers",
            body: [
                "address": self.server, "weight": self.weight, "upper": self.upper, "lower": self.lower,
            ])
        print("\(self.service): added \(self.server) with weight \(self.weight)")
    }
}

struct AdmRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a real server; its open connections finish. (Drain first with weight 0 for no surprises.)",
        discussion: "Example:\n  swiftvs adm remove web 10.0.0.14:80"
    )
    @OptionGroup var options: AdminOptions
    @Argument(help: "The virtual service's name.") var service: String
    @Argument(help: "The real server, ip:port.") var server: String

    func run() async throws {
        _ = try await self.options.call(
            .DELETE, "/api/services/\(pathComponent(self.service))/servers/\(pathComponent(self.server))")
        print("\(self.service): removed \(self.server)")
    }
}

struct AdmEnable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Put a disabled real server back in rotation.",
        discussion: "Example:\n  swiftvs adm enable web 10.0.0.12:80"
    )
    @OptionGroup var options: AdminOptions
    @Argument(help: "The virtual service's name.") var service: String
    @Argument(help: "The real server, ip:port.") var server: String

    func run() async throws {
        try await self.options.patchServer(self.service, self.server, ["enabled": true])
        print("\(self.service) \(self.server): enabled")
    }
}

struct AdmDisable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Take a real server out of rotation (maintenance); its health checks go on.",
        discussion: "Example:\n  swiftvs adm disable web 10.0.0.12:80"
    )
    @OptionGroup var options: AdminOptions
    @Argument(help: "The virtual service's name.") var service: String
    @Argument(help: "The real server, ip:port.") var server: String

    func run() async throws {
        try await self.options.patchServer(self.service, self.server, ["enabled": false])
        print("\(self.service) \(self.server): disabled")
    }
}

struct AdmReload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Make the director read its config file again (as SIGHUP); an invalid file is refused with its errors.",
        discussion: "Example:\n  swiftvs adm reload"
    )
    @OptionGroup var options: AdminOptions

    func run() async throws {
        let body = try await self.options.call(.POST, "/api/reload")
        let summary = try JSONDecoder().decode(Director.ReloadSummary.self, from: Data(body))
        print("reloaded: \(summary)")
        for warning in summary.warnings { print("warning: \(warning)") }
    }
}

struct AdmMetrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print the director's Prometheus metrics (GET /metrics).",
        discussion: "Example:\n  swiftvs adm metrics | grep swiftvs_server_up"
    )
    @OptionGroup var options: AdminOptions

    func run() async throws {
        FileHandle.standardOutput.write(Data(try await self.options.call(.GET, "/metrics")))
    }
}

struct AdmHA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha",
        abstract: "Show the director's VRRP instances: state, priority, current master, last transition, adverts.",
        discussion: """
            Example:
              swiftvs adm ha
              # Instance  VRID State   Prio Master        Since   Adverts out/in Bad Last transition
              # front     51   MASTER  150  10.200.0.2    12.3s   123/0          0   BACKUP -> MASTER: no advertisement ...
            """
    )
    @OptionGroup var options: AdminOptions

    @Flag(name: .long, help: "The raw JSON of GET /api/ha.")
    var json = false

    func run() async throws {
        let body = try await self.options.call(.GET, "/api/ha")
        if self.json {
            FileHandle.standardOutput.write(Data(body))
            return
        }
        let status = try JSONDecoder().decode(HAStatus.self, from: Data(body))
        var lines = [
            "Transport \(status.transport)"
                + (status.trackers.isEmpty ? "" : "; tracking: \(status.trackers.joined(separator: ", "))")
        ]
        lines.append(
            "Instance        VRID State     Prio    Master           Since    Adverts out/in  Bad  Last transition")
        for i in status.instances {
            let prio = i.priority == i.configuredPriority ? "\(i.priority)" : "\(i.priority)/\(i.configuredPriority)"
            var line = BenchFormat.pad(i.name, 15) + " "
            line += BenchFormat.pad("\(i.vrid)", 4) + " "
            line += BenchFormat.pad(i.state.rawValue, 9) + " "
            line += BenchFormat.pad(prio, 7) + " "
            line += BenchFormat.pad(i.master ?? "-", 16) + " "
            line += BenchFormat.pad(String(format: "%.1fs", i.secondsInState), 8) + " "
            line += BenchFormat.pad("\(i.advertsSent)/\(i.advertsReceived)", 15) + " "
            line += BenchFormat.pad("\(i.badPackets)", 4) + " "
            line += [i.lastTransition, i.lastTransitionReason].compactMap { $0 }.joined(separator: ": ")
            lines.append(line)
            if let bad = i.lastBadPacket { lines.append("    last bad packet: \(bad)") }
            if !i.virtualIPs.isEmpty {
                lines.append("    virtual IPs: \(i.virtualIPs.joined(separator: ", ")) on \(i.interface ?? "-")")
            }
        }
        if let sync = status.sync {
            lines.append(
                "Persistence sync: listen \(sync.listen), peers \(sync.peers.joined(separator: ", ")) "
                    + "(\(sync.connectedPeers) connected); sent \(sync.sent) (\(sync.resyncs) full resyncs), received \(sync.received)"
                    + (sync.lastLagMs.map { String(format: ", last lag %.1f ms", $0) } ?? ""))
        }
        print(lines.joined(separator: "\n"))
    }
}

struct AdmScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Show autoscaled services (replicas, metrics, HPA's conditions, decisions), or change their bounds.",
        discussion: """
            Examples:
              swiftvs adm scale                 every autoscaled service
              swiftvs adm scale api             one of them
              swiftvs adm scale api --max 8     at most 8 replicas from now on (until a reload or restart)
              swiftvs adm scale api --min 2 --max 4

            Replica states: starting (its health check has not passed), warming (in rotation, within slow_start),
            serving, draining (weight 0, its requests finish), stopping (SIGTERM sent), killing (SIGKILL sent),
            crashed (exited on its own; restarted after a back-off that doubles while it keeps failing).
            """
    )
    @OptionGroup var options: AdminOptions

    @Argument(help: "The service; every autoscaled service when left out.")
    var service: String?

    @Option(name: .long, help: "New minimum number of replicas.")
    var min: Int?

    @Option(name: .long, help: "New maximum number of replicas.")
    var max: Int?

    @Flag(name: .long, help: "The raw JSON of GET /api/scale.")
    var json = false

    func run() async throws {
        var statuses: [ScaleStatus]
        if self.min != nil || self.max != nil {
            guard let service = self.service else { throw ValidationError("--min and --max need the service's name") }
            var body: [String: Any] = [:]
            if let min = self.min { body["min"] = min }
            if let max = self.max { body["max"] = max }
            let reply = try await self.options.call(.PATCH, "/api/scale/\(pathComponent(service))", body: body)
            statuses = [try JSONDecoder().decode(ScaleStatus.self, from: Data(reply))]
        } else if let service = self.service {
            let reply = try await self.options.call(.GET, "/api/scale/\(pathComponent(service))")
            if self.json { return FileHandle.standardOutput.write(Data(reply)) }
            statuses = [try JSONDecoder().decode(ScaleStatus.self, from: Data(reply))]
        } else {
            let reply = try await self.options.call(.GET, "/api/scale")
            if self.json { return FileHandle.standardOutput.write(Data(reply)) }
            statuses = try JSONDecoder().decode([ScaleStatus].self, from: Data(reply))
        }
        if statuses.isEmpty {
            print("No service has autoscale.")
            return
        }
        print(statuses.map(Self.render).joined(separator: "\n\n"))
    }

    static func render(_ s: ScaleStatus) -> String {
        var lines = [
            "\(s.service): \(s.current) replicas (\(s.ready) ready), desired \(s.desired), min \(s.min), max \(s.max), "
                + "every \(AdmTable.duration(s.syncPeriodSeconds))"
                + (s.queueLength > 0 ? ", \(s.queueLength) queued" : "")
        ]
        for metric in s.metrics {
            let current = metric.current.map { String(format: "%g", $0) } ?? "<unknown>"
            lines.append(
                "  \(BenchFormat.pad(metric.name, 20)) \(metric.type): \(current) / \(metric.target)"
                    + (metric.proposal.map { " → \($0) replicas" } ?? "") + (metric.error.map { " (\($0))" } ?? ""))
        }
        for (name, condition) in [
            ("AbleToScale", s.ableToScale), ("ScalingActive", s.scalingActive), ("ScalingLimited", s.scalingLimited),
        ] {
            guard let condition else { continue }
            lines.append(
                "  \(BenchFormat.pad(name, 15)) \(condition.status ? "True " : "False") \(condition.reason): \(condition.message)"
            )
        }
        if !s.replicas.isEmpty {
            lines.append("  Replica               PID      State     Up       CPU     Memory  Req/s   Active  p90")
            for r in s.replicas {
                var line =
                    "  " + BenchFormat.pad(r.address, 21) + " " + BenchFormat.pad(r.pid.map(String.init) ?? "-", 8)
                line += " " + BenchFormat.pad(r.state, 9) + " " + BenchFormat.pad(AdmTable.duration(r.upSeconds), 8)
                line += " " + BenchFormat.pad(r.cpuMillis.map { "\($0)m" } ?? "-", 7)
                line += " " + BenchFormat.pad(r.memoryBytes.map { "\($0 >> 20)Mi" } ?? "-", 7)
                line += " " + BenchFormat.pad(r.requestsPerSecond.map { String(format: "%.1f", $0) } ?? "-", 7)
                line += " " + BenchFormat.pad(r.concurrency.map { String(Int($0)) } ?? "-", 7)
                line += " " + (r.p90Ms.map { String(format: "%.1fms", $0) } ?? "-")
                if !r.detail.isEmpty { line += "  (\(r.detail))" }
                lines.append(line)
            }
        }
        if !s.decisions.isEmpty {
            lines.append("  Last decisions:")
            for d in s.decisions.prefix(5) {
                lines.append("    \(AdmTable.duration(d.secondsAgo)) ago: \(d.from) → \(d.to): \(d.reason)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
