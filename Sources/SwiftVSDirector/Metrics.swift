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
        Self.queue(director, &out)
        Self.autoscale(director, &out)
        return out.text
    }

    /// The request queues (`maxconn`, scale from zero).
    static func queue(_ director: Director, _ out: inout PrometheusText) {
        let queues = director.services.filter { $0.config.proto == .http }.map { ($0.name, $0.queue) }
        func family(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ value: (RequestQueue) -> Double) {
            out.family(name, kind, help: help, queues.map { ([("service", $0.0)], value($0.1)) })
        }
        family("swiftvs_queue_length", .gauge, "Requests waiting for a free real server.") {
            Double($0.length.load(ordering: .relaxed))
        }
        family("swiftvs_queue_served_total", .counter, "Requests that waited and got a real server.") {
            Double($0.served.load(ordering: .relaxed))
        }
        family("swiftvs_queue_wait_seconds_total", .counter, "Time those requests waited, for the mean.") {
            Double($0.waitedNanos.load(ordering: .relaxed)) / 1e9
        }
        family("swiftvs_queue_refused_total", .counter, "Requests answered 503 because the queue was full.") {
            Double($0.refused.load(ordering: .relaxed))
        }
        family("swiftvs_queue_timeouts_total", .counter, "Requests answered 503 after queue.timeout.") {
            Double($0.timedOut.load(ordering: .relaxed))
        }
    }

    /// The autoscaler: replicas, and each metric's value and target as it last computed them.
    static func autoscale(_ director: Director, _ out: inout PrometheusText) {
        let statuses = director.autoscaling.statuses
        guard !statuses.isEmpty else { return }
        func family(_ name: String, _ help: String, _ value: (ScaleStatus) -> Int) {
            out.family(name, .gauge, help: help, statuses.map { ([("service", $0.service)], Double(value($0))) })
        }
        family("swiftvs_autoscale_replicas", "Replicas counting toward the desired number.") { $0.current }
        family("swiftvs_autoscale_ready_replicas", "Replicas in rotation.") { $0.ready }
        family("swiftvs_autoscale_desired_replicas", "The replica count the autoscaler decided.") { $0.desired }
        family("swiftvs_autoscale_min_replicas", "The lower bound.") { $0.min }
        family("swiftvs_autoscale_max_replicas", "The upper bound.") { $0.max }
        out.family(
            "swiftvs_autoscale_metric_value", .gauge,
            help: "Each metric's current value (cpu and memory utilization in percent, times in seconds).",
            statuses.flatMap { status in
                status.metrics.compactMap { metric in
                    metric.current.map { ([("service", status.service), ("metric", metric.name)], $0) }
                }
            })
    }
}
