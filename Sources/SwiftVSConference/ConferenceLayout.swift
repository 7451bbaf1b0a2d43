/// The conference as microservices behind the director, as `swiftvs demo` runs it and `examples/conference.yaml`
/// writes it (a test keeps the two alike): the director on `port`, web on `port + 1`, api on `port + 2`, two signal
/// replicas on `port + 3` and `port + 4`.
public enum ConferenceLayout {
    public static func ports(_ port: Int) -> (web: Int, api: Int, signals: [Int]) {
        (port + 1, port + 2, [port + 3, port + 4])
    }

    /// The director's service, as one item of a config's `services:` list (indented for it).
    public static func serviceYAML(port: Int) -> String {
        let p = self.ports(port)
        return """
              - name: conference
                listen: 127.0.0.1:\(port)
                protocol: http
                routes:
                  - {match: {path: /ws}, pool: signal}
                  - {match: {path_prefix: /api}, pool: api}
                  - pool: web
                pools:
                  web:
                    scheduler: rr
                    servers: [127.0.0.1:\(p.web)]
                    health: {check: http, path: /healthz, interval: 1s, timeout: 500ms}
                  api:
                    servers: [127.0.0.1:\(p.api)]
                    health: {check: http, path: /healthz, interval: 1s, timeout: 500ms}
                  signal:
                    scheduler: mh
                    scheduler_flags: [fallback]
                    hash: {query: room}
                    persistence: {key: hash, timeout: 60}
                    servers: [\(p.signals.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
                    health: {check: http, path: /healthz, interval: 1s, timeout: 500ms}
            """
    }

    /// The four servers' options: web, api, and the signal replicas pointed at the api with `secret`.
    public static func servers(port: Int, secret: String) -> [ConferenceOptions] {
        let p = self.ports(port)
        func options(_ roles: ConferenceRoles, _ port: Int) -> ConferenceOptions {
            var o = ConferenceOptions()
            o.roles = roles
            o.port = port
            o.secret = secret
            o.threads = 1
            return o
        }
        var signals = p.signals.map { options(.signal, $0) }
        for i in signals.indices { signals[i].apiURL = "http://127.0.0.1:\(p.api)" }
        return [options(.web, p.web), options(.api, p.api)] + signals
    }
}
