import SwiftVSConference
import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SwiftVSBench
import SwiftVSCore

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a server or a director: throughput, request loss, CPU utilization and response time.",
        discussion: """
            The four figures the IPTV study judged its LVS cluster by, with the load models of wrk/JMeter (a fixed \
            number of users) and httperf/wrk2 (a fixed arrival rate).

            Examples:

              swiftvs bench http http://127.0.0.1:8080/ -c 64 -d 10s
              swiftvs bench http http://127.0.0.1:8080/ --rate 3000 --close -d 30s --watch swiftvs --html report.html
              swiftvs bench scenario scenarios/interruption.yaml --json out.json
            """,
        subcommands: [
            BenchHTTPCommand.self, BenchHLSCommand.self, BenchConferenceCommand.self, BenchScenarioCommand.self,
        ]
    )
}

/// Parses a duration option (`10`, `10s`, `500ms`, `2m`).
struct DurationArgument: ExpressibleByArgument {
    let seconds: Double
    init?(argument: String) {
        guard let seconds = BenchFormat.parseDuration(argument), seconds > 0 else { return nil }
        self.seconds = seconds
    }
    init(seconds: Double) { self.seconds = seconds }
    var defaultValueDescription: String { BenchFormat.number(self.seconds) + "s" }
}

struct ReportOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Write the full report as JSON.", valueName: "FILE"))
    var json: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Write a self-contained HTML report with SVG charts (throughput, p99, CPU over time; latency percentiles).",
            valueName: "FILE"))
    var html: String?

    @Flag(name: .long, help: "No live progress line.")
    var quiet = false
}

struct BenchHTTPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Load an HTTP/1.1 server with a fixed number of users or a fixed request rate.",
        discussion: """
            Closed loop (default): --connections users, each sending its next request as soon as the last is answered \
            (as wrk and JMeter threads). Open loop (--rate): requests are due at a fixed rate whatever the server does \
            (as httperf --rate and wrk2); a request that waits for a free connection is timed from when it was due, \
            so the latency figures are corrected for coordinated omission.

            Loss % = failed / (succeeded + failed), by cause: connect refused, connect timeout, reset/closed, \
            response timeout, non-2xx/3xx, bad response, and (open loop) not sent because no connection was free \
            for a whole --timeout. Response time percentiles come from an HdrHistogram (1 µs to 1 h, 3 digits). \
            CPU is read from /proc every second for each --watch process (100% = one core) and for the machine \
            (100% = all cores); the bench's own CPU is always shown.

            Several URLs make a mix; give a weight after '@' (http://host/a@3 http://host/b@1).

            Examples:

              wrk-like:      swiftvs bench http http://127.0.0.1:8080/ -c 64 -d 10s
              httperf-like:  swiftvs bench http http://127.0.0.1:8080/ --rate 3000 --close -d 30s
              a mix, JSON:   swiftvs bench http http://127.0.0.1:8080/live.m3u8@4 http://127.0.0.1:8080/seg.ts@1 \\
                               -c 100 -n 100000 --json out.json
              watch CPU:     swiftvs bench http http://127.0.0.1:8080/ --watch swiftvs --watch nginx --html r.html
            """
    )

    @Argument(help: ArgumentHelp("One or more http:// URLs, each optionally followed by @WEIGHT.", valueName: "URL"))
    var urls: [String]

    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Closed loop: users (connections). Open loop: the most connections open at once [default: 64, or 1000 with --close].",
            valueName: "N"))
    var connections: Int?

    @Option(name: [.short, .long], help: "How long to send requests.")
    var duration: DurationArgument = DurationArgument(seconds: 10)

    @Option(
        name: [.customShort("n"), .long],
        help: ArgumentHelp(
            "Stop after this many requests (whichever of this and --duration comes first).", valueName: "N"))
    var requests: Int?

    @Option(name: .long, help: ArgumentHelp("Open loop: requests per second, evenly spaced.", valueName: "PER_SECOND"))
    var rate: Double?

    @Flag(name: .long, help: "One request per connection (Connection: close), as httperf --num-calls 1.")
    var close = false

    @Option(name: [.short, .long], help: "HTTP method.")
    var method = "GET"

    @Option(
        name: [.customShort("H"), .long],
        help: ArgumentHelp(
            "A request header, 'Name: value' (repeatable).",
            valueName: "HEADER"))
    var header: [String] = []

    @Option(name: .long, help: ArgumentHelp("Request body.", valueName: "TEXT"))
    var body: String?

    @Option(name: .long, help: ArgumentHelp("Request body from a file.", valueName: "FILE"))
    var bodyFile: String?

    @Option(name: .long, help: "Time allowed to open a TCP connection.")
    var connectTimeout: DurationArgument = DurationArgument(seconds: 3)

    @Option(name: .long, help: "Time allowed from sending a request to its last response byte.")
    var timeout: DurationArgument = DurationArgument(seconds: 5)

    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Event loops (threads) generating load [default: cores].",
            valueName: "N"))
    var threads: Int?

    @Option(name: .long, help: "Width of a timeline bucket (the live line and the charts).")
    var interval: DurationArgument = DurationArgument(seconds: 1)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Sample the CPU of this process, by PID or command name (repeatable; a name sums all its processes).",
            valueName: "PID|NAME"))
    var watch: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read a director's autoscaler every second (its admin API's /api/scale; $SWIFTVS_ADMIN_TOKEN if it has "
                + "a token): replicas and decisions go in the report and its charts.", valueName: "HOST:PORT"))
    var replicasFrom: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also write every request's outcome as a JTL CSV (JMeter's result format, with a header row), for "
                + "JMeter's tools.", valueName: "FILE"))
    var jtl: String?

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if self.body != nil && self.bodyFile != nil { throw ValidationError("give --body or --body-file, not both") }
    }

    func makeSpec() throws -> LoadSpec {
        var targets: [BenchTarget] = []
        for url in self.urls {
            do { targets.append(try BenchTarget.parse(url)) } catch { throw ValidationError(error.description) }
        }
        var spec = LoadSpec(targets: targets)
        if let rate = self.rate { spec.model = .open(ratePerSecond: rate) }
        spec.keepAlive = !self.close
        spec.connections = self.connections ?? (self.rate != nil && self.close ? 1000 : 64)
        spec.duration = self.duration.seconds
        spec.requests = self.requests
        spec.method = self.method.uppercased()
        for header in self.header {
            guard let colon = header.firstIndex(of: ":") else {
                throw ValidationError("--header '\(header)': expected 'Name: value'")
            }
            spec.headers.append(
                (
                    String(header[..<colon]).trimmingCharacters(in: .whitespaces),
                    String(header[header.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                ))
        }
        if let body = self.body { spec.body = Array(body.utf8) }
        if let path = self.bodyFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--body-file \(path): cannot read the file")
            }
            spec.body = Array(data)
        }
        spec.connectTimeout = self.connectTimeout.seconds
        spec.responseTimeout = self.timeout.seconds
        spec.threads = self.threads ?? System.coreCount
        spec.interval = self.interval.seconds
        let problems = spec.problems()
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }
        return spec
    }

    func run() async throws {
        let spec = try self.makeSpec()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: spec.threads)
        let watch: [WatchTarget]
        do { watch = [WatchTarget.current] + (try self.watch.map(WatchTarget.parse)) } catch {
            throw ValidationError("\(error)")
        }
        let progress: (@Sendable (String) -> Void)? =
            self.report.quiet
            ? nil
            : { @Sendable line in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        let phase = LoadPhase(
            name: "http", spec: spec, group: group, watch: watch, replicasFrom: self.replicasFrom, jtl: self.jtl,
            progress: progress)
        let result: PhaseReport
        do {
            result = try await phase.run()
            try? await group.shutdownGracefully()
        } catch let error as BenchSpecError {
            try? await group.shutdownGracefully()
            throw ValidationError(error.description)
        }
        var report = BenchReport(
            title: "swiftvs bench http \(self.urls.joined(separator: " "))",
            startedAt: ReportWriter.timestamp(),
            command: CommandLine.arguments.joined(separator: " "), cores: ReportWriter.cores)
        report.phases = [result]
        print(report.text(), terminator: "")
        try ReportWriter.write(report, json: self.report.json, html: self.report.html)
    }
}

struct BenchScenarioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run a scenario: start processes, run load phases and rate sweeps, inject faults, write one report.",
        discussion: """
            A scenario file (YAML) has `vars`, `processes` (each a command and how to tell it is ready), and `steps`: \
            start, stop, kill, signal, wait, run, load (with faults at given times), sweep (find the highest rate \
            sustained under a loss limit) and compare (gain of one sweep over another, in %). See docs/bench.md.

            `${name}` in any value is replaced from `vars`; `--set name=value` overrides a var. Built in: \
            `${swiftvs}` (this executable), `${scenario_dir}` (the file's folder) and `${tmp}` (a fresh folder \
            for this run, where each process's log goes as NAME.log).

            Every process the scenario starts is stopped when it ends, also when a step fails.

            Examples:

              swiftvs bench scenario scenarios/interruption.yaml --html interruption.html
              swiftvs bench scenario scenarios/single-vs-cluster.yaml --set step_duration=3s --json out.json
              swiftvs bench scenario scenarios/interruption.yaml --check
            """
    )

    @Argument(help: ArgumentHelp("The scenario file.", valueName: "FILE"))
    var file: String

    @Option(name: .long, help: ArgumentHelp("Override a variable of the file (repeatable).", valueName: "NAME=VALUE"))
    var set: [String] = []

    @Flag(name: .long, help: "Only read and check the file; print every problem and exit 2 if there is one.")
    var check = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Folder for the processes' logs and ${tmp} [default: a new temporary folder].",
            valueName: "DIR"))
    var logs: String?

    @OptionGroup var report: ReportOptions

    func run() async throws {
        var overrides: [String: String] = [:]
        for item in self.set {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("--set '\(item)': expected NAME=VALUE")
            }
            overrides[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        guard let data = FileManager.default.contents(atPath: self.file) else {
            throw ValidationError("cannot read the scenario file '\(self.file)'")
        }
        let logDirectory: String
        if let logs = self.logs {
            logDirectory = logs
        } else {
            logDirectory = NSTemporaryDirectory() + "swiftvs-scenario-\(getpid())-\(Int(Date().timeIntervalSince1970))"
        }
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let directory = URL(fileURLWithPath: self.file).deletingLastPathComponent().path
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let builtins = ["swiftvs": executable, "scenario_dir": directory, "tmp": logDirectory]
        let scenario: Scenario
        do {
            scenario = try ScenarioLoader.load(
                yaml: String(decoding: data, as: UTF8.self), source: self.file,
                builtins: builtins, overrides: overrides,
                defaultThreads: System.coreCount)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
        if self.check {
            print("\(self.file): OK (\(scenario.processes.count) processes, \(scenario.steps.count) steps)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        let runner = ScenarioRunner(
            scenario: scenario, group: group, logDirectory: logDirectory, say: say,
            progress: self.report.quiet ? nil : say)
        var report = BenchReport(
            title: scenario.title, startedAt: ReportWriter.timestamp(),
            command: CommandLine.arguments.joined(separator: " "), cores: ReportWriter.cores)
        say("scenario \(scenario.title); logs in \(logDirectory)")
        let ok = await runner.run(into: &report)
        try? await group.shutdownGracefully()
        print(report.text(), terminator: "")
        try ReportWriter.write(report, json: self.report.json ?? scenario.json, html: self.report.html ?? scenario.html)
        if !ok { throw ExitCode(1) }
    }
}

struct BenchHLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hls",
        abstract:
            "Simulate viewers of a live HLS stream: each fetches the playlist and the newest segment every period.",
        discussion: """
            Each viewer has its own keep-alive connection. Once per period (the playlist's EXT-X-TARGETDURATION \
            unless --period is given) it fetches the live playlist, then the newest segment it has not fetched yet, \
            as a player at the live edge does; a master playlist is followed to its first variant. Viewers start \
            spread over --ramp (default: one period), so they do not all tick at once.

            Reported: playlist and segment response times, the cycle time (from the tick to the segment's last byte), \
            late cycles (longer than the period: that viewer would fall behind), stale playlists (no new segment), \
            errors by cause, and the CPU of --watch processes.

            Examples:
              swiftvs bench hls http://127.0.0.1:8090/live/demo/index.m3u8 --viewers 1000 -d 30s --watch swiftvs
              swiftvs bench hls http://127.0.0.1:8080/live/news/index.m3u8 --viewers 200 --period 2s --json v.json
            """
    )

    @Argument(help: ArgumentHelp("The live playlist (or master playlist) URL.", valueName: "URL"))
    var url: String

    @Option(help: "How many viewers.")
    var viewers: Int = 100

    @Option(name: .shortAndLong, help: "How long each viewer watches, after the ramp.")
    var duration: DurationArgument = DurationArgument(seconds: 30)

    @Option(help: "Seconds between a viewer's fetches [default: the playlist's target duration].")
    var period: DurationArgument?

    @Option(help: "Viewers start spread over this long [default: one period].")
    var ramp: DurationArgument?

    @Option(help: "Time allowed for each response.")
    var timeout: DurationArgument = DurationArgument(seconds: 10)

    @Option(
        name: .shortAndLong,
        help: ArgumentHelp("Event loops (threads) for the viewers [default: cores].", valueName: "N"))
    var threads: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Sample the CPU of this process, by PID or command name (repeatable).", valueName: "PID|NAME"))
    var watch: [String] = []

    @Option(name: .long, help: ArgumentHelp("Write the report as JSON.", valueName: "FILE"))
    var json: String?

    @Flag(name: .long, help: "No progress lines.")
    var quiet = false

    func validate() throws {
        guard (1...100_000).contains(self.viewers) else { throw ValidationError("--viewers must be 1...100000") }
        if let threads = self.threads, !(1...256).contains(threads) {
            throw ValidationError("--threads must be 1...256")
        }
    }

    func run() async throws {
        var spec: HLSViewerSpec
        do {
            spec = try HLSViewerSpec(
                url: self.url, viewers: self.viewers, duration: self.duration.seconds,
                threads: self.threads ?? System.coreCount)
        } catch { throw ValidationError(error.description) }
        spec.period = self.period?.seconds
        spec.ramp = self.ramp?.seconds
        spec.timeout = self.timeout.seconds
        let progress: (@Sendable (String) -> Void)? =
            self.quiet
            ? nil
            : { @Sendable line in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        let report: HLSViewerReport
        do {
            report = try await HLSViewerRun.run(
                spec, watch: [WatchTarget.current] + (try self.watch.map(WatchTarget.parse)), progress: progress)
        } catch let error as BenchSpecError {
            throw ValidationError(error.description)
        }
        print(report.text(), terminator: "")
        if let path = self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: path))
        }
    }
}

struct BenchConferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conference",
        abstract: "Load conference signaling: rooms × participants over WebSocket, joining, then chatting.",
        discussion: """
            Participants join over --ramp (spread evenly), each on its own WebSocket to URL/ws?room=ROOM, and wait \
            for "joined"; then every participant sends a chat message --rate times a second, stamped with the time \
            it was sent, until the hold (--duration) ends, and reads everything its room-mates send.

            Reported: join time (connect, upgrade and join to "joined") and delivery latency (a message's send to \
            a room-mate's receipt) as percentiles, messages sent and delivered, errors by cause (connect, \
            join-timeout, the server's error codes, closes), and the CPU and memory of --watch processes, with \
            memory per connected participant. Text on stdout; --json and --html write the full report.

            Examples:
              swiftvs conference signal --listen 127.0.0.1:8621 --threads 1 &
              swiftvs bench conference ws://127.0.0.1:8621 --rooms 1000 --participants 4 --ramp 20s -d 60s \\
                  --watch PID_OF_SIGNAL --html conference.html
              swiftvs bench conference ws://127.0.0.1:8600 --rooms 200 --participants 4 --watch swiftvs   # via the director
            """
    )

    @Argument(help: ArgumentHelp("The signal service, or the director in front of it.", valueName: "ws://HOST:PORT"))
    var url: String

    @Option(help: "Rooms.")
    var rooms = 100

    @Option(help: "Participants per room.")
    var participants = 4

    @Option(help: "Joins are spread over this long.")
    var ramp: DurationArgument = DurationArgument(seconds: 10)

    @Option(name: .shortAndLong, help: "How long everyone chats once all have joined.")
    var duration: DurationArgument = DurationArgument(seconds: 30)

    @Option(help: ArgumentHelp("Chat messages per participant per second (0: join only).", valueName: "N"))
    var rate: Double = 1

    @Option(help: "Time allowed to connect and join.")
    var joinTimeout: DurationArgument = DurationArgument(seconds: 10)

    @Option(help: ArgumentHelp("Rooms are named PREFIX-0, PREFIX-1, …", valueName: "PREFIX"))
    var roomPrefix = "bench"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Sample the CPU and memory of this process, by PID or command name (repeatable).", valueName: "PID|NAME"))
    var watch: [String] = []

    @Option(name: .long, help: ArgumentHelp("Write the report as JSON.", valueName: "FILE"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("Write a self-contained HTML report with charts.", valueName: "FILE"))
    var html: String?

    @Flag(name: .long, help: "No progress lines.")
    var quiet = false

    func validate() throws {
        guard (1...100_000).contains(self.rooms) else { throw ValidationError("--rooms must be 1...100000") }
        guard (1...16).contains(self.participants) else { throw ValidationError("--participants must be 1...16") }
        guard self.rate >= 0 && self.rate <= 100 else { throw ValidationError("--rate must be 0...100") }
    }

    func run() async throws {
        var spec: ConferenceLoadSpec
        do {
            spec = try ConferenceLoadSpec(
                url: self.url, rooms: self.rooms, participants: self.participants, ramp: self.ramp.seconds,
                duration: self.duration.seconds)
        } catch { throw ValidationError(error.description) }
        spec.rate = self.rate
        spec.joinTimeout = self.joinTimeout.seconds
        guard RoomHub.validRoom("\(self.roomPrefix)-0") else {
            throw ValidationError("--room-prefix '\(self.roomPrefix)': letters, digits, '-' and '_' only")
        }
        spec.roomPrefix = self.roomPrefix
        let progress: (@Sendable (String) -> Void)? =
            self.quiet ? nil : { @Sendable line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        let watch: [WatchTarget]
        do { watch = [WatchTarget.current] + (try self.watch.map(WatchTarget.parse)) } catch {
            throw ValidationError("\(error)")
        }
        let report = await ConferenceLoad.run(spec, watch: watch, progress: progress)
        print(report.text(), terminator: "")
        if let path = self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: path))
        }
        if let path = self.html { try report.html().write(toFile: path, atomically: true, encoding: .utf8) }
        if report.joinFailed > 0 || !report.errors.isEmpty { throw ExitCode(1) }
    }
}
