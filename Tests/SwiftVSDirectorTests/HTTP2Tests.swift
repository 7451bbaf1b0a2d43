import Foundation
import SwiftVSTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// HTTP/2 frames written and read by hand (RFC 9113 §4.1), for what no well-behaved client sends.
enum H2 {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let data: UInt8 = 0, headers: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4, goaway: UInt8 = 7
    static let windowUpdate: UInt8 = 8
    static let endStream: UInt8 = 0x1, endHeaders: UInt8 = 0x4

    /// RFC 9113 §7 error codes.
    static let protocolError: UInt32 = 0x1, flowControlError: UInt32 = 0x3, streamClosed: UInt32 = 0x5
    static let frameSizeError: UInt32 = 0x6, enhanceYourCalm: UInt32 = 0xb

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags] + be32(stream) + payload
    }

    static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    /// GET / with :authority "a", in HPACK: indexed :method GET, :scheme http, :path /, and a literal authority.
    static let getSlash: [UInt8] = [0x82, 0x86, 0x84, 0x01, 0x01, 0x61]

    static func get(stream: UInt32, end: Bool = true) -> [UInt8] {
        frame(headers, flags: endHeaders | (end ? endStream : 0), stream: stream, getSlash)
    }

    /// A connection that has said the preface and an empty SETTINGS.
    static func open(port: Int) throws -> BlockingClient {
        let client = BlockingClient(port: port, timeout: 5)
        try client.connect()
        try client.send(preface + frame(settings))
        return client
    }

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
        /// RST_STREAM's and GOAWAY's error code.
        var errorCode: UInt32? {
            let at = self.type == H2.goaway ? 4 : self.type == H2.rstStream ? 0 : -1
            guard at >= 0, self.payload.count >= at + 4 else { return nil }
            return self.payload[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    /// The next frame; nil on the close or a timeout.
    static func next(_ client: BlockingClient) -> Frame? {
        guard let head = try? client.bytes(9) else { return nil }
        let length = Int(head[0]) << 16 | Int(head[1]) << 8 | Int(head[2])
        guard let payload = try? client.bytes(length) else { return nil }
        let stream = head[5..<9].reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
        return Frame(type: head[3], flags: head[4], stream: stream, payload: payload)
    }

    /// Reads frames until one matches; nil if the connection ends first.
    static func until(_ client: BlockingClient, _ match: (Frame) -> Bool) -> Frame? {
        while let frame = next(client) {
            if match(frame) { return frame }
        }
        return nil
    }

    /// Reads frames until a GOAWAY (its error code) or the close (nil).
    static func goaway(_ client: BlockingClient) -> UInt32? {
        until(client) { $0.type == goaway }?.errorCode
    }
}

extension IntegrationTests {
    @Suite("HTTP/2 towards clients", .serialized)
    struct HTTP2Tests {
        static func director(_ backend: TestBackend) throws -> (DirectorProcess, port: Int) {
            try DirectorProcess.inFront(of: [backend])
        }

        @Test("h2c with prior knowledge: curl, nghttp, and h2load's 100 concurrent streams on one connection")
        func clients() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try Self.director(backend)
            defer { director.stop() }
            let curled = try curl(
                "http://127.0.0.1:\(port)/", ["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}"])
            #expect(curled.body.hasSuffix("2"), "\(curled)")
            let nghttp = try tool("nghttp", ["-v", "http://127.0.0.1:\(port)/headers"], seconds: 15)
            #expect(nghttp.code == 0 && nghttp.out.contains(":status: 200"), "\(nghttp.out) \(nghttp.err)")
            #expect(nghttp.out.contains("GET /headers"), "the real server got HTTP/1.1: \(nghttp.out)")
            // Each request waits 200 ms at the real server: the 100 are in flight together.
            let load = try tool(
                "h2load", ["-n", "100", "-c", "1", "-m", "100", "http://127.0.0.1:\(port)/delay/200"], seconds: 30)
            #expect(load.out.contains("100 succeeded, 0 failed"), "\(load.out) \(load.err)")
            #expect(load.out.contains("status codes: 100 2xx"), "\(load.out)")
            await backend.shutdown()
        }

        @Test(
            "h2 streams served as HTTP/1.1: a 16 MiB download, a 1 MiB upload, HEAD, 404, chunked, until-close, 1xx, hop-by-hop, a bad response"
        )
        func framings() async throws {
            func h2(_ port: Int, _ path: String, _ extra: [String] = []) throws -> (out: String, code: Int32) {
                let r = try tool(
                    "curl",
                    ["-s", "--http2-prior-knowledge", "--max-time", "20"] + extra + ["http://127.0.0.1:\(port)\(path)"],
                    seconds: 25)
                return (r.out, r.code)
            }
            try await withBackends(1) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let port = director.port
                    let big = try h2(
                        port, "/bytes/\(16 << 20)", ["-o", "/dev/null", "-w", "%{size_download} %{http_version}"])
                    #expect(big.out == "\(16 << 20) 2", "\(big)")
                    let head = try h2(port, "/", ["-I"])
                    #expect(head.out.contains("HTTP/2 200") && head.out.contains("content-length: 3"), "\(head)")
                    let missing = try h2(port, "/status/404", ["-o", "/dev/null", "-w", "%{http_code}"])
                    #expect(missing.out == "404")
                    // A body: the stream goes to the NIO proxy over a socket pair, its DATA as the request's body.
                    let file = FileManager.default.temporaryDirectory.appendingPathComponent("h2-upload-\(port)")
                    let upload = [UInt8]((0..<(1 << 20)).map { UInt8(0x61 + $0 % 26) })
                    try Data(upload).write(to: file)
                    defer { try? FileManager.default.removeItem(at: file) }
                    let echoed = try tool(
                        "curl",
                        [
                            "-s", "--http2-prior-knowledge", "--max-time", "20", "--data-binary", "@\(file.path)",
                            "http://127.0.0.1:\(port)/echo",
                        ], seconds: 25)
                    #expect(Array(echoed.out.utf8) == upload, "the upload came back whole")
                    let seen = try h2(port, "/headers", ["-H", "Cookie: a=1", "-H", "X-Test: yes"])
                    #expect(seen.out.hasPrefix("GET /headers"), "\(seen.out)")
                    #expect(seen.out.contains("host: 127.0.0.1:\(port)") && seen.out.contains("x-test: yes"))
                    #expect(seen.out.contains("x-forwarded-for: 127.0.0.1"), "\(seen.out)")
                    // A client with 4 KiB stream and 64 KiB connection windows: the response waits for its
                    // WINDOW_UPDATEs and arrives whole.
                    let small = try tool(
                        "nghttp", ["-w", "12", "-W", "16", "http://127.0.0.1:\(port)/bytes/300000"], seconds: 20)
                    #expect(small.code == 0 && small.out.utf8.count == 300_000, "\(small.out.utf8.count) \(small.err)")
                }
            }
            try await withBackends(1, kind: .raw) { backends in
                try await withDirector(serviceYAML(backends: backends)) { director in
                    let port = director.port
                    #expect(try h2(port, "/chunked").out == "hello world")
                    #expect(try h2(port, "/http10").out == "until close")
                    #expect(try h2(port, "/early").out == "final")
                    #expect(try h2(port, "/clte").out == "ok")
                    let hop = try h2(port, "/hop", ["-D", "-"])
                    #expect(hop.out.contains("x-kept: yes") && hop.out.hasSuffix("ok"), "\(hop.out)")
                    #expect(!hop.out.contains("x-hop") && !hop.out.contains("keep-alive"), "\(hop.out)")
                    let garbage = try h2(port, "/garbage", ["-o", "/dev/null", "-w", "%{http_code}"])
                    #expect(garbage.out == "502")
                }
            }
        }

        @Test(
            "rapid reset: 10 000 streams opened and reset get GOAWAY ENHANCE_YOUR_CALM and a close; others are served")
        func rapidReset() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try Self.director(backend)
            defer { director.stop() }
            // Another client, its request in flight through the burst.
            let other = try ChildProcess(
                "/usr/bin/env",
                ["curl", "-s", "--http2-prior-knowledge", "--max-time", "20", "http://127.0.0.1:\(port)/delay/1000"])
            defer { other.removeOutput() }
            let offender = try H2.open(port: port)
            var sent = 0
            var stream: UInt32 = 1
            while sent < 10_000 {
                var burst: [UInt8] = []
                for _ in 0..<100 {
                    burst += H2.get(stream: stream) + H2.frame(H2.rstStream, stream: stream, H2.be32(0x8))
                    stream += 2
                }
                guard (try? offender.send(burst)) != nil else { break }  // closed on us: the point
                sent += 100
            }
            #expect(H2.goaway(offender) == H2.enhanceYourCalm, "after \(sent) resets")
            #expect(offender.waitForClose())
            #expect(other.wait(seconds: 25) == 0)
            #expect(other.stdout == "rs1", "the other client: \(other.stdout) \(other.stderr)")
            let after = try curl("http://127.0.0.1:\(port)/", ["--http2-prior-knowledge"])
            #expect(after.status == 200 && after.body == "rs1")
            await backend.shutdown()
        }

        @Test("a draining director sends each HTTP/2 connection GOAWAY (NO_ERROR) and finishes the streams in flight")
        func goAwayOnDrain() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try Self.director(backend)
            defer { director.stop() }
            try await onThread {
                let client = try H2.open(port: port)
                // A request the real server holds for 500 ms, then SIGTERM while it is in flight.
                let slow: [UInt8] = [0x82, 0x86, 0x04, 0x0A] + Array("/delay/500".utf8) + [0x01, 0x01, 0x61]
                try client.send(H2.frame(H2.headers, flags: H2.endHeaders | H2.endStream, stream: 1, slow))
                usleep(100_000)
                kill(director.pid, SIGTERM)
                let goAway = H2.until(client) { $0.type == H2.goaway }
                #expect(goAway?.errorCode == 0, "GOAWAY NO_ERROR")
                let end = H2.until(client) { $0.stream == 1 && $0.flags & H2.endStream != 0 }
                #expect(end != nil, "the stream in flight was answered after the GOAWAY")
            }
            await backend.shutdown()
        }

        @Test(
            "RFC 9113 errors get the GOAWAY it names: a bad preface, an oversize frame, frames after END_STREAM, a window overflow"
        )
        func protocolErrors() async throws {
            let backend = try await TestBackend(name: "rs1")
            let (director, port) = try Self.director(backend)
            defer { director.stop() }

            // §3.4: a preface that is not the preface.
            let badPreface = BlockingClient(port: port, timeout: 5)
            try badPreface.connect()
            try badPreface.send(Array("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".utf8) + H2.frame(H2.settings))
            #expect(H2.goaway(badPreface) == H2.protocolError)

            // §4.2: a frame over SETTINGS_MAX_FRAME_SIZE (16 384 by default).
            let oversize = try H2.open(port: port)
            try oversize.send(
                H2.get(stream: 1, end: false)
                    + H2.frame(H2.data, stream: 1, [UInt8](repeating: 0, count: 16_385)))
            #expect(H2.goaway(oversize) == H2.frameSizeError)

            // §5.1: DATA after the client's END_STREAM, on a half-closed (remote) stream, is a stream error
            // STREAM_CLOSED (RST_STREAM, the connection lives on); on a closed stream, a connection error.
            let halfClosed = try H2.open(port: port)
            try halfClosed.send(H2.get(stream: 1) + H2.frame(H2.data, flags: H2.endStream, stream: 1, [0x78]))
            let reset = H2.until(halfClosed) { $0.type == H2.rstStream }
            #expect(reset?.stream == 1 && reset?.errorCode == H2.streamClosed)
            try halfClosed.send(H2.get(stream: 3))
            #expect(H2.until(halfClosed) { $0.stream == 3 && $0.type == H2.headers } != nil, "the connection serves on")
            let closed = try H2.open(port: port)
            try closed.send(H2.get(stream: 1))
            #expect(H2.until(closed) { $0.stream == 1 && $0.flags & H2.endStream != 0 } != nil, "the response ended")
            try closed.send(H2.frame(H2.data, flags: H2.endStream, stream: 1, [0x78]))
            #expect(H2.goaway(closed) == H2.streamClosed)
            #expect(closed.waitForClose())

            // §6.9.1: a WINDOW_UPDATE past 2^31-1 on the connection is FLOW_CONTROL_ERROR.
            let overflow = try H2.open(port: port)
            try overflow.send(H2.frame(H2.windowUpdate, stream: 0, H2.be32(0x7FFF_FFFF)))
            #expect(H2.goaway(overflow) == H2.flowControlError)
            await backend.shutdown()
        }
    }
}
