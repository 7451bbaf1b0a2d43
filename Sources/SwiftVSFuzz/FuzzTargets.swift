import SwiftVSBench
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSMedia

/// The fuzz targets: each takes any bytes, must never crash (or trip the address sanitizer in the fuzz build),
/// and checks the invariants its parser or machine promises. One binary runs them (`swiftvs-fuzz`, built with
/// libFuzzer by `scripts/fuzz.sh`); the tests replay the committed corpus through the same functions.
public enum FuzzTargets {
    public typealias Target = @Sendable (UnsafeRawBufferPointer) -> Void

    /// By name, as `SWIFTVS_FUZZ_TARGET` and `fuzz/corpus/NAME` say.
    public static let all: [String: Target] = [
        "http-request": httpRequest,
        "http-response": httpResponse,
        "exchange": exchange,
        "ts": transportStream,
        "vrrp": vrrp,
        "config": config,
        "scenario": scenario,
        "front": front,
        "h2": http2,
    ]

    /// An HTTP/2 client's bytes into the connection machine, in pieces the first byte sizes, each request answered
    /// with an HTTP/1.1 response (its bytes the input's too) through `HTTP2Response`: what it writes is whole
    /// frames, a request's head is HTTP/1.1 with CRLF line endings, and once failed it stays failed.
    static func http2(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let piece = Int(first % 97) + 1
        var input = first & 0x80 == 0 ? Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) : []
        input += bytes[1...]
        var connection = HTTP2Connection()
        var events: [HTTP2Connection.Event] = []
        var pending: [UInt8] = []
        var now: UInt64 = 0
        var at = 0
        while at < input.count {
            let end = min(input.count, at + piece)
            pending += input[at..<end]
            at = end
            now += 1_000_000
            let wasFailed = connection.failed != nil
            let used = pending.withUnsafeBytes { connection.receive($0, now: now, events: &events) }
            precondition(used >= 0 && used <= pending.count, "the machine uses what it was given, no more")
            precondition(!wasFailed || connection.failed != nil, "a failed connection stays failed")
            pending.removeFirst(used)
            for event in events {
                guard case .request(let stream, let head) = event else { continue }
                precondition(head.http1.count >= 4 && Array(head.http1.suffix(4)) == [13, 10, 13, 10], "a whole head")
                head.http1.withUnsafeBytes {
                    precondition(HTTP1RequestHead.lineEndingProblem($0) == nil, "CRLF line endings only")
                }
                var response = HTTP2Response(stream: stream, isHEAD: head.isHEAD)
                let text = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + input.suffix(64)
                _ = text.withUnsafeBytes { response.feed($0, into: &connection) }
                _ = response.end(into: &connection)
            }
            events.removeAll()
        }
        // What was written is whole frames.
        var frameAt = 0
        let output = connection.output
        while frameAt < output.count {
            precondition(output.count - frameAt >= 9, "a whole frame header")
            let length = Int(output[frameAt]) << 16 | Int(output[frameAt + 1]) << 8 | Int(output[frameAt + 2])
            precondition(length <= HTTP2Connection.maxFrameSize, "within the default frame size")
            frameAt += 9 + length
        }
        precondition(frameAt == output.count, "frames end where the output does")
    }

    /// A connection's first bytes, as the director reads them before any real server is chosen: what it speaks
    /// (TLS, the HTTP/2 preface, HTTP/1), a PROXY header, a TLS ClientHello's server name and ALPN list.
    static func front(_ bytes: UnsafeRawBufferPointer) {
        let array = Array(bytes)
        for tls in [false, true] { _ = FrontProtocol.classify(array, tls: tls, http2: true) }
        if case .header(let header, let length) = ProxyHeader.parse(array) {
            precondition(length > 0 && length <= array.count, "a PROXY header is within what was read")
            if let header {
                precondition([4, 16].contains(header.source.count), "an address of 4 or 16 bytes")
                precondition(header.source.count == header.destination.count, "one family in a header")
                precondition((0...65535).contains(header.sourcePort), "a port")
                for version in ProxyHeader.Version.allCases {
                    let again = header.encode(version)
                    guard case .header(let back?, let backLength) = ProxyHeader.parse(again) else {
                        preconditionFailure("a header the director writes parses back")
                    }
                    precondition(back == header && backLength == again.count, "the same header, every byte of it")
                }
            }
        }
        if case .hello(let hello) = ClientHello.read(array) {
            if let name = hello.serverName {
                precondition(!name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "a host name's bytes")
            }
            precondition(
                hello.protocols.allSatisfy {
                    !$0.isEmpty && $0.utf8.count < 256 && $0.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
                },
                "ALPN names of 1-255 printable ASCII bytes")
        }
    }

    /// A request head as the relay reads it: whole, and as a head still arriving.
    static func httpRequest(_ bytes: UnsafeRawBufferPointer) {
        if let end = HTTPResponseScanner.findHeadEnd(bytes, from: 0) {
            precondition(end >= 4 && end <= bytes.count, "a head ends inside what was read")
            let head = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
            if let scanned = HTTP1RequestHead.scan(head, maxHeaders: 100) {
                precondition(scanned.length == end, "a plain head is all of its bytes")
                if let line = scanned.connectionLine {
                    precondition(line.lowerBound >= 0 && line.upperBound <= end, "the Connection line is in the head")
                }
                precondition(HTTP1RequestHead.lineEndingProblem(head) == nil, "a plain head has CRLF line endings")
            }
        } else {
            _ = HTTP1RequestHead.classifyPartial(bytes)
        }
        _ = HTTP1RequestHead.lineEndingProblem(bytes)
    }

    /// A response read as the relay reads it, in pieces whose sizes the first byte chooses: framing, chunked
    /// decoding, hop-by-hop lines. The same bytes in one piece must end the same way.
    static func httpResponse(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
        let piece = Int(first % 61) + 1
        func run(_ size: Int) -> (HTTPResponseScanner.Outcome?, Int) {
            var scanner = HTTPResponseScanner()
            scanner.collectsHopLines = true
            scanner.reset(headRequest: first & 0x80 != 0)
            var at = 0
            var last: HTTPResponseScanner.Outcome?
            while at < body.count {
                let end = min(body.count, at + size)
                let outcome = scanner.feed(UnsafeRawBufferPointer(rebasing: body[at..<end]))
                last = outcome
                switch outcome {
                case .needMore:
                    at = end
                    continue
                case .complete(_, _, let consumed):
                    precondition(consumed >= 0 && consumed <= end - at, "a response ends inside the piece fed")
                    return (outcome, at + consumed)
                case .invalid:
                    return (outcome, at)
                }
            }
            return (last ?? scanner.endOfStream(), at)
        }
        let whole = run(body.count)
        let pieces = run(piece)
        if case .complete(let headEnd, _, _)? = whole.0, case .complete? = pieces.0 {
            _ = headEnd
            precondition(whole.1 == pieces.1, "a response ends at the same byte however it is split")
        }
    }

    /// Events from the bytes, checked against the invariants of `HTTPExchange`: a real server's slot is held at
    /// most once and given back once; a response head goes to the client only for a request in flight; after a
    /// drain and the client's close nothing is held (drain reaches zero).
    static func exchange(_ bytes: UnsafeRawBufferPointer) {
        var machine = HTTPExchange(
            HTTPExchange.Settings(TimeoutsConfig(), retries: Int(bytes.first ?? 0) % 3, timesConnects: true), now: 0)
        var now: UInt64 = 0
        var held = 0
        var requests = 0
        var index = 1
        func byte() -> UInt8 {
            defer { index += 1 }
            return index < bytes.count ? bytes[index] : 0
        }
        let failures: [UpstreamFailure] = [
            .connect(timedOut: false), .connect(timedOut: true), .lostBeforeResponse, .badResponse, .serverTimeout,
            .localResources,
        ]
        while index < bytes.count {
            let code = byte()
            now &+= UInt64(byte()) * 250_000_000
            let event: HTTPExchange.Event
            switch code % 16 {
            case 0: event = .headBegun(now: now)
            case 1: event = .malformed(status: code & 0x10 == 0 ? 400 : 431)
            case 2, 3:
                event = .request(
                    .init(
                        idempotent: code & 0x10 != 0, keepAlive: code & 0x20 != 0, upgrade: code & 0x40 != 0,
                        complete: code & 0x80 == 0), now: now)
            case 4: event = .picked(server: code & 0x10 == 0 ? Int(byte() % 8) : nil, now: now)
            case 5: event = .connected(now: now)
            case 6: event = .bodyForwarded
            case 7: event = .bodyEnded(now: now)
            case 8: event = .requestSent(now: now)
            case 9:
                let statuses = [100, 101, 103, 200, 204, 304, 404, 500, 99, 0]
                event = .response(
                    .init(
                        status: statuses[Int(byte()) % statuses.count], endsByClose: code & 0x10 != 0,
                        serverKeepsAlive: code & 0x20 != 0), now: now)
            case 10: event = .responseEnded(serverReusable: code & 0x10 != 0, now: now)
            case 11: event = .upstreamFailed(failures[Int(byte()) % failures.count], headWithheld: code & 0x10 != 0)
            case 12: event = .tick(now: now)
            case 13: event = .drain(bytesPending: code & 0x10 != 0)
            case 14: event = .clientClosed
            default:
                switch code & 0x30 {
                case 0: event = .tunnelEnded
                case 0x10: event = .activity(now: now)
                default: event = .answer(status: code & 0x40 == 0 ? 308 : 301)
                }
            }
            let before = machine.state
            let holdingBefore = machine.holding
            let action = machine.handle(event)
            if case .picked(let server?, _) = event, holdingBefore == nil, machine.holding == server { held += 1 }
            if action.release { held -= 1 }
            precondition(held >= 0 && held <= 1, "a slot is held at most once and given back once")
            precondition(held == (machine.holding == nil ? 0 : 1), "the slot count is the machine's state")
            if case .request = event, before == .idle { requests += 1 }
            switch action.next {
            case .passHead, .passInformational, .tunnel:
                precondition(requests > 0, "no response to a client that sent no request")
                if case .exchanging = before {} else { preconditionFailure("a response head outside an exchange") }
            case .connect(let server):
                precondition(machine.holding == server, "a connect is to the server whose slot is held")
            default:
                break
            }
        }
        // Drain, then the client goes: nothing may stay held (a tunnel keeps its slot until it ends).
        _ = machine.handle(.drain(bytesPending: false))
        let closed = machine.handle(.clientClosed)
        if closed.release { held -= 1 }
        if case .tunnel = machine.state {
            if machine.handle(.tunnelEnded).release { held -= 1 }
        }
        precondition(held == 0 && machine.holding == nil, "drain reaches zero")
    }

    /// A TS feed in pieces (sizes from the first byte): segments come out whole, memory stays bounded.
    static func transportStream(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        var segmenter = TSSegmenter(targetDuration: 2)
        let piece = Int(first) * 7 + 1
        var at = 1
        while at < bytes.count {
            let end = min(bytes.count, at + piece)
            for segment in segmenter.feed(UnsafeRawBufferPointer(rebasing: bytes[at..<end]), wallClock: 1.8e9) {
                precondition(segment.bytes.count <= TSSegmenter.maxSegmentBytes + 188 * 3, "a segment within its cap")
                precondition(segment.duration >= 0, "a segment lasts no less than nothing")
            }
            at = end
        }
    }

    /// A VRRP packet as a raw socket or the UDP transport delivers it.
    static func vrrp(_ bytes: UnsafeRawBufferPointer) {
        let array = Array(bytes)
        if case .success(let decoded) = VRRPAdvert.decode(ipPacket: array) {
            precondition(decoded.source.count == 4, "an IPv4 source")
            precondition(decoded.advert.maxAdvertInterval > 0, "a decoded advert has an interval")
        }
        if array.count >= 8 {
            _ = VRRPAdvert.decode(
                message: Array(array[8...]), source: Array(array[0..<4]), destination: Array(array[4..<8]))
        }
    }

    /// A director config: any text is read or refused with problems that name a key, never a crash.
    static func config(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ConfigLoader.load(yaml: text, source: "fuzz")
        } catch {
            precondition(!error.problems.isEmpty, "a refused config says why")
        }
    }

    /// A bench scenario, likewise.
    static func scenario(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ScenarioLoader.load(
                yaml: text, source: "fuzz", builtins: ["swiftvs": "/bin/true", "scenario_dir": "/tmp"], overrides: [:],
                defaultThreads: 1)
        } catch {
            precondition(!error.problems.isEmpty, "a refused scenario says why")
        }
    }
}
