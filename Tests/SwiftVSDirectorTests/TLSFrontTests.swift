import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made by openssl for a test: ECDSA P-256, self-signed, each with its names in subjectAltName.
struct TestCertificates {
    let dir: String

    init() throws {
        self.dir = try temporaryDirectory("tls")
    }

    func remove() { try? FileManager.default.removeItem(atPath: self.dir) }

    /// `NAME.pem` and `NAME.key` for `names` (the first is the subject's CN); returns the two paths.
    @discardableResult
    func make(_ file: String, names: [String], cn: String? = nil) throws -> (cert: String, key: String) {
        let cert = "\(self.dir)/\(file).pem"
        let key = "\(self.dir)/\(file).key"
        let san = names.map { "DNS:\($0)" }.joined(separator: ",")
        let r = try tool(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", cert, "-days", "30", "-subj", "/CN=\(cn ?? names[0])", "-addext", "subjectAltName=\(san)",
            ])
        guard r.code == 0 else { throw TestSupportError("openssl req: \(r.err)") }
        return (cert, key)
    }

    /// A CA (`ca.pem`, `ca.key`) and a certificate it signs for `names` and `ips` (as a cluster's API server has).
    func makeSigned(_ file: String, names: [String], ips: [String]) throws -> (ca: String, cert: String, key: String) {
        let ca = "\(self.dir)/ca.pem"
        let caKey = "\(self.dir)/ca.key"
        let made = try tool(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey,
                "-out", ca, "-days", "30", "-subj", "/CN=swiftvs-test-ca", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        guard made.code == 0 else { throw TestSupportError("openssl req (CA): \(made.err)") }
        let key = "\(self.dir)/\(file).key"
        let cert = "\(self.dir)/\(file).pem"
        let csr = try tool(
            "openssl",
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", "\(self.dir)/\(file).csr", "-subj", "/CN=\(names.first ?? ips[0])",
            ])
        guard csr.code == 0 else { throw TestSupportError("openssl req: \(csr.err)") }
        let san = (names.map { "DNS:\($0)" } + ips.map { "IP:\($0)" }).joined(separator: ",")
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n".write(
            toFile: "\(self.dir)/\(file).ext", atomically: true, encoding: .utf8)
        let signed = try tool(
            "openssl",
            [
                "x509", "-req", "-in", "\(self.dir)/\(file).csr", "-CA", ca, "-CAkey", caKey, "-CAcreateserial",
                "-out", cert, "-days", "30", "-extfile", "\(self.dir)/\(file).ext",
            ])
        guard signed.code == 0 else { throw TestSupportError("openssl x509: \(signed.err)") }
        return (ca, cert, key)
    }

    /// A certificate that expired in 2020 (openssl ca takes explicit dates where req does not).
    func makeExpired(_ file: String) throws -> (cert: String, key: String) {
        let work = "\(self.dir)/ca-\(file)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try "".write(toFile: "\(work)/index.txt", atomically: true, encoding: .utf8)
        try "01\n".write(toFile: "\(work)/serial", atomically: true, encoding: .utf8)
        try """
        [ca]
        default_ca = d
        [d]
        database = \(work)/index.txt
        new_certs_dir = \(work)
        serial = \(work)/serial
        default_md = sha256
        policy = p
        [p]
        commonName = supplied

        """.write(toFile: "\(work)/ca.cnf", atomically: true, encoding: .utf8)
        let key = "\(self.dir)/\(file).key"
        let cert = "\(self.dir)/\(file).pem"
        let csr = try tool(
            "openssl",
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", "\(work)/req.csr", "-subj", "/CN=old.test",
            ])
        guard csr.code == 0 else { throw TestSupportError("openssl req: \(csr.err)") }
        let signed = try tool(
            "openssl",
            [
                "ca", "-batch", "-config", "\(work)/ca.cnf", "-selfsign", "-keyfile", key, "-in", "\(work)/req.csr",
                "-out", cert, "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
            ])
        guard signed.code == 0 else { throw TestSupportError("openssl ca: \(signed.err)") }
        return (cert, key)
    }
}

/// curl over TLS to 127.0.0.1:`port` as `name`: the certificate subject it saw, the HTTP version, the body.
func curlTLS(
    _ name: String, port: Int, path: String = "/", _ extra: [String] = []
) throws -> (code: Int32, subject: String?, version: String, body: String) {
    let marker = "\n--version:"
    let r = try tool(
        "curl",
        ["-sk", "-v", "--max-time", "10", "--resolve", "\(name):\(port):127.0.0.1", "-w", "\(marker)%{http_version}"]
            + extra + ["https://\(name):\(port)\(path)"], seconds: 15)
    let subject = r.err.split(separator: "\n").first { $0.contains("subject:") }.map {
        String($0[$0.range(of: "subject:")!.upperBound...]).trimmingCharacters(in: .whitespaces)
    }
    guard let range = r.out.range(of: marker, options: .backwards) else { return (r.code, subject, "", r.out) }
    return (r.code, subject, String(r.out[range.upperBound...]), String(r.out[..<range.lowerBound]))
}

extension IntegrationTests {
    @Suite("TLS termination", .serialized)
    struct TLSFrontTests {
        @Test(
            "SNI picks each name's certificate, ALPN gives h2 or http/1.1, TLS 1.3, X-Forwarded-Proto, unknown names get the default"
        )
        func sniAndALPN() async throws {
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let b = try certs.make("b", names: ["*.b.test", "b.test"], cn: "b.test")
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try DirectorProcess.inFront(
                of: [backend],
                extra: ["tls: {certificates: [{cert: \(a.cert), key: \(a.key)}, {cert: \(b.cert), key: \(b.key)}]}"])
            defer { director.stop() }
            let (strict, rejecting) = try DirectorProcess.inFront(
                of: [backend],
                extra: [
                    "tls: {certificates: [{cert: \(a.cert), key: \(a.key)}], unknown_name: reject, alpn: [http/1.1]}"
                ])
            defer { strict.stop() }

            let first = try curlTLS("a.test", port: port)
            #expect(first.subject == "CN=a.test" && first.version == "2" && first.body == "rs1", "\(first)")
            let wildcard = try curlTLS("www.b.test", port: port)
            #expect(wildcard.subject == "CN=b.test" && wildcard.version == "2", "\(wildcard)")
            let http1 = try curlTLS("b.test", port: port, ["--http1.1"])
            #expect(http1.subject == "CN=b.test" && http1.version == "1.1" && http1.body == "rs1", "\(http1)")
            let unknown = try curlTLS("nobody.test", port: port)
            #expect(unknown.subject == "CN=a.test" && unknown.body == "rs1", "the default certificate: \(unknown)")

            // The real server learns the request came over TLS, whatever the client claimed.
            let seen = try curlTLS("a.test", port: port, path: "/headers", ["-H", "X-Forwarded-Proto: http"])
            #expect(seen.body.contains("x-forwarded-proto: https"), "\(seen.body)")
            #expect(!seen.body.contains("x-forwarded-proto: http\n"), "\(seen.body)")

            // openssl's own client: TLS 1.3 and the ALPN result.
            let openssl = try tool(
                "openssl",
                ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "b.test", "-alpn", "h2,http/1.1"],
                seconds: 15)
            let said = "exit \(openssl.code)\n--- stdout\n\(openssl.out)\n--- stderr\n\(openssl.err)"
            #expect(said.contains("TLSv1.3"), "\(said)")
            #expect(said.contains("ALPN protocol: h2"), "\(said)")
            #expect(said.contains("CN = b.test") || said.contains("CN=b.test"), "\(said)")

            // Sessions resume (TLS 1.2 here: its session is set in the handshake, before s_client quits).
            let session = "\(certs.dir)/session.pem"
            let resume = ["s_client", "-tls1_2", "-connect", "127.0.0.1:\(port)", "-servername", "a.test"]
            let fresh = try tool("openssl", resume + ["-sess_out", session], seconds: 15)
            #expect(fresh.out.contains("New, TLSv1.2"), "\(fresh.out)")
            let resumed = try tool("openssl", resume + ["-sess_in", session], seconds: 15)
            #expect(resumed.out.contains("Reused, TLSv1.2"), "\(resumed.out)")

            // With unknown_name: reject, an unknown name is refused in the handshake; a known one is served.
            let refused = try curlTLS("nobody.test", port: rejecting)
            #expect(refused.code != 0 && refused.body.isEmpty, "\(refused)")
            let served = try curlTLS("a.test", port: rejecting)
            #expect(served.body == "rs1" && served.version == "1.1", "alpn: [http/1.1] only: \(served)")

            // Plain HTTP to the TLS port: a clear answer, not a hang.
            let plain = try curl("http://127.0.0.1:\(port)/")
            #expect(plain.status == 400 && plain.body.contains("HTTPS"), "\(plain)")
            await backend.shutdown()
        }

        @Test(
            "HTTP/1.1 clients get the relay engine's TLS; a request it does not serve moves the connection to the proxy, kept alive"
        )
        func relayTLS() async throws {
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let b = try certs.make("b", names: ["*.b.test"], cn: "b.test")
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try DirectorProcess.inFront(
                of: [backend],
                extra: [
                    "tls: {certificates: [{cert: \(a.cert), key: \(a.key)}, {cert: \(b.cert), key: \(b.key)}]}",
                    "timeouts: {header_read: 1s}",
                ])
            defer { director.stop() }

            // One keep-alive connection offering http/1.1 only: plain GETs (the relay's), a 1 MiB body, then a POST
            // (the proxy's, from then on) and a GET claiming X-Forwarded-Proto: http, all on the same socket.
            let script = """
                import hashlib, http.client, json, ssl
                ctx = ssl._create_unverified_context(); ctx.set_alpn_protocols(["http/1.1"])
                conn = http.client.HTTPSConnection("127.0.0.1", \(port), context=ctx)
                def go(method, path, body=None, headers={}):
                    conn.request(method, path, body=body, headers=headers); r = conn.getresponse(); return r.status, r.read()
                out = {}
                out["root"] = go("GET", "/")[1].decode()
                sock = conn.sock
                out["alpn"] = sock.selected_alpn_protocol(); out["version"] = sock.version()
                out["headers"] = go("GET", "/headers")[1].decode()
                status, big = go("GET", "/bytes/1048576")
                out["big"] = [status, len(big)]
                status, echoed = go("POST", "/echo", body=bytes(range(256)) * 400)
                out["echo"] = [status, len(echoed) if echoed == bytes(range(256)) * 400 else -1]
                out["claimed"] = go("GET", "/headers", headers={"X-Forwarded-Proto": "http"})[1].decode()
                out["after"] = go("GET", "/")[1].decode()
                out["same"] = conn.sock is sock
                print(json.dumps(out))
                """
            let run = try tool("python3", ["-c", script], seconds: 60)
            #expect(run.code == 0, "\(run.err)")
            let seen = try #require(
                try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any], "\(run.out) \(run.err)")
            #expect(seen["root"] as? String == "rs1" && seen["after"] as? String == "rs1", "\(seen)")
            #expect(seen["alpn"] as? String == "http/1.1" && seen["version"] as? String == "TLSv1.3", "\(seen)")
            let headers = seen["headers"] as? String ?? ""
            #expect(headers.contains("x-forwarded-proto: https") && headers.contains("x-forwarded-for: 127.0.0.1"))
            #expect(
                (seen["big"] as? [Int]) == [200, 1_048_576] && (seen["echo"] as? [Int]) == [200, 102_400], "\(seen)")
            let claimed = seen["claimed"] as? String ?? ""
            #expect(claimed.contains("x-forwarded-proto: https") && !claimed.contains("x-forwarded-proto: http\n"))
            #expect(seen["same"] as? Bool == true, "one connection throughout: \(seen)")

            // SNI on the relay's TLS (a wildcard, the second certificate), HTTP/1.0 (the proxy's), a WebSocket upgrade.
            let wildcard = try curlTLS("www.b.test", port: port, ["--http1.1"])
            #expect(
                wildcard.subject == "CN=b.test" && wildcard.version == "1.1" && wildcard.body == "rs1", "\(wildcard)")
            let old = try curlTLS("a.test", port: port, ["--http1.0"])
            #expect(old.version == "1" && old.body == "rs1", "\(old)")
            let upgrade = """
                import socket, ssl
                ctx = ssl._create_unverified_context()
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", \(port)), timeout=10), server_hostname="a.test")
                s.sendall(b"GET /ws?room=r HTTP/1.1\\r\\nHost: a.test\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n")
                print(s.recv(4096).split(b"\\r\\n")[0].decode())
                """
            let ws = try tool("python3", ["-c", upgrade], seconds: 30)
            #expect(ws.out.hasPrefix("HTTP/1.1 101"), "\(ws.out) \(ws.err)")

            // A client that sends its ClientHello (a real one, without ALPN) and no more: closed after header_read.
            let hello = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/front/client-hello")
            let stalled = BlockingClient(port: port, timeout: 8)
            try stalled.connect()
            let start = Date()
            try stalled.send([UInt8](try Data(contentsOf: hello)))
            #expect(stalled.waitForClose(), "a stalled handshake is closed")
            #expect(Date().timeIntervalSince(start) < 6, "by header_read (1 s), not the idle timeout")
            await backend.shutdown()
        }

        @Test("Chromium over h2 by ALPN: the page, 20 fetches on its connection, and a 100 kB upload echoed back")
        func chromium() async throws {
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try DirectorProcess.inFront(
                of: [backend], extra: ["tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}"])
            defer { director.stop() }
            let checker = try tool(
                "python3",
                [
                    repositoryRoot.appendingPathComponent("Tests/browser/h2_check.py").path,
                    "https://127.0.0.1:\(port)/", "/echo",
                ], seconds: 90)
            let line = try #require(
                checker.out.split(separator: "\n").last { $0.hasPrefix("{") },
                "h2_check.py (scripts/test.sh installs chromium, chromium-driver and selenium): \(checker.err)")
            let seen = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(seen["protocol"] as? String == "h2", "\(seen)")
            #expect(seen["text"] as? String == "rs1")
            #expect(seen["texts"] as? [String] == Array(repeating: "rs1", count: 20), "\(seen)")
            #expect(seen["echoed"] as? Bool == true, "\(seen)")
            #expect((seen["protocols"] as? [String] ?? []).allSatisfy { $0 == "h2" }, "\(seen)")
            await backend.shutdown()
        }

        @Test("a certificate replaced on disk and SIGHUP: new connections get it, an open keep-alive one goes on")
        func certificateReload() async throws {
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try DirectorProcess.inFront(
                of: [backend], extra: ["tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}"])
            defer { director.stop() }

            // A keep-alive client (Python's http.client over ssl): one request, then a second on the same
            // connection once the test says so.
            let go = "\(certs.dir)/go"
            let script = """
                import http.client, os, ssl, sys, time
                conn = http.client.HTTPSConnection("127.0.0.1", \(port), context=ssl._create_unverified_context())
                conn.request("GET", "/"); r = conn.getresponse(); r.read()
                print("first", r.status, flush=True)
                sock = conn.sock
                deadline = time.time() + 30
                while not os.path.exists("\(go)") and time.time() < deadline: time.sleep(0.05)
                conn.request("GET", "/"); r = conn.getresponse(); body = r.read()
                print("second", r.status, body.decode(), "same" if conn.sock is sock else "new", flush=True)
                """
            let client = try ChildProcess("/usr/bin/env", ["python3", "-c", script])
            defer { client.removeOutput() }
            try waitUntilBlocking("the keep-alive client's first answer", seconds: 15) {
                client.stdout.contains("first 200")
            }

            _ = try certs.make("a", names: ["a.test"], cn: "renewed.a.test")
            kill(director.pid, SIGHUP)
            try waitUntilBlocking("new connections get the renewed certificate", seconds: 10) {
                try curlTLS("a.test", port: port).subject == "CN=renewed.a.test"
            }
            FileManager.default.createFile(atPath: go, contents: nil)
            #expect(client.wait(seconds: 20) == 0, "\(client.stderr)")
            #expect(client.stdout.contains("second 200 rs1 same"), "\(client.stdout) \(client.stderr)")

            // A broken file is refused at reload: the director keeps serving the certificate it has.
            try "not a key".write(toFile: a.key, atomically: true, encoding: .utf8)
            kill(director.pid, SIGHUP)
            try waitUntilBlocking("the refused reload is logged", seconds: 10) {
                director.child.stderr.contains("services[0].tls.certificates[0].key")
            }
            #expect(try curlTLS("a.test", port: port).subject == "CN=renewed.a.test")
            await backend.shutdown()
        }

        @Test("https_redirect: every request gets a 301/308 to https on the same host and path, and keep-alive goes on")
        func redirect() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try DirectorProcess.inFront(
                of: [backend], extra: ["https_redirect: {status: 301, port: 8443}"])
            defer { director.stop() }
            let answer = try curlHeaders("http://127.0.0.1:\(port)/a/b?c=1", ["-H", "Host: www.example.com:\(port)"])
            #expect(answer.status == 301)
            #expect(answer.headers["location"] == "https://www.example.com:8443/a/b?c=1")
            let client = BlockingClient(port: port)
            let first = try client.request("GET", "/x")
            let second = try client.request("GET", "/y")
            #expect(first.status == 301 && first.header("connection") == nil)
            #expect(second.status == 301 && second.header("location") == "https://test:8443/y")
            #expect(backend.requests.load(ordering: .relaxed) == 0, "no real server is asked")
            await backend.shutdown()
        }

        @Test(
            "--check-config names the file and key of an expired certificate, a key of another certificate, a missing file"
        )
        func badMaterial() async throws {
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let b = try certs.make("b", names: ["b.test"])
            let old = try certs.makeExpired("old")
            let url = "\(certs.dir)/bad.yaml"
            try """
            services:
              - name: web
                listen: 127.0.0.1:8443
                tls:
                  certificates:
                    - {cert: \(old.cert), key: \(old.key)}
                    - {cert: \(a.cert), key: \(b.key)}
                    - {cert: missing.pem, key: \(a.key)}
                servers: [127.0.0.1:9001]
            """.write(toFile: url, atomically: true, encoding: .utf8)
            let check = try await runSwiftVSAsync(["director", "--check-config", url])
            #expect(check.code == 2)
            #expect(
                check.stderr.contains(
                    "services[0].tls.certificates[0].cert: \(old.cert): the certificate expired on 2020-02-01"),
                "\(check.stderr)")
            #expect(
                check.stderr.contains(
                    "services[0].tls.certificates[1].key: \(b.key): the key does not belong to the certificate in \(a.cert)"
                ), "\(check.stderr)")
            #expect(
                check.stderr.contains("services[0].tls.certificates[2].cert: \(certs.dir)/missing.pem: no such file"),
                "\(check.stderr)")
            let run = try await runSwiftVSAsync(["director", "--config", url])
            #expect(run.code == 2 && run.stderr.contains("3 problems"), "\(run.stderr)")
        }
    }
}

extension IntegrationTests.TLSFrontTests {
    @Test("SNI passthrough: one tcp listener, two TLS backends with their own certificates; each name reaches its own")
    func sniPassthrough() async throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let a = try certs.make("a", names: ["a.test"])
        let b = try certs.make("b", names: ["*.b.test"], cn: "b.test")
        let (rsA, rsB) = (try await TestBackend(name: "a"), try await TestBackend(name: "b"))
        // The backends terminate TLS themselves (two SwiftVS directors, each with its own certificate).
        let (tlsA, portA) = try DirectorProcess.inFront(
            of: [rsA], extra: ["tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}"])
        defer { tlsA.stop() }
        let (tlsB, portB) = try DirectorProcess.inFront(
            of: [rsB], extra: ["tls: {certificates: [{cert: \(b.cert), key: \(b.key)}]}"])
        defer { tlsB.stop() }
        let port = try freePort()
        let front = try DirectorProcess(
            yaml: """
                threads: 1
                admin: off
                services:
                  - name: passthrough
                    listen: 127.0.0.1:\(port)
                    protocol: tcp
                    routes:
                      - {match: {sni: a.test}, pool: a}
                      - {match: {sni: "*.b.test"}, pool: b}
                    pools:
                      a: {servers: [127.0.0.1:\(portA)]}
                      b: {servers: [127.0.0.1:\(portB)]}

                """)
        defer { front.stop() }
        try front.waitForPort(port)
        let toA = try curlTLS("a.test", port: port)
        #expect(toA.subject == "CN=a.test" && toA.body == "a" && toA.version == "2", "\(toA)")
        let toB = try curlTLS("www.b.test", port: port, ["--http1.1"])
        #expect(toB.subject == "CN=b.test" && toB.body == "b", "\(toB)")
        // A name no rule takes, and a client that sends no TLS: closed, nothing reaches a backend.
        let nobody = try curlTLS("nobody.test", port: port)
        #expect(nobody.code != 0 && nobody.body.isEmpty, "\(nobody)")
        #expect(rsA.requests.load(ordering: .relaxed) == 1 && rsB.requests.load(ordering: .relaxed) == 1)
        await rsA.shutdown()
        await rsB.shutdown()
    }
}

extension IntegrationTests.TLSFrontTests {
    @Test("TLS to real servers: verified against a CA and a name (SNI), health checks over TLS; a wrong CA fails")
    func upstreamTLS() async throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let a = try certs.make("a", names: ["a.test"])
        let other = try certs.make("other", names: ["other.test"])
        let rs = try await TestBackend(name: "rs1")
        // The real server speaks TLS only (a SwiftVS director terminating it, in front of the test backend).
        let (server, serverPort) = try DirectorProcess.inFront(
            of: [rs], extra: ["tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}"])
        defer { server.stop() }
        let admin = try freePort()
        let port = try freePort()
        let director = try DirectorProcess(
            yaml: """
                threads: 1
                admin: {listen: 127.0.0.1:\(admin), socket: off}
                services:
                  - name: good
                    listen: 127.0.0.1:\(port)
                    health: {check: http, path: /, interval: 300ms, timeout: 200ms, rise: 1, fall: 1, alpha: true}
                    servers: [{address: 127.0.0.1:\(serverPort), tls: {ca: \(a.cert), server_name: a.test}}]
                  - name: wrongca
                    listen: 127.0.0.1:\(port + 1 == serverPort ? port + 2 : port + 1)
                    retries: 0
                    servers: [{address: 127.0.0.1:\(serverPort), tls: {ca: \(other.cert), server_name: a.test}}]

                """)
        defer { director.stop() }
        try director.waitForPort(port)
        try waitUntilBlocking("the TLS health check passes", seconds: 10) {
            (try? curl("http://127.0.0.1:\(admin)/api/services/good").body.contains("200 OK")) == true
        }
        let answer = try curl("http://127.0.0.1:\(port)/headers")
        #expect(answer.status == 200 && answer.body.contains("x-forwarded-proto: https"), "\(answer)")
        let wrongPort = port + 1 == serverPort ? port + 2 : port + 1
        try director.waitForPort(wrongPort)
        let refused = try curl("http://127.0.0.1:\(wrongPort)/")
        #expect(refused.status == 502, "a certificate the CA did not sign: \(refused)")
        await rs.shutdown()
    }
}

extension IntegrationTests.TLSFrontTests {
    @Test("client certificates: required refuses a client without one the CA signed; optional lets it in")
    func clientCertificates() async throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let server = try certs.make("server", names: ["a.test"])
        let client = try certs.make("client", names: ["client.test"])  // self-signed: its own CA
        let stranger = try certs.make("stranger", names: ["stranger.test"])
        let rs = try await TestBackend(name: "rs1")
        let (required, requiredPort) = try DirectorProcess.inFront(
            of: [rs],
            extra: [
                "tls: {certificates: [{cert: \(server.cert), key: \(server.key)}], client_auth: required, client_ca: \(client.cert)}"
            ])
        defer { required.stop() }
        let (optional, optionalPort) = try DirectorProcess.inFront(
            of: [rs],
            extra: [
                "tls: {certificates: [{cert: \(server.cert), key: \(server.key)}], client_auth: optional, client_ca: \(client.cert)}"
            ])
        defer { optional.stop() }
        let with = try curlTLS("a.test", port: requiredPort, ["--cert", client.cert, "--key", client.key])
        #expect(with.body == "rs1", "\(with)")
        let without = try curlTLS("a.test", port: requiredPort)
        #expect(without.body != "rs1", "no certificate: refused \(without)")
        let wrong = try curlTLS("a.test", port: requiredPort, ["--cert", stranger.cert, "--key", stranger.key])
        #expect(wrong.body != "rs1", "a certificate the CA did not sign: refused \(wrong)")
        #expect(try curlTLS("a.test", port: optionalPort).body == "rs1", "optional: in without one")
        #expect(
            try curlTLS("a.test", port: optionalPort, ["--cert", client.cert, "--key", client.key]).body == "rs1")
        await rs.shutdown()
    }
}
