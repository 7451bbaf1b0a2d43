import Foundation
import SwiftVSConfigKit
import SwiftVSTestSupport
import Testing

@testable import SwiftVSDirector

extension IntegrationTests {
    /// There is no cluster here: `KubeAPIServer` implements the calls the director makes (and the discovery kubectl
    /// needs) over HTTPS with a test CA, and Debian's real kubectl must accept it, so the shapes are the real ones.
    @Suite("Autoscaling: a Kubernetes Deployment", .serialized, .timeLimit(.minutes(4)))
    struct KubernetesProviderTests {
        /// kubectl against the test server, with its own kubeconfig and cache.
        static func kubectl(
            _ dir: String, _ arguments: [String], seconds: Double = 30
        ) throws -> (
            code: Int32, out: String, err: String
        ) {
            try tool(
                "kubectl", ["--kubeconfig", "\(dir)/kubeconfig", "--cache-dir", "\(dir)/cache"] + arguments,
                seconds: seconds)
        }

        static func writeKubeconfig(_ dir: String, port: Int, ca: String, token: String) throws {
            try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster:
                server: https://127.0.0.1:\(port)
                certificate-authority: \(ca)
            users:
            - name: tester
              user:
                token: \(token)
            contexts:
            - name: test
              context: {cluster: test, user: tester, namespace: default}
            current-context: test

            """.write(toFile: "\(dir)/kubeconfig", atomically: true, encoding: .utf8)
        }

        @Test(
            "scales the Deployment through its scale subresource, follows its EndpointSlices (drain, 410, 401), and kubectl agrees"
        )
        func deployment() async throws {
            let dir = try temporaryDirectory("kube")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let certs = try TestCertificates()
            defer { certs.remove() }
            let (ca, cert, key) = try certs.makeSigned("apiserver", names: ["localhost"], ips: ["127.0.0.1"])
            // Four pods: in-test servers on 127.0.0.11-14, one port, as pods of one Deployment.
            var backends = [try await TestBackend(name: "pod0", bindHost: "127.0.0.11")]
            for index in 1..<4 {
                backends.append(
                    try await TestBackend(
                        name: "pod\(index)", port: backends[0].port, bindHost: "127.0.0.1\(index + 1)"))
            }
            let api = try await KubeAPIServer(
                token: "token-1", replicas: 1, addresses: (11...14).map { "127.0.0.\($0)" },
                endpointPort: backends[0].port, cert: cert, key: key)
            try "token-1\n".write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
            try Self.writeKubeconfig(dir, port: api.port, ca: ca, token: "token-1")
            let yaml = """
                threads: 1
                services:
                  - name: web
                    listen: 127.0.0.1:0
                    scheduler: rr
                    autoscale:
                      min_replicas: 1
                      max_replicas: 3
                      sync_period: 500ms
                      metrics: [{type: requests_per_second, average: 10}]
                      behavior:
                        scale_down: {stabilization_window: 2s}
                      provider: kubernetes
                      kubernetes:
                        deployment: web
                        namespace: default
                        api: https://127.0.0.1:\(api.port)
                        ca_file: \(ca)
                        token_file: \(dir)/token

                """
            do {
                try await withDirector(yaml) { director in
                    let service = AutoscaleService(director: director.director)
                    let task = Task { try await service.run() }
                    defer { task.cancel() }
                    let pool = director.service
                    func inRotation() -> Set<String> {
                        Set(pool.serverViews().filter { $0.value.inRotation }.map(\.key.description))
                    }

                    // The pool is the EndpointSlice's one ready endpoint.
                    #expect(try await secondsUntil(10) { inRotation() == ["127.0.0.11:\(backends[0].port)"] } != nil)

                    // kubectl reads the Deployment, and scales it to 3: three endpoints join.
                    let get = try Self.kubectl(dir, ["get", "deployment", "web"])
                    #expect(get.code == 0 && get.out.contains("web"), "\(get.out)\(get.err)")
                    let scaled = try Self.kubectl(dir, ["scale", "deployment", "web", "--replicas=3"])
                    #expect(scaled.code == 0, "\(scaled.out)\(scaled.err)")
                    #expect(api.replicas == 3)
                    #expect(try await secondsUntil(10) { inRotation().count == 3 } != nil, "\(inRotation())")

                    // No load: the director scales the Deployment back to 1 after the 2 s window; the two
                    // terminating endpoints drain at weight 0 until they are gone.
                    #expect(try await secondsUntil(10) { api.replicas == 1 } != nil)
                    let draining = try await secondsUntil(5) {
                        pool.status().servers.filter { $0.weight == 0 }.count == 2
                    }
                    #expect(draining != nil, "\(pool.status().servers.map { "\($0.address) \($0.weight)" })")
                    api.finishTermination()
                    #expect(try await secondsUntil(5) { pool.serverViews().count == 1 } != nil)

                    // A load step: the director patches the scale (the first PATCH meets a 409 and is read again).
                    api.injectConflicts(1)
                    let failures = Counter(), done = Counter()
                    let load = Task {
                        try await pacedLoad(port: director.port, rate: 40, seconds: 6, failures: failures, done: done)
                    }
                    let rose = try await secondsUntil(6) { api.replicas == 3 && inRotation().count == 3 }
                    try await load.value
                    #expect(rose != nil, "replicas \(api.replicas), in rotation \(inRotation())")
                    #expect(failures.value == 0, "\(failures.value) failed of \(done.value)")
                    let patches = api.state.withLock { $0.patches }
                    #expect(patches.count >= 2, "\(patches)")
                    #expect(backends[1].count > 0 && backends[2].count > 0)

                    // A watch that expires (410) makes the director list again.
                    let lists = api.state.withLock { $0.lists }
                    api.expireWatches()
                    #expect(try await secondsUntil(5) { api.state.withLock { $0.lists } > lists } != nil)

                    // The token rotates: the old one gets 401, the director reads the file again and goes on.
                    try "token-2\n".write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
                    api.setToken("token-2")
                    let before = api.state.withLock { $0.patches.count }
                    #expect(try await secondsUntil(10) { api.replicas == 1 } != nil, "scaled down with the new token")
                    #expect(api.state.withLock { $0.unauthorized } > 0)
                    #expect(api.state.withLock { $0.patches.count } > before)

                    // kubectl watches the EndpointSlices as the director does.
                    try Self.writeKubeconfig(dir, port: api.port, ca: ca, token: "token-2")
                    let watchers = api.state.withLock { $0.watchers.count }
                    let watch = try ChildProcess(
                        "/usr/bin/env",
                        [
                            "kubectl", "--kubeconfig", "\(dir)/kubeconfig", "--cache-dir", "\(dir)/cache", "get",
                            "endpointslices", "-w",
                        ])
                    defer {
                        watch.stop(seconds: 2)
                        watch.removeOutput()
                    }
                    #expect(try await secondsUntil(15) { watch.stdout.contains("web-abc12") } != nil, "\(watch.stderr)")
                    // kubectl lists, prints, then opens its watch: a change before the watch is open would reach it
                    // only from a real API server (which replays from the list's version; this one does not).
                    #expect(
                        try await secondsUntil(15) { api.state.withLock { $0.watchers.count } > watchers } != nil,
                        "kubectl's watch is open")
                    // Counted before the change: kubectl may print the new line before a count taken after it.
                    let lines = watch.stdout.split(separator: "\n").count
                    api.finishTermination()
                    #expect(try await secondsUntil(10) { watch.stdout.split(separator: "\n").count > lines } != nil)

                    // The API goes away: the pool stays as last known, requests are still served, and it is said.
                    await api.goAway()
                    let kube = try #require(director.director.autoscaling.controller(for: "web"))
                    let unreachable = try await secondsUntil(10) {
                        kube.status().replicas.contains { $0.detail.hasPrefix("API unreachable") }
                    }
                    #expect(unreachable != nil, "\(kube.status())")
                    #expect(!inRotation().isEmpty)
                    let port = director.port
                    let status = try await onThread {
                        let client = BlockingClient(port: port, timeout: 5)
                        defer { client.close() }
                        return try client.request("GET", "/").status
                    }
                    #expect(status == 200)

                    task.cancel()
                    _ = try? await task.value
                }
            } catch {
                await api.shutdown()
                for backend in backends { await backend.shutdown() }
                throw error
            }
            await api.shutdown()
            for backend in backends { await backend.shutdown() }
        }
    }
}
