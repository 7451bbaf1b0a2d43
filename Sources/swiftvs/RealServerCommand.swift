import SwiftVSConfigKit
import ArgumentParser
import NIOCore
import NIOPosix
import SwiftVSBench
import SwiftVSCore
import SwiftVSDirector
import UnixSignals

struct RealServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "realserver",
        abstract: "Run one built-in HTTP real server (the demo's), for benchmarks and scenarios.",
        discussion: """
            Answers every request with a line naming itself; /bytes/N streams N bytes. With --workers and \
            --service-time it emulates a server bound by its worker pool (or database) rather than by this \
            machine's CPU: each request holds one of N workers for the service time, so the server sustains at \
            most N / service-time requests per second, however fast the machine is. That is how \
            scenarios/single-vs-cluster.yaml gives each real server a capacity of its own on one small machine.

            Examples:

              swiftvs realserver --listen 127.0.0.1:9001
              swiftvs realserver --listen 127.0.0.1:9001 --workers 4 --service-time 2ms   # at most 2000 req/s
              swiftvs realserver --listen 127.0.0.1:9001 --cpu-time 20ms    # 20 ms of CPU per request: 50 req/s a core

            Stops on SIGTERM or Ctrl-C.
            """
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:9001"

    @Option(help: "Name in responses and in the X-Real-Server header [default: the listen address].")
    var name: String?

    @Option(help: ArgumentHelp("Emulated workers (with --service-time).", valueName: "N"))
    var workers: Int?

    @Option(help: ArgumentHelp("Time each request holds a worker (with --workers), e.g. 2ms.", valueName: "DURATION"))
    var serviceTime: DurationArgument?

    @Option(
        help: ArgumentHelp(
            "CPU time each request burns before it is answered, e.g. 20ms (a CPU-bound application, for the "
                + "autoscaler's cpu metric).", valueName: "DURATION"))
    var cpuTime: DurationArgument?

    @Option(help: ArgumentHelp("Event loops [default: 1].", valueName: "N"))
    var threads = 1

    func validate() throws {
        if (self.workers == nil) != (self.serviceTime == nil) {
            throw ValidationError("--workers and --service-time go together")
        }
        if let workers = self.workers, !(1...100_000).contains(workers) {
            throw ValidationError("--workers must be 1...100000")
        }
        if self.workers != nil && self.threads != 1 {
            throw ValidationError("--workers needs --threads 1 (the emulated workers share one event loop)")
        }
        guard (1...64).contains(self.threads) else { throw ValidationError("--threads must be 1...64") }
        do { _ = try Endpoint(parsing: self.listen) } catch { throw ValidationError("--listen: \(error)") }
    }

    func run() async throws {
        let endpoint = try Endpoint(parsing: self.listen)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.threads)
        let capacity = self.workers.flatMap { w in self.serviceTime.map { (workers: w, serviceTime: $0.seconds) } }
        let server = try await DemoRealServer.start(
            name: self.name ?? endpoint.description, host: endpoint.host,
            port: endpoint.port, group: group, capacity: capacity, cpuTime: self.cpuTime?.seconds ?? 0)
        print(
            "real server \(server.name) listening on http://\(endpoint)/"
                + (capacity.map { " (\($0.workers) workers × \(BenchFormat.ms($0.serviceTime * 1000)) ms)" } ?? ""))
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        for await _ in signals { break }
        await server.stop()
        try? await group.shutdownGracefully()
    }
}
