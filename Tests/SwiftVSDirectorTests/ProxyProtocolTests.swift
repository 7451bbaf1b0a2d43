import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    @Suite("PROXY protocol", .serialized)
    struct ProxyProtocolTests {
        /// The local `ip port` of a connected client socket.
        static func local(_ client: BlockingClient) -> String {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(client.fd, $0, &length) }
            }
            return "127.0.0.1 \(UInt16(bigEndian: address.sin_port))"
        }

        static func firstLine(_ client: BlockingClient) throws -> String {
            var line: [UInt8] = []
            while true {
                let byte = try client.bytes(1)
                if byte == [0x0A] { return String(decoding: line, as: UTF8.self) }
                line += byte
            }
        }

        @Test("v2 and v1 to a real server: it reads the client's own address and port, and the bytes pass after")
        func send() async throws {
            let reader = try await TestBackend(name: "reader", kind: .proxyReader)
            for version in ["v2", "v1"] {
                let (director, port) = try DirectorProcess.inFront(
                    of: [reader], extra: ["protocol: tcp", "proxy_protocol: \(version)"])
                defer { director.stop() }
                let client = BlockingClient(port: port)
                try client.connect()
                try client.send("hello\n")
                #expect(try Self.firstLine(client) == "\(version) \(Self.local(client)) 127.0.0.1 \(port)")
                #expect(try Self.firstLine(client) == "hello")
            }
            await reader.shutdown()
        }

        @Test("accept_proxy: a trusted front's header becomes the client; an untrusted client is refused")
        func accept() async throws {
            let reader = try await TestBackend(name: "reader", kind: .proxyReader)
            // inner: trusts 127.0.0.1 and tells the real server (v1) whom its header named.
            let (inner, innerPort) = try DirectorProcess.inFront(
                of: [reader], extra: ["protocol: tcp", "proxy_protocol: v1", "accept_proxy: [127.0.0.1/32]"])
            defer { inner.stop() }
            // front: the first hop, which sends v2 to the inner director.
            let (front, frontPort) = try Self.front(sendingV2To: innerPort)
            defer { front.stop() }
            let client = BlockingClient(port: frontPort)
            try client.connect()
            try client.send("through two\n")
            #expect(try Self.firstLine(client) == "v1 \(Self.local(client)) 127.0.0.1 \(frontPort)")
            #expect(try Self.firstLine(client) == "through two")

            // A client outside accept_proxy is closed before any real server is asked.
            let (strict, strictPort) = try DirectorProcess.inFront(
                of: [reader], extra: ["protocol: tcp", "accept_proxy: [10.0.0.0/8]"])
            defer { strict.stop() }
            let outsider = BlockingClient(port: strictPort, timeout: 5)
            try outsider.connect()
            try? outsider.send("PROXY TCP4 10.1.1.1 10.0.0.1 1000 80\r\nhello\n")
            #expect(outsider.waitForClose())
            // A trusted client whose first bytes are no PROXY header is closed too.
            let (lax, laxPort) = try DirectorProcess.inFront(
                of: [reader], extra: ["protocol: tcp", "accept_proxy: [127.0.0.0/8]"])
            defer { lax.stop() }
            let plain = BlockingClient(port: laxPort, timeout: 5)
            try plain.connect()
            try plain.send("GET / HTTP/1.1\r\n\r\n")
            #expect(plain.waitForClose())
            await reader.shutdown()
        }

        /// A tcp director in front of 127.0.0.1:`port` that starts each connection there with a PROXY v2 header.
        static func front(sendingV2To port: Int) throws -> (DirectorProcess, port: Int) {
            let frontPort = try freePort()
            let front = try DirectorProcess(
                yaml: """
                    threads: 1
                    admin: off
                    services:
                      - name: front
                        listen: 127.0.0.1:\(frontPort)
                        protocol: tcp
                        proxy_protocol: v2
                        servers: [127.0.0.1:\(port)]

                    """)
            try front.waitForPort(frontPort)
            return (front, frontPort)
        }

        /// A request for `/headers` behind a v1 header that names 203.0.113.7:40000 (a documentation address: only
        /// text here), and the real server's view of it.
        static func headersBehindProxy(_ port: Int) throws -> String {
            let client = BlockingClient(port: port, timeout: 10)
            try client.connect()
            defer { client.close() }
            try client.send(
                "PROXY TCP4 203.0.113.7 127.0.0.1 40000 \(port)\r\n"
                    + "GET /headers HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
            return try client.readResponse().text
        }

        @Test("accept_proxy on http: the header's client is X-Forwarded-For on both HTTP paths and through TLS")
        func acceptOnHTTP() async throws {
            let backend = try await TestBackend(name: "rs1")
            let trust = "accept_proxy: [127.0.0.1/32]"
            // The relay's HTTP session, then the NIO proxy (a hash on a header needs the parsed request).
            for extra in [[trust], [trust, "scheduler: sh", "hash: {header: X-Key}"]] {
                let (director, port) = try DirectorProcess.inFront(of: [backend], extra: extra)
                defer { director.stop() }
                let seen = try Self.headersBehindProxy(port)
                #expect(seen.contains("x-forwarded-for: 203.0.113.7"), "\(extra): \(seen)")
                #expect(!seen.contains("PROXY"), "\(seen)")
            }

            // TLS behind a PROXY v2 header: a tcp front sends it, the director reads it before the handshake.
            let certs = try TestCertificates()
            defer { certs.remove() }
            let a = try certs.make("a", names: ["a.test"])
            let (inner, innerPort) = try DirectorProcess.inFront(
                of: [backend], extra: [trust, "tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}"])
            defer { inner.stop() }
            let (front, frontPort) = try Self.front(sendingV2To: innerPort)
            defer { front.stop() }
            let (status, body) = try await curlAsync(
                "https://a.test:\(frontPort)/headers", ["-k", "--resolve", "a.test:\(frontPort):127.0.0.1"])
            #expect(status == 200, "\(body)")
            #expect(body.contains("x-forwarded-for: 127.0.0.1") && body.contains("x-forwarded-proto: https"), "\(body)")

            // Outside the networks: closed before a request is read. Trusted but with no header: closed too.
            let (strict, strictPort) = try DirectorProcess.inFront(of: [backend], extra: ["accept_proxy: [10.0.0.0/8]"])
            defer { strict.stop() }
            let outsider = BlockingClient(port: strictPort, timeout: 5)
            try outsider.connect()
            try? outsider.send("PROXY TCP4 10.1.1.1 10.0.0.1 1000 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(outsider.waitForClose())
            let (lax, laxPort) = try DirectorProcess.inFront(of: [backend], extra: [trust])
            defer { lax.stop() }
            let plain = BlockingClient(port: laxPort, timeout: 5)
            try plain.connect()
            try plain.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(plain.waitForClose())
            #expect(backend.requests.load(ordering: .relaxed) == 3)
            await backend.shutdown()
        }
    }
}
