import ArgumentParser

@main
struct SwiftVS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftvs",
        abstract: "SwiftVS: a load balancer for streaming services: L4/L7 virtual server, IPVS schedulers, HA.",
        discussion: """
            Examples:

            Start with the demo, which runs a director in front of three built-in real servers:

              swiftvs demo
              curl http://127.0.0.1:8080/

            Then write a config (see examples/ and docs/config.md) and run it:

              swiftvs director --check-config examples/http.yaml
              swiftvs director --config examples/http.yaml
            """,
        version: "0.1.0",
        subcommands: [
            DirectorCommand.self, AdmCommand.self, DemoCommand.self, IPTVCommand.self, BenchCommand.self,
            RealServerCommand.self, ConferenceCommand.self,
        ]
    )
}
