import SwiftVSSystem
import CSwiftVSLinux
import Glibc
import NIOCore
import NIOHTTP1
import SwiftVSCore

/// An upstream connection of the relay engine's HTTP path, parked in its loop's pool between requests.
final class RelayUpstream {
    let fd: Int32
    let serverID: Int
    let serviceID: ObjectIdentifier
    let idleNanos: UInt64
    let loop: RelayLoop
    var owner: HTTPRelaySession?
    var connecting = true
    var readable = false
    var hangup = false
    var writable = false
    private(set) var closed = false

    init(fd: Int32, serverID: Int, serviceID: ObjectIdentifier, idleNanos: UInt64, loop: RelayLoop) {
        self.fd = fd
        self.serverID = serverID
        self.serviceID = serviceID
        self.idleNanos = idleNanos
        self.loop = loop
    }

    func close() {
        guard !self.closed else { return }
        self.closed = true
        self.owner = nil
        Glibc.close(self.fd)
        self.loop.retire(self)
    }
}

/// The relay engine's HTTP path, on raw sockets. Plain requests
/// (`HTTP1RequestHead`) go to a real server as the client's own bytes, less the Connection line and plus
/// X-Forwarded-For; the response comes back as the real server's bytes, its head rewritten in place (hop-by-hop
/// lines out, `HTTP/1.0` made `HTTP/1.1`, `Connection: close` when the connection ends) and its body passed on as
/// read, while `HTTPResponseScanner` finds where it ends.
///
/// Every decision of the exchange (which step comes next, retries, keep-alive, timeouts, drain, error pages, the
/// real server's in-flight slot) is `HTTPExchange`'s: this driver feeds it what the sockets did and performs what
/// it answers (`perform`).
///
/// A head that arrives in pieces is waited for, under `timeouts.header_read` (408). Anything else, at a request
/// boundary (a head that is not plain, a body, an upgrade, HTTP/1.0, a malformed or oversize request), hands the
/// connection with its unread bytes to the NIOHTTP1 proxy, which serves it from then on and answers the errors.
final class HTTPRelaySession: RelayConnection, ExchangeDriver {

    /// Whether the relay serves a service's requests: not when a hashing scheduler hashes on a request field,
    /// which needs the parsed request (the NIOHTTP1 proxy serves those services).
    static func serves(_ config: VirtualServiceConfig) -> Bool {
        (!config.scheduler.isHashing || config.effectiveHash == .source) && config.persistence?.key != .hash
            && config.httpsRedirect == nil && config.routes.isEmpty && !config.servers.contains { $0.tls != nil }
    }

    /// Room before a response's bytes in its buffer, so that its head can grow in place (`Connection: close`).
    static let headroom = 64
    static let connectionClose = Array("Connection: close\r\n".utf8)

    /// What a client connection's sessions share: worked out once per connection, not per HTTP/2 stream.
    struct Client {
        let sourceKey: UInt32
        /// `X-Forwarded-For` and `X-Forwarded-Proto` lines, as configured.
        let forwardedLine: [UInt8]
        let settings: HTTPExchange.Settings
        let idleNanos: UInt64
        let headerReadNanos: UInt64
        let maxHeadBytes: Int
        let maxHeaders: Int
        let maxIdlePerServer: Int
        let http2: Bool

        init(_ config: VirtualServiceConfig, remote: SocketAddress?, secure: Bool) {
            self.sourceKey = remote?.sourceKey(withPort: config.flags.port) ?? 0
            var forwarded = ""
            if config.forwardedFor, let ip = remote?.ipAddress { forwarded = "X-Forwarded-For: \(ip)\r\n" }
            // Over TLS, as the NIO proxy says it (a client's own X-Forwarded-Proto sends its request there).
            if secure { forwarded += "X-Forwarded-Proto: https\r\n" }
            self.forwardedLine = Array(forwarded.utf8)
            self.settings = HTTPExchange.Settings(config.timeouts, retries: config.retries, timesConnects: true)
            self.idleNanos = UInt64(max(0, config.timeouts.idle) * 1e9)
            self.headerReadNanos = UInt64(max(0, config.timeouts.headerRead) * 1e9)
            self.maxHeadBytes = min(config.limits.maxHeaderBytes, RelayLoop.bufferSize)
            self.maxHeaders = config.limits.maxHeaders
            self.maxIdlePerServer = config.maxIdlePerServer
            self.http2 = config.http2
        }
    }

    let loop: RelayLoop
    let service: VirtualService
    let serviceID: ObjectIdentifier
    let clientFD: Int32
    /// The client's TLS, when the relay terminates it (`RelayTLSContext`); nil for clear text.
    let tls: RelayTLSConnection?
    /// The HTTP/2 stream this session serves, as if it were a client connection with one request
    /// (`HTTP2RelayStream`); nil for an HTTP/1 client. `clientFD` is then the HTTP/2 connection's.
    let stream: HTTP2RelayStream?
    let client: Client
    /// The client came over TLS (X-Forwarded-Proto: https).
    var secure: Bool { self.tls != nil || self.stream?.connection.tls != nil }
    let remote: SocketAddress?
    var sourceKey: UInt32 { self.client.sourceKey }
    var sweepIndex = -1
    var exchange: HTTPExchange
    private var closed = false

    // Client side.
    private var clientReadable = false
    private var clientHangup = false
    private var clientWritable = true
    /// Client bytes not used yet (the next request, or the start of it).
    private var inbound: UnsafeMutableRawPointer?
    private var inStart = 0
    private var inEnd = 0
    /// Bytes for the client not written yet: a response's bytes in place in their read buffer (`out`), or, when
    /// they had to be put together, a copy (`outCopy`).
    private var out: UnsafeMutableRawPointer?
    private var outStart = 0
    private var outEnd = 0
    private var outCopy: [UInt8] = []
    private var outCopyStart = 0

    // The request in flight; kept until its response starts, so that a retry can send it again.
    private var request: UnsafeMutableRawPointer?
    private var requestLength = 0
    private var requestSent = 0
    private var isHEAD = false
    private var upstream: RelayUpstream?
    var slot: RealServerSlot?
    var failureDetail = ""
    var access = AccessFacts()
    /// The relay serves services without routes: the pool is the service.
    var pool: VirtualService { self.service }
    lazy var clientText = AccessRecord.address(self.remote)
    var nowNanos: UInt64 { self.loop.now }
    var queueTicket: UInt64?
    /// A request has started: the connection speaks HTTP/1.
    private var begun = false

    func queueDelivery() -> @Sendable (RealServerSlot) -> Void {
        let session = LoopConfined(self)
        let loop = self.loop
        return { slot in
            loop.post(
                .run {
                    let session = session.value
                    session.delivered(slot, nanos: loop.now)
                    if !session.closed { session.pump() }
                })
        }
    }

    // The response in flight.
    private var scanner = HTTPResponseScanner.forProxy()
    private var headDone = false
    /// False once bytes came after the response's end (the connection is not on a response boundary).
    private var upstreamReusable = true
    private var partialHead: [UInt8] = []

    /// When the connection came (its TLS handshake may take `timeouts.header_read`).
    private let opened: UInt64
    private var idleNanos: UInt64 { self.client.idleNanos }
    private var headerReadNanos: UInt64 { self.client.headerReadNanos }
    private var forwardedLine: [UInt8] { self.client.forwardedLine }
    private var maxHeadBytes: Int { self.client.maxHeadBytes }
    private var maxHeaders: Int { self.client.maxHeaders }

    convenience init(
        loop: RelayLoop, service: VirtualService, config: VirtualServiceConfig, clientFD: Int32, remote: SocketAddress?,
        tls: RelayTLSConnection? = nil
    ) {
        self.init(
            loop: loop, service: service, client: Client(config, remote: remote, secure: tls != nil),
            clientFD: clientFD,
            remote: remote, tls: tls)
    }

    init(
        loop: RelayLoop, service: VirtualService, client: Client, clientFD: Int32, remote: SocketAddress?,
        tls: RelayTLSConnection? = nil, stream: HTTP2RelayStream? = nil
    ) {
        self.loop = loop
        self.tls = tls
        self.stream = stream
        self.client = client
        // A stream's request is all there is: once read, the "client" has nothing more to send.
        self.clientHangup = stream != nil
        self.service = service
        self.serviceID = ObjectIdentifier(service)
        self.clientFD = clientFD
        self.remote = remote
        self.exchange = HTTPExchange(client.settings, now: loop.now)
        self.opened = loop.now
    }

    // MARK: events

    func clientEvent(_ events: UInt32) {
        if self.closed { return }
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            // Reset, or both directions shut: nothing more can reach the client.
            return self.close()
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 { self.clientReadable = true }
        if events & EPOLLRDHUP.rawValue != 0 { self.clientHangup = true }
        if events & EPOLLOUT.rawValue != 0 { self.clientWritable = true }
        self.pump()
    }

    func upstreamEvent(_ upstream: RelayUpstream, _ events: UInt32) {
        guard !self.closed, upstream === self.upstream else {
            upstream.close()
            return
        }
        let hangup = events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let writable = events & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        if upstream.connecting {
            guard writable || hangup else { return }
            let error = RelayLoop.connectError(upstream.fd)
            if error != 0 {
                self.upstream = nil
                upstream.close()
                self.connectFailed(error)
                return self.pump()
            }
            upstream.connecting = false
            self.attach(upstream)
        }
        if hangup || events & EPOLLIN.rawValue != 0 { upstream.readable = true }
        if hangup { upstream.hangup = true }
        if writable { upstream.writable = true }
        self.pump()
    }

    /// Does everything that can be done without blocking: flush to the client, then the request's next step.
    func pump() {
        while !self.closed {
            if !self.flush() { return }
            switch self.exchange.state {
            case .closing:
                return self.close()
            case .idle:
                if !self.startRequest() { return }
            case .exchanging:
                if self.requestSent < self.requestLength {
                    if !self.sendRequest() { return }
                } else {
                    guard let upstream = self.upstream, upstream.readable else { return }
                    if !self.receive(upstream) { return }
                }
            case .choosing, .queued, .connecting, .tunnel, .closed:
                return
            }
        }
    }

    /// Writes what waits for the client; false while some of it is left.
    @inline(__always)
    private func flush() -> Bool {
        while true {
            let count: Int
            let sent: Int
            if !self.outCopy.isEmpty {
                guard self.clientWritable else { return false }
                count = self.outCopy.count - self.outCopyStart
                let start = self.outCopyStart
                sent = self.outCopy.withUnsafeBytes { self.clientSend($0.baseAddress! + start, count) }
            } else if let out = self.out {
                guard self.clientWritable else { return false }
                count = self.outEnd - self.outStart
                sent = self.clientSend(out + self.outStart, count)
            } else {
                return true
            }
            if sent > 0 {
                if !self.outCopy.isEmpty {
                    self.outCopyStart += sent
                    if self.outCopyStart == self.outCopy.count {
                        self.outCopy.removeAll(keepingCapacity: true)
                        self.outCopyStart = 0
                    }
                } else {
                    self.outStart += sent
                    if self.outStart == self.outEnd {
                        self.loop.recycle(self.out!)
                        self.out = nil
                    }
                }
                // A short send filled the socket; TLS writes a record at a time, and only `EAGAIN` says full.
                if sent < count && self.tls == nil {
                    self.clientWritable = false
                    return false
                }
                continue
            }
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK {
                self.clientWritable = false
                return false
            }
            if error == EINTR { continue }
            self.close()
            return false
        }
    }

    /// `send` to the client, or its TLS: bytes taken, or -1 with `errno` (`EAGAIN` when it would block).
    @inline(__always)
    private func clientSend(_ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        if let stream = self.stream { return stream.take(bytes, count) }
        guard let tls = self.tls else { return send(self.clientFD, bytes, count, Int32(MSG_NOSIGNAL)) }
        switch tls.write(bytes, count: count) {
        case .bytes(let n): return n
        case .wouldBlock: errno = EAGAIN
        case .closed, .failed: errno = ECONNRESET
        }
        return -1
    }

    /// `recv` from the client, or its TLS (which may be in its handshake): bytes, 0 at the end, -1 with `errno`,
    /// or `blockedOnWrite` (TLS wants the socket writable first: readable stays as it is).
    @inline(__always)
    private func clientReceive(_ into: UnsafeMutableRawPointer, _ room: Int) -> Int {
        if let stream = self.stream { return stream.give(into, room) }
        guard let tls = self.tls else { return recv(self.clientFD, into, room, 0) }
        switch tls.read(into: into, count: room) {
        case .bytes(let n): return n
        case .closed: return 0
        case .wouldBlock(let wantsWrite):
            if wantsWrite { return Self.blockedOnWrite }
            errno = EAGAIN
        case .failed: errno = ECONNRESET
        }
        return -1
    }

    static let blockedOnWrite = -2

    /// Queues `buffer[from..<to]` for the client: in place when nothing else waits, else as a copy.
    private func queue(_ buffer: UnsafeMutableRawPointer, from: Int, to: Int) {
        if self.out == nil && self.outCopy.isEmpty {
            self.out = buffer
            self.outStart = from
            self.outEnd = to
        } else {
            if let out = self.out {
                self.outCopy.append(
                    contentsOf: UnsafeRawBufferPointer(start: out + self.outStart, count: self.outEnd - self.outStart))
                self.loop.recycle(out)
                self.out = nil
            }
            self.outCopy.append(contentsOf: UnsafeRawBufferPointer(start: buffer + from, count: to - from))
            self.loop.recycle(buffer)
        }
    }

    // MARK: requests

    /// Starts the request at the front of the client's bytes (reading them as needed); false while waiting for
    /// bytes, or when the connection was handed over or closed.
    private func startRequest() -> Bool {
        while true {
            if self.inEnd > self.inStart, let inbound = self.inbound {
                let raw = UnsafeRawBufferPointer(start: inbound + self.inStart, count: self.inEnd - self.inStart)
                if !self.begun && self.stream == nil && self.client.http2 && raw.starts(with: "PRI ".utf8) {
                    // HTTP/2's preface: h2c with prior knowledge, or h2 that ALPN chose.
                    self.becomeHTTP2(raw)
                    return false
                }
                if let end = HTTPResponseScanner.findHeadEnd(raw, from: 0) {
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<end])
                    guard end <= self.maxHeadBytes,
                        let head = HTTP1RequestHead.scan(bytes, maxHeaders: self.maxHeaders)
                    else {
                        if HTTP1RequestHead.lineEndingProblem(bytes) != nil {
                            self.perform(self.exchange.handle(.malformed(status: 400)))
                            return true
                        }
                        self.handOver()
                        return false
                    }
                    self.begin(head, raw)
                    return true
                }
                let partial = HTTP1RequestHead.classifyPartial(raw)
                if case .malformed = partial {
                    self.perform(self.exchange.handle(.malformed(status: 400)))
                    return true
                }
                if raw.count >= self.maxHeadBytes || partial == .notPlain {
                    // Too long, or it can only be something the NIO proxy serves (or answers 400/431).
                    self.handOver()
                    return false
                }
                if !self.clientReadable {
                    // Not all here: wait for the rest, under timeouts.header_read (408).
                    _ = self.exchange.handle(.headBegun(now: self.loop.now))
                    return false
                }
            } else if self.loop.draining {
                self.close()
                return false
            }
            guard self.clientReadable else { return false }
            if self.inbound == nil {
                self.inbound = self.loop.takeBuffer()
                self.inStart = 0
                self.inEnd = 0
            } else if self.inStart > 0 {
                let count = self.inEnd - self.inStart
                self.inbound!.copyMemory(from: self.inbound! + self.inStart, byteCount: count)
                self.inStart = 0
                self.inEnd = count
            }
            let room = RelayLoop.bufferSize - self.inEnd
            let count = self.clientReceive(self.inbound! + self.inEnd, room)
            if count > 0 {
                self.inEnd += count
                self.exchange.touch(self.loop.now)
                // A short read drained the socket; TLS reads a record at a time, and says itself when it has.
                if (self.tls?.isDrained ?? (count < room)) && !self.clientHangup { self.clientReadable = false }
            } else if count == Self.blockedOnWrite {
                return false
            } else if count == 0 {
                // The client is done sending: close once nothing is left to answer.
                self.clientReadable = false
                if self.inEnd == self.inStart {
                    self.close()
                } else {
                    self.handOver()
                }
                return false
            } else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK {
                    self.clientReadable = false
                } else if error != EINTR {
                    self.close()
                    return false
                }
            }
        }
    }

    /// Takes the plain request `head` off the front of the client's bytes and sends it on its way.
    private func begin(_ head: HTTP1RequestHead, _ raw: UnsafeRawBufferPointer) {
        let request = self.request ?? self.loop.takeBuffer()
        self.request = request
        var length = 0
        @inline(__always) func put(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            (request + length).copyMemory(from: base, byteCount: bytes.count)
            length += bytes.count
        }
        if head.forwardedProto && self.secure { return self.handOver() }
        self.begun = true
        if self.service.accessLog != nil { self.noteRequestLine(raw) }
        let body = head.length - 2
        if let line = head.connectionLine {
            put(UnsafeRawBufferPointer(rebasing: raw[0..<line.lowerBound]))
            put(UnsafeRawBufferPointer(rebasing: raw[line.upperBound..<body]))
        } else {
            put(UnsafeRawBufferPointer(rebasing: raw[0..<body]))
        }
        if length + self.forwardedLine.count + 2 > RelayLoop.bufferSize {
            // No room for X-Forwarded-For: the NIO proxy takes it (it has the same limits, and answers 431).
            return self.handOver()
        }
        self.forwardedLine.withUnsafeBytes { put($0) }
        (request + length).storeBytes(of: 0x0A0D, as: UInt16.self)  // CRLF, little-endian
        length += 2
        self.requestLength = length
        self.inStart += head.length
        if self.inStart == self.inEnd, let inbound = self.inbound {
            self.loop.recycle(inbound)
            self.inbound = nil
            self.inStart = 0
            self.inEnd = 0
        }
        self.isHEAD = head.isHEAD
        if self.loop.draining {
            // A connection the drain has not reached yet: its request is answered with `Connection: close`.
            _ = self.exchange.handle(.drain(bytesPending: true))
        }
        let facts = HTTPExchange.Request(idempotent: head.idempotent, keepAlive: !head.close)
        self.perform(self.exchange.handle(.request(facts, now: self.loop.now)))
    }

    /// The method and target of a plain head (`METHOD SP TARGET SP HTTP/1.1`), for the access log.
    private func noteRequestLine(_ raw: UnsafeRawBufferPointer) {
        guard let space = raw.firstIndex(of: 0x20) else { return }
        let rest = raw[(space + 1)...]
        let end = rest.firstIndex(of: 0x20) ?? rest.endIndex
        self.access.method = String(decoding: raw[..<space], as: UTF8.self)
        if self.stream != nil { self.access.version = "HTTP/2.0" }
        self.access.target = String(decoding: rest[..<end], as: UTF8.self)
    }

    // MARK: the machine's actions

    /// Does what the exchange decided: the failure's count, the slot, the upstream connection, then the next step.
    func perform(_ action: HTTPExchange.Action) {
        self.settle(action)
        switch action.next {
        case .wait, .nextRequest, .closeAfterFlush:
            // The pump goes on from the machine's state: the next request, or the close once all is written.
            return
        case .pick:
            self.pick(key: self.sourceKey, remote: self.remote, now: self.loop.seconds, nanos: self.loop.now)
        case .connect:
            self.connect()
        case .send:
            self.requestSent = 0
            self.scanner.reset(headRequest: self.isHEAD)
            self.headDone = false
            self.partialHead.removeAll(keepingCapacity: true)
            self.upstreamReusable = true
        case .respond(let status, let close):
            self.respondError(HTTPResponseStatus(statusCode: status), close: close)
        case .closeNow, .tunnel:
            // The relay serves no upgrades (they go to the NIO proxy), so a tunnel is never asked of it.
            self.close()
        case .passInformational, .passHead:
            // Only `startResponse` feeds a response head, and it performs these itself.
            return
        }
    }

    func parkUpstream() {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        if upstream.hangup || !self.loop.park(upstream, limit: self.client.maxIdlePerServer) { upstream.close() }
    }

    func closeUpstream() {
        self.upstream?.close()
        self.upstream = nil
    }

    /// Takes a pooled connection to the chosen server, or starts one without blocking.
    private func connect() {
        guard let slot = self.slot else { return }
        if let upstream = self.loop.takeUpstream(service: self.serviceID, server: slot.server.id) {
            return self.attach(upstream)
        }
        guard let fd = RelayLoop.startConnect(to: slot.address) else {
            return self.connectFailed(errno)
        }
        let upstream = RelayUpstream(
            fd: fd, serverID: slot.server.id, serviceID: self.serviceID,
            idleNanos: self.idleNanos, loop: self.loop)
        upstream.owner = self
        guard self.loop.watch(fd, upstream, tag: .upstream) else {
            let error = errno
            upstream.close()
            return self.connectFailed(error)
        }
        self.upstream = upstream
    }

    private func attach(_ upstream: RelayUpstream) {
        upstream.owner = self
        upstream.writable = true
        self.upstream = upstream
        self.perform(self.exchange.handle(.connected(now: self.loop.now)))
    }

    private func connectFailed(_ error: Int32) {
        self.failureDetail = VirtualService.connectFailure(error)
        let failure: UpstreamFailure
        if OpenFiles.isLocalExhaustion(error) {
            LocalExhaustion.warn(
                self.service.logger, "cannot open a connection to a real server", code: error,
                service: self.service.name)
            failure = .localResources
        } else {
            failure = .connect(timedOut: error == ETIMEDOUT)
        }
        self.perform(self.exchange.handle(.upstreamFailed(failure, headWithheld: false)))
    }

    /// Writes the request; false while the real server cannot take more.
    private func sendRequest() -> Bool {
        guard let upstream = self.upstream, let request = self.request else { return false }
        while self.requestSent < self.requestLength {
            guard upstream.writable else { return false }
            let sent = send(
                upstream.fd, request + self.requestSent, self.requestLength - self.requestSent,
                Int32(MSG_NOSIGNAL))
            if sent > 0 {
                self.requestSent += sent
                if self.requestSent < self.requestLength { upstream.writable = false }
            } else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK {
                    upstream.writable = false
                } else if error != EINTR {
                    // A pooled connection the real server had closed, or a reset.
                    self.upstreamEnded()
                    return true
                }
            }
        }
        _ = self.exchange.handle(.requestSent(now: self.loop.now))
        return true
    }

    // MARK: responses

    /// One read from the real server; false when it would block.
    private func receive(_ upstream: RelayUpstream) -> Bool {
        let buffer = self.loop.takeBuffer()
        let room = RelayLoop.bufferSize - Self.headroom
        let count = recv(upstream.fd, buffer + Self.headroom, room, 0)
        if count > 0 {
            if count < room && !upstream.hangup { upstream.readable = false }
            self.exchange.touch(self.loop.now)
            self.deliver(buffer, from: Self.headroom, to: Self.headroom + count)
            return true
        }
        self.loop.recycle(buffer)
        if count < 0 {
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK {
                upstream.readable = false
                return false
            }
            if error == EINTR { return true }
        }
        self.upstreamEnded()
        return true
    }

    /// Passes on the response bytes in `buffer[from..<to]`, rewriting a head in place.
    private func deliver(_ buffer: UnsafeMutableRawPointer, from: Int, to: Int) {
        if self.headDone {
            return self.deliverBody(buffer, from: from, to: to)
        }
        var buffer = buffer
        var start = from
        var end = to
        let headLength: Int
        if self.partialHead.isEmpty,
            let found = HTTPResponseScanner.findHeadEnd(
                UnsafeRawBufferPointer(start: buffer + start, count: end - start), from: 0)
        {
            headLength = found
        } else if self.partialHead.isEmpty,
            let problem = HTTPResponseScanner.bareLineEnding(
                UnsafeRawBufferPointer(
                    start: buffer + start,
                    count: end - start))
        {
            // A head with bare LFs never shows CRLFCRLF: a 502 now, not a 504 at the server timeout.
            self.loop.recycle(buffer)
            return self.badResponse("\(problem) in the response head")
        } else {
            // The head spans reads: gather it, then put it and what follows back in one buffer.
            let kept = self.partialHead.count
            self.partialHead.append(contentsOf: UnsafeRawBufferPointer(start: buffer + start, count: end - start))
            self.loop.recycle(buffer)
            let found = self.partialHead.withUnsafeBytes { HTTPResponseScanner.findHeadEnd($0, from: max(0, kept - 3)) }
            guard self.partialHead.count <= RelayLoop.bufferSize - Self.headroom else {
                return self.badResponse("response head over \(RelayLoop.bufferSize / 1024 - 1) KiB")
            }
            guard let found else {
                if let problem = self.partialHead.withUnsafeBytes({ HTTPResponseScanner.bareLineEnding($0) }) {
                    self.partialHead.removeAll(keepingCapacity: true)
                    return self.badResponse("\(problem) in the response head")
                }
                return
            }
            buffer = self.loop.takeBuffer()
            let target = buffer + Self.headroom
            self.partialHead.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            start = Self.headroom
            end = start + self.partialHead.count
            self.partialHead.removeAll(keepingCapacity: true)
            headLength = found
        }
        self.startResponse(buffer, start: start, headLength: headLength, end: end)
    }

    private func startResponse(_ buffer: UnsafeMutableRawPointer, start: Int, headLength: Int, end: Int) {
        let head = UnsafeRawBufferPointer(start: buffer + start, count: headLength)
        let outcome = self.scanner.feed(head)
        if case .invalid(let problem) = outcome {
            self.loop.recycle(buffer)
            return self.badResponse(problem)
        }
        let status = self.scanner.status
        let response = HTTPExchange.Response(status: status, endsByClose: self.scanner.readsUntilClose)
        let action = self.exchange.handle(.response(response, now: self.loop.now))
        let informational: Bool
        let addsClose: Bool
        switch action.next {
        case .passInformational:
            informational = true
            addsClose = false
        case .passHead(let close):
            informational = false
            addsClose = close
            self.headDone = true
            self.responded(status)
        default:
            // Not a response to pass on (a 101 nobody asked for, a status under 100).
            self.loop.recycle(buffer)
            self.failureDetail = "bad response: status \(status)"
            return self.perform(action)
        }
        // The head as the client gets it, right-aligned where the old one ended, so the body need not move.
        let headEnd = start + headLength
        let newStart = self.rewriteHead(buffer, start: start, headLength: headLength, addsClose: addsClose)
        if informational {
            // The final response follows: this head goes out as a copy, then the rest is read as a new head.
            self.queue(buffer, from: newStart, to: headEnd)
            self.scanner.reset(headRequest: self.isHEAD)
            if headEnd < end {
                let rest = self.loop.takeBuffer()
                (rest + Self.headroom).copyMemory(from: buffer + headEnd, byteCount: end - headEnd)
                self.deliver(rest, from: Self.headroom, to: Self.headroom + end - headEnd)
            }
            return
        }
        if case .complete(_, let keepAlive, _) = outcome {
            // No body (HEAD, 204, 304, Content-Length: 0): anything after the head is not HTTP.
            if !keepAlive || headEnd < end { self.upstreamReusable = false }
            self.queue(buffer, from: newStart, to: headEnd)
            return self.finish()
        }
        guard headEnd < end else {
            self.queue(buffer, from: newStart, to: headEnd)
            return
        }
        self.deliverBody(buffer, from: headEnd, to: end, headFrom: newStart)
    }

    /// Body bytes: passed on while the scanner finds where the response ends.
    private func deliverBody(_ buffer: UnsafeMutableRawPointer, from: Int, to: Int, headFrom: Int? = nil) {
        let outcome = self.scanner.feed(UnsafeRawBufferPointer(start: buffer + from, count: to - from))
        let counters = self.slot?.server.counters
        switch outcome {
        case .needMore:
            counters?.bytesOut.wrappingAdd(to - from, ordering: .relaxed)
            self.access.bytesOut &+= to - from
            self.queue(buffer, from: headFrom ?? from, to: to)
        case .complete(_, let keepAlive, let consumed):
            counters?.bytesOut.wrappingAdd(consumed, ordering: .relaxed)
            self.access.bytesOut &+= consumed
            if !keepAlive || from + consumed < to { self.upstreamReusable = false }
            self.queue(buffer, from: headFrom ?? from, to: from + consumed)
            self.finish()
        case .invalid(let problem):
            self.loop.recycle(buffer)
            // Found in the read that brought the head: nothing of this response has left, so the client gets a
            // 502 rather than a bare close.
            self.badResponse(problem, headWithheld: headFrom != nil)
        }
    }

    /// Rewrites the head at `buffer[start..<start+headLength]` so that it ends where it did; returns its new start.
    private func rewriteHead(_ buffer: UnsafeMutableRawPointer, start: Int, headLength: Int, addsClose: Bool) -> Int {
        // An HTTP/2 stream's head becomes HEADERS, which leave the hop-by-hop lines out anyway.
        if self.stream != nil { return start }
        let hopLines = self.scanner.hopLines
        if hopLines.isEmpty && !addsClose {
            if self.scanner.http10 { Self.makeHTTP11(buffer + start) }
            return start
        }
        // Kept pieces, right to left, into a scratch copy (pieces may move either way).
        return self.loop.withScratch { scratch in
            var length = 0
            @inline(__always) func put(_ from: Int, _ to: Int) {
                guard to > from else { return }
                (scratch + length).copyMemory(from: buffer + start + from, byteCount: to - from)
                length += to - from
            }
            var from = 0
            for line in hopLines {
                put(from, line.lowerBound)
                from = line.upperBound
            }
            put(from, headLength - 2)
            if addsClose {
                Self.connectionClose.withUnsafeBytes {
                    (scratch + length).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
                length += Self.connectionClose.count
            }
            (scratch + length).storeBytes(of: 0x0A0D, as: UInt16.self)
            length += 2
            let newStart = start + headLength - length
            (buffer + newStart).copyMemory(from: scratch, byteCount: length)
            if self.scanner.http10 { Self.makeHTTP11(buffer + newStart) }
            return newStart
        }
    }

    /// `HTTP/1.0` → `HTTP/1.1` at the start of a status line.
    @inline(__always)
    static func makeHTTP11(_ line: UnsafeMutableRawPointer) {
        line.storeBytes(of: 0x31, toByteOffset: 7, as: UInt8.self)
    }

    /// The response ended: the exchange decides what becomes of the upstream connection and of the client's.
    private func finish() {
        if let request = self.request {
            self.loop.recycle(request)
            self.request = nil
        }
        let reusable = self.upstreamReusable && !(self.upstream?.hangup ?? true)
        self.perform(self.exchange.handle(.responseEnded(serverReusable: reusable, now: self.loop.now)))
    }

    /// The real server closed, or its connection failed, before the response ended.
    private func upstreamEnded() {
        if self.headDone, case .complete? = self.scanner.endOfStream() {
            // A body that runs until the server closes has ended.
            self.upstreamReusable = false
            return self.finish()
        }
        self.failureDetail = "connection lost before the response"
        self.perform(self.exchange.handle(.upstreamFailed(.lostBeforeResponse, headWithheld: false)))
    }

    /// The real server sent something that is not an HTTP/1.x response.
    private func badResponse(_ problem: String, headWithheld: Bool = false) {
        self.failureDetail = "bad response: \(problem)"
        self.perform(self.exchange.handle(.upstreamFailed(.badResponse, headWithheld: headWithheld)))
    }

    /// The director's error page, after what is queued for the client.
    private func respondError(_ status: HTTPResponseStatus, close: Bool) {
        if let out = self.out {
            self.outCopy.append(
                contentsOf: UnsafeRawBufferPointer(start: out + self.outStart, count: self.outEnd - self.outStart))
            self.loop.recycle(out)
            self.out = nil
        }
        self.outCopy.append(contentsOf: ErrorPage(status: status, close: close).text.utf8)
        if let request = self.request {
            self.loop.recycle(request)
            self.request = nil
        }
        self.requestLength = 0
        self.requestSent = 0
        // What the client sent and we did not read is no request of a connection that closes.
        if close { self.inStart = self.inEnd }
    }

    // MARK: hand-over, timeouts, close

    /// Gives the client connection, with the bytes not used yet, to the NIO proxy. Only between requests.
    /// Over TLS the relay keeps the client's TLS and the NIO proxy gets the plaintext (`TLSBridge`).
    private func handOver() {
        var bytes: [UInt8] = []
        if let inbound = self.inbound, self.inEnd > self.inStart {
            bytes = Array(UnsafeRawBufferPointer(start: inbound + self.inStart, count: self.inEnd - self.inStart))
        }
        if let stream = self.stream {
            self.release(closingClient: false)
            return stream.bridge(bytes)
        }
        self.loop.unwatch(self.clientFD)
        self.release(closingClient: false)
        if let tls = self.tls {
            TLSBridge.start(loop: self.loop, service: self.service, tls: tls, remote: self.remote, bytes: bytes)
        } else {
            self.loop.handOff(self.clientFD, self.service, bytes, self.remote, false)
        }
    }

    /// The connection's first bytes are HTTP/2's preface: an `HTTP2RelaySession` serves it from here.
    private func becomeHTTP2(_ raw: UnsafeRawBufferPointer) {
        let bytes = Array(raw)
        self.release(closingClient: false)
        HTTP2RelaySession.start(
            loop: self.loop, service: self.service, client: self.client, clientFD: self.clientFD, tls: self.tls,
            remote: self.remote, bytes: bytes)
    }

    func drain() {
        let pending = self.inEnd != self.inStart || self.out != nil || !self.outCopy.isEmpty
        self.perform(self.exchange.handle(.drain(bytesPending: pending)))
    }

    func checkTimeout(now: UInt64) {
        guard !self.closed else { return }
        if let tls = self.tls, now &- self.opened > self.headerReadNanos, !tls.isHandshaken {
            // As the NIO proxy's front: `timeouts.header_read` covers the handshake too.
            return self.close()
        }
        let action = self.exchange.handle(.tick(now: now))
        guard action != .wait else { return }
        if action.failure == .connect(timedOut: true) { self.failureDetail = VirtualService.connectFailure(ETIMEDOUT) }
        if case .respond(504, _) = action.next, action.failure == nil { self.failureDetail = Self.serverTimedOut }
        self.perform(action)
        self.pump()
    }

    func close() {
        guard !self.closed else { return }
        // The exchange gives the slot back (if it holds one) and lets go of the upstream connection.
        var action = self.exchange.handle(.clientClosed)
        action.next = .wait
        self.perform(action)
        self.release(closingClient: true)
    }

    private func release(closingClient: Bool) {
        guard !self.closed else { return }
        self.closed = true
        if closingClient && self.stream == nil {
            self.tls?.free()
            Glibc.close(self.clientFD)
        }
        self.upstream?.close()
        self.upstream = nil
        assert(self.slot == nil, "the exchange holds every slot it takes, and gives each back")
        for buffer in [self.inbound, self.out, self.request] {
            if let buffer { self.loop.recycle(buffer) }
        }
        self.inbound = nil
        self.out = nil
        self.request = nil
        self.outCopy = []
        self.loop.forget(self)
        if closingClient { self.stream?.sessionEnded() }
    }
}
