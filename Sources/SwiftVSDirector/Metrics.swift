import SwiftVSCore

/// The director's Prometheus exposition at `/metrics`, read from the same atomics the data plane counts with (the
/// hot path pays nothing extra for metrics) and rendered when scraped.
enum Metrics {
    static func text(_ director: Director) -> String {
        let services = director.services.map { $0.status() }
        var out = PrometheusText()
        func perService(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ value: (ServiceStatus) -> Double)
        {
            out.family(name, kind, help: help, services.map { ([("service", $0.name)], value($0)) })
        }
        func perServer(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ value: (ServerStatus) -> Double) {
            out.family(
                name, kind, help: help,
                services.flatMap { service in
                    service.servers.map { ([("service", service.name), ("server", $0.address)], value($0)) }
                })
        }
        perService("swiftvs_service_up", .gauge, "1 while the service's healthy weight meets its quorum.") {
            $0.state == .up ? 1 : 0
        }
        perService("swiftvs_service_healthy_weight", .gauge, "Weight of the real servers in rotation.") {
            Double($0.healthyWeight)
        }
        perService("swiftvs_service_sorry_active", .gauge, "1 while the sorry server takes the traffic.") {
            $0.sorryActive ? 1 : 0
        }
        perService("swiftvs_service_connections_total", .counter, "Client connections accepted.") {
            Double($0.connections)
        }
        perService("swiftvs_service_no_server_total", .counter, "Requests or connections that found no real server.") {
            Double($0.noServer)
        }
        perServer("swiftvs_server_up", .gauge, "1 while the real server is in rotation (healthy and enabled).") {
            $0.state == .up ? 1 : 0
        }
        perServer("swiftvs_server_weight", .gauge, "The real server's weight.") { Double($0.weight) }
        perServer("swiftvs_server_active", .gauge, "Connections (tcp) or requests (http) in flight.") {
            Double($0.active)
        }
        perServer("swiftvs_server_requests_total", .counter, "Connections (tcp) or requests (http) sent here.") {
            Double($0.total)
        }
        out.family(
            "swiftvs_server_responses_total", .counter, help: "http responses by status class.",
            services.flatMap { service in
                service.servers.flatMap { server in
                    server.responses.enumerated().map { index, count in
                        (
                            [("service", service.name), ("server", server.address), ("code", "\(index + 1)xx")],
                            Double(count)
                        )
                    }
                }
            })
        perServer("swiftvs_server_bytes_in_total", .counter, "Bytes from clients to the real server (http: bodies).") {
            Double($0.bytesIn)
        }
        perServer("swiftvs_server_bytes_out_total", .counter, "Bytes from the real server to clients (http: bodies).") {
            Double($0.bytesOut)
        }
        perServer("swiftvs_server_failures_total", .counter, "Failed connects and connections lost before a response.")
        {
            Double($0.failures)
        }
        perServer("swiftvs_server_ejections_total", .counter, "Times passive ejection took the real server out.") {
            Double($0.ejections)
        }
        perServer("swiftvs_server_health_transitions_total", .counter, "Health state changes, down and up.") {
            Double($0.transitions)
        }
        perServer("swiftvs_server_checks_total", .counter, "Health checks run.") { Double($0.checks) }
        perServer("swiftvs_server_check_failures_total", .counter, "Health checks failed.") { Double($0.checkFailures) }
        perServer("swiftvs_server_check_seconds", .gauge, "How long the last health check took.") {
            ($0.lastCheckMs ?? 0) / 1000
        }
        perServer(
            "swiftvs_server_check_seconds_total", .counter,
            "Time spent in health checks, for the mean with checks_total."
        ) {
            $0.checkMsSum / 1000
        }
        return out.text
    }
}
