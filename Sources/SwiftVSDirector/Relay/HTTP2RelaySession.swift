import CSwiftVSLinux
import Glibc
import NIOCore
import NIOHTTP1
import SwiftVSCore

/// An HTTP/2 client of the relay engine (h2 chosen by ALPN on the relay's TLS, or h2c with prior knowledge), on
/// the connection's raw socket. `HTTP2Connection` decides everything HTTP/2 (frames, streams, windows, limits,
/// errors); this driver reads and writes the socket and gives each request stream to an `HTTP2RelayStream`, which
/// has it served as HTTP/1.1: by an `HTTPRelaySession` of its own (the relay's exchange, retries, timeouts, pool
/// and access log, with the stream as its client), or, for a request with a body, by the NIO proxy over a socket
/// pair. Frames for the client are written once per loop round (`RelayLoop.flushLater`).
final class HTTP2RelaySession: RelayConnection {
    let loop: RelayLoop
    let service: VirtualService
    /// What every stream's `HTTPRelaySession` shares.
    let client: HTTPRelaySession.Client
    let clientFD: Int32
    let tls: RelayTLSConnection?
    let remote: SocketAddress?
    var sweepIndex = -1
    var machine: HTTP2Connection
    var streams: [UInt32: HTTP2RelayStream] = [:]
    private var events: [HTTP2Connection.Event] = []
    private var inbound: [UInt8] = []
    private var inStart = 0
    private var sent = 0
    private var readable = true
    private var writable = true
    /// TLS wanted the socket writable before it could read (a key update): the next EPOLLOUT reads again.
    private var readWantsWrite = false
    private var closed = false
    private var flushQueued = false
    /// Streams held because the client's socket is behind: woken as it drains.
    private var waiting: [HTTP2RelayStream] = []
    /// Streams held by the client's flow-control windows: woken by its WINDOW_UPDATE (or SETTINGS).
    private var windowBlocked: [HTTP2RelayStream] = []
    private var lastActive: UInt64
    private let idleNanos: UInt64
    /// After a connection error: the GOAWAY goes out, the write side shuts, and the client's bytes are read and
    /// dropped until it closes or this passes (so a reset does not destroy the GOAWAY on its way).
    private var lingerUntil: UInt64?
    private var shutDown = false

    /// Output held before streams are made to wait.
    static let outputLimit = 256 * 1024

    static func start(
        loop: RelayLoop, service: VirtualService, client: HTTPRelaySession.Client, clientFD: Int32,
        tls: RelayTLSConnection?, remote: SocketAddress?, bytes: [UInt8]
    ) {
        let session = HTTP2RelaySession(
            loop: loop, service: service, client: client, clientFD: clientFD, tls: tls, remote: remote)
        guard loop.rewatch(clientFD, session, tag: .h2Client) else {
            tls?.free()
            Glibc.close(clientFD)
            return
        }
        loop.track(session)
        session.inbound = bytes
        session.process()
        session.pump()
    }

    private init(
        loop: RelayLoop, service: VirtualService, client: HTTPRelaySession.Client, clientFD: Int32,
        tls: RelayTLSConnection?, remote: SocketAddress?
    ) {
        self.loop = loop
        self.service = service
        self.client = client
        self.clientFD = clientFD
        self.tls = tls
        self.remote = remote
        var settings = HTTP2Connection.Settings()
        settings.maxHeaderListSize = client.maxHeadBytes
        settings.maxConcurrentStreams = FrontPipeline.maxConcurrentStreams
        self.machine = HTTP2Connection(settings: settings)
        self.lastActive = loop.now
        self.idleNanos = client.idleNanos
        self.inbound.reserveCapacity(RelayLoop.bufferSize)
    }

    // MARK: the client's socket

    func clientEvent(_ events: UInt32) {
        if self.closed { return }
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { return self.close() }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 { self.readable = true }
        if events & EPOLLOUT.rawValue != 0 {
            self.writable = true
            if self.readWantsWrite {
                self.readWantsWrite = false
                self.readable = true
            }
            self.flushNow()
        }
        self.pump()
    }

    /// Reads what the client sent and acts on it, until the socket is drained.
    private func pump() {
        let buffer = self.loop.takeBuffer()
        defer { self.loop.recycle(buffer) }
        while self.readable && !self.closed {
            let count: Int
            if let tls = self.tls {
                switch tls.read(into: buffer, count: RelayLoop.bufferSize) {
                case .bytes(let n): count = n
                case .closed: count = 0
                case .wouldBlock(let wantsWrite):
                    self.readable = false
                    self.readWantsWrite = wantsWrite
                    return
                case .failed: return self.close()
                }
            } else {
                count = recv(self.clientFD, buffer, RelayLoop.bufferSize, 0)
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK {
                        self.readable = false
                        return
                    }
                    return self.close()
                }
            }
            if count == 0 { return self.close() }
            self.lastActive = self.loop.now
            if self.lingerUntil != nil { continue }  // after a connection error: read and dropped
            self.inbound.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: count))
            self.process()
            if self.tls == nil && count < RelayLoop.bufferSize { self.readable = false }
        }
    }

    /// Feeds the machine the whole frames read so far and does what it says.
    private func process() {
        let used = self.inbound.withUnsafeBytes {
            self.machine.receive(
                UnsafeRawBufferPointer(rebasing: $0[self.inStart...]), now: self.loop.now, events: &self.events)
        }
        self.inStart += used
        if self.inStart == self.inbound.count {
            self.inbound.removeAll(keepingCapacity: true)
            self.inStart = 0
        } else if self.inStart > RelayLoop.bufferSize {
            self.inbound.removeFirst(self.inStart)
            self.inStart = 0
        }
        var index = 0
        while index < self.events.count {
            let event = self.events[index]
            index += 1
            switch event {
            case .request(let id, let head):
                // Opened and reset in the same read (rapid reset): nothing to start.
                guard self.machine.isOpen(id) else { continue }
                let stream = HTTP2RelayStream(connection: self, id: id, head: head)
                self.streams[id] = stream
                stream.start()
            case .data(let id, let bytes, let end):
                self.streams[id]?.body(bytes, end: end)
            case .reset(let id):
                self.streams.removeValue(forKey: id)?.cancel()
            case .windowOpened:
                let blocked = self.windowBlocked
                self.windowBlocked.removeAll()
                for stream in blocked { stream.resume() }
            case .respond(let id, let status):
                let stream = HTTP2RelayStream(connection: self, id: id, head: nil)
                self.streams[id] = stream
                stream.answer(HTTPResponseStatus(statusCode: status))
            case .close(let code):
                self.failed(code)
            }
        }
        self.events.removeAll(keepingCapacity: true)
        self.flushLater()
    }

    private func failed(_ code: HTTP2Connection.ErrorCode) {
        if code != .noError {
            self.service.logger.debug(
                "HTTP/2 connection error: GOAWAY and close",
                metadata: [
                    "service": "\(self.service.name)", "client": "\(AccessRecord.address(self.remote))",
                    "error": "\(code)",
                ])
        }
        for stream in Array(self.streams.values) { stream.cancel() }
        self.streams.removeAll()
        self.lingerUntil = self.loop.now &+ 1_000_000_000
    }

    // MARK: frames out

    /// Frames wait for the end of the loop round.
    func flushLater() {
        guard !self.flushQueued, !self.closed else { return }
        self.flushQueued = true
        self.loop.flushLater(self)
    }

    var outputBacklog: Int { self.machine.output.count - self.sent }

    /// Writes what the machine has for the client; wakes the streams that waited for room.
    func flushNow() {
        self.flushQueued = false
        guard !self.closed else { return }
        while self.writable && self.sent < self.machine.output.count {
            let n = self.machine.output.withUnsafeBytes { output -> Int in
                let base = output.baseAddress! + self.sent
                let count = output.count - self.sent
                guard let tls = self.tls else { return send(self.clientFD, base, count, Int32(MSG_NOSIGNAL)) }
                switch tls.write(base, count: count) {
                case .bytes(let n): return n
                case .wouldBlock:
                    errno = EAGAIN
                    return -1
                case .closed, .failed:
                    errno = ECONNRESET
                    return -1
                }
            }
            if n > 0 {
                self.sent += n
                self.lastActive = self.loop.now
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                self.writable = false
            } else if errno != EINTR {
                return self.close()
            }
        }
        if self.sent == self.machine.output.count {
            self.machine.output.removeAll(keepingCapacity: true)
            self.sent = 0
        } else if self.sent > Self.outputLimit {
            self.machine.output.removeFirst(self.sent)
            self.sent = 0
        }
        if !self.waiting.isEmpty && self.outputBacklog < Self.outputLimit {
            let waiting = self.waiting
            self.waiting.removeAll()
            for stream in waiting { stream.resume() }
        }
        if self.machine.output.isEmpty {
            if self.lingerUntil != nil && !self.shutDown {
                self.shutDown = true
                Glibc.shutdown(self.clientFD, Int32(SHUT_WR))
            } else if self.lingerUntil == nil && self.machine.finished {
                self.close()
            }
        }
    }

    /// A stream that must wait for the client's socket to drain.
    func wait(_ stream: HTTP2RelayStream) {
        self.waiting.append(stream)
    }

    /// A stream that must wait for window space.
    func waitForWindow(_ stream: HTTP2RelayStream) {
        self.windowBlocked.append(stream)
    }

    /// A stream is over.
    func finished(_ stream: HTTP2RelayStream) {
        if self.streams[stream.id] === stream { self.streams.removeValue(forKey: stream.id) }
        self.flushLater()
    }

    // MARK: sweep, drain, close

    func checkTimeout(now: UInt64) {
        guard !self.closed else { return }
        if let until = self.lingerUntil {
            if now > until { self.close() }
            return
        }
        if self.streams.isEmpty && now &- self.lastActive > self.idleNanos {
            // `timeouts.idle` with no stream and no byte either way: GOAWAY, then the close.
            self.machine.goAway()
            self.flushLater()
        }
    }

    func drain() {
        self.machine.goAway()
        self.flushLater()
    }

    func close() {
        guard !self.closed else { return }
        self.closed = true
        for stream in Array(self.streams.values) { stream.cancel() }
        self.streams.removeAll()
        self.waiting.removeAll()
        self.windowBlocked.removeAll()
        self.tls?.free()
        Glibc.close(self.clientFD)
        self.loop.forget(self)
    }

    var isClosed: Bool { self.closed }
}

/// One request stream of an `HTTP2RelaySession`, served as HTTP/1.1: it is the client of an `HTTPRelaySession`
/// (its request bytes in through `give`, the response's out through `take`, `HTTP2Response` turning them into
/// frames), or, for a request with a body (or one that session hands over), of the NIO proxy through a socket pair.
final class HTTP2RelayStream {
    /// Strong: the connection drops its streams as they end, and all of them when it closes.
    let connection: HTTP2RelaySession
    let id: UInt32
    private var response: HTTP2Response
    /// HTTP/1.1 bytes for whoever serves the request, from `sent` on.
    private var request: [UInt8]
    private var sent = 0
    private let chunked: Bool
    private var requestEnded: Bool
    /// Body bytes in `request` not yet given back to the client's window.
    private var bodyUnacknowledged = 0
    private var session: HTTPRelaySession?
    private var bridgeFD: Int32 = -1
    private var bridgeBuffer: UnsafeMutableRawPointer?
    private var bridgeStart = 0
    private var bridgeEnd = 0
    private var bridgeEnded = false
    private var done = false
    private var waiting = false

    init(connection: HTTP2RelaySession, id: UInt32, head: HTTP2RequestHead?) {
        self.connection = connection
        self.id = id
        self.response = HTTP2Response(stream: id, isHEAD: head?.isHEAD ?? false)
        self.request = head?.http1 ?? []
        self.chunked = head?.chunked ?? false
        self.requestEnded = !(head?.hasBody ?? false)
    }

    /// A request without a body goes to the relay's HTTP session; one with a body to the NIO proxy.
    func start() {
        guard self.requestEnded else { return self.bridge([]) }
        let connection = self.connection
        let session = HTTPRelaySession(
            loop: connection.loop, service: connection.service, client: connection.client,
            clientFD: connection.clientFD, remote: connection.remote, stream: self)
        self.session = session
        connection.loop.track(session)
        session.clientEvent(EPOLLIN.rawValue | EPOLLOUT.rawValue)
    }

    /// The director answers the stream itself (431, 501).
    func answer(_ status: HTTPResponseStatus) {
        let page = Array(ErrorPage(status: status, close: false).text.utf8)
        self.requestEnded = true
        _ = page.withUnsafeBytes { self.take($0.baseAddress!, $0.count) }
        self.end()
    }

    // MARK: the HTTP/1.1 side's client

    /// Request bytes for the session: as `recv` would give them (0 once all are given, -1 with EAGAIN before).
    func give(_ into: UnsafeMutableRawPointer, _ room: Int) -> Int {
        let left = self.request.count - self.sent
        guard left > 0 else {
            if self.requestEnded { return 0 }
            errno = EAGAIN
            return -1
        }
        let n = min(left, room)
        self.request.withUnsafeBytes { into.copyMemory(from: $0.baseAddress! + self.sent, byteCount: n) }
        self.sent += n
        return n
    }

    /// Response bytes from the session: as `send` would take them (all, or -1 with EAGAIN while the stream waits
    /// for its window or the client's socket).
    func take(_ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        if self.done { return count }
        let connection = self.connection
        if connection.outputBacklog >= HTTP2RelaySession.outputLimit {
            self.waitForRoom()
            errno = EAGAIN
            return -1
        }
        switch self.response.feed(UnsafeRawBufferPointer(start: bytes, count: count), into: &connection.machine) {
        case .taken:
            connection.flushLater()
            // Bytes the windows held back go when the client opens them.
            if self.response.hasPending { self.waitForWindow() }
            // A session ends by itself once the response is out (its client has nothing more to send).
            if self.session == nil && self.response.complete && !self.response.hasPending { self.finish() }
            return count
        case .blocked:
            self.waitForWindow()
            errno = EAGAIN
            return -1
        case .invalid(let problem):
            connection.service.logger.debug(
                "HTTP/2 stream reset: the response is not HTTP/1.x",
                metadata: ["service": "\(connection.service.name)", "problem": "\(problem)"])
            connection.machine.reset(self.id, .internalError)
            connection.flushLater()
            self.finish()  // the session closes on the error it is given
            errno = ECONNRESET
            return -1
        }
    }

    /// The session serving the request is over.
    func sessionEnded() {
        self.session = nil
        self.end()
    }

    /// The HTTP/1.1 side is over: a response not yet whole (by its framing) resets the stream.
    private func end() {
        guard !self.done else { return }
        let connection = self.connection
        if !connection.isClosed && !self.response.end(into: &connection.machine) {
            connection.machine.reset(self.id, .internalError)
            connection.flushLater()
            return self.finish()
        }
        connection.flushLater()
        if self.response.hasPending {
            self.waitForWindow()
        } else {
            self.finish()
        }
    }

    private func waitForRoom() {
        guard !self.waiting else { return }
        self.waiting = true
        self.connection.wait(self)
    }

    private func waitForWindow() {
        guard !self.waiting else { return }
        self.waiting = true
        self.connection.waitForWindow(self)
    }

    /// Room again in the client's socket, or window: what waited goes on.
    func resume() {
        self.waiting = false
        guard !self.done else { return }
        let connection = self.connection
        if self.response.hasPending {
            self.response.flush(into: &connection.machine)
            connection.flushLater()
            if self.response.hasPending { return self.waitForWindow() }
        }
        // Whole: nothing more comes from a session that has ended, or from the proxy's side of a bridge.
        if self.response.complete && self.session == nil { return self.finish() }
        if let session = self.session {
            session.clientEvent(EPOLLOUT.rawValue)
        } else if self.bridgeFD >= 0 {
            self.pumpBridge()
        }
    }

    /// The client reset the stream, or the connection is going: whoever serves it stops.
    func cancel() {
        guard !self.done else { return }
        self.done = true
        if let session = self.session {
            self.session = nil
            session.close()
        }
        self.closeBridge()
    }

    /// The stream is over for this side. A session still running is in the middle of passing bytes here, and
    /// ends by itself.
    private func finish() {
        guard !self.done else { return }
        self.done = true
        self.session = nil
        self.closeBridge()
        self.connection.finished(self)
    }

    // MARK: request bodies, through the NIO proxy

    /// Body bytes from the client's DATA frames.
    func body(_ bytes: [UInt8], end: Bool) {
        guard !self.done else { return }
        if self.chunked && !bytes.isEmpty {
            self.request.append(contentsOf: String(bytes.count, radix: 16).utf8)
            self.request.append(contentsOf: [0x0D, 0x0A])
            self.request.append(contentsOf: bytes)
            self.request.append(contentsOf: [0x0D, 0x0A])
        } else {
            self.request.append(contentsOf: bytes)
        }
        self.bodyUnacknowledged += bytes.count
        if end {
            if self.chunked { self.request.append(contentsOf: "0\r\n\r\n".utf8) }
            self.requestEnded = true
        }
        if self.bridgeFD >= 0 { self.pumpBridge() }
    }

    /// Serves the request through the NIO proxy from here, over a socket pair: it gets `unread` (what an
    /// `HTTPRelaySession` had read and handed back) and what is left of the request.
    func bridge(_ unread: [UInt8]) {
        let connection = self.connection
        if !unread.isEmpty {
            self.request.replaceSubrange(0..<self.sent, with: unread)
            self.sent = 0
        }
        var ends: [Int32] = [-1, -1]
        guard
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &ends)
                == 0
        else {
            connection.machine.reset(self.id, .refusedStream)
            return self.finish()
        }
        self.bridgeFD = ends[0]
        guard connection.loop.watch(ends[0], self, tag: .h2Bridge) else {
            Glibc.close(ends[1])
            connection.machine.reset(self.id, .refusedStream)
            return self.finish()
        }
        connection.loop.handOff(ends[1], connection.service, [], connection.remote, connection.tls != nil)
        self.pumpBridge()
    }

    /// Moves the request to the NIO proxy and its response back, as far as each side lets.
    func pumpBridge() {
        guard self.bridgeFD >= 0, !self.done else { return }
        let connection = self.connection
        // The request.
        while self.sent < self.request.count {
            let n = self.request.withUnsafeBytes {
                send(self.bridgeFD, $0.baseAddress! + self.sent, $0.count - self.sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                self.sent += n
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                break
            } else {
                break  // the proxy closed its end: its response (or its close) says the rest
            }
        }
        if self.sent == self.request.count {
            self.request.removeAll(keepingCapacity: true)
            self.sent = 0
            if self.bodyUnacknowledged > 0 {
                connection.machine.consumed(self.id, self.bodyUnacknowledged)
                self.bodyUnacknowledged = 0
                connection.flushLater()
            }
        }
        // The response.
        while !self.done {
            if self.bridgeStart < self.bridgeEnd, let buffer = self.bridgeBuffer {
                let count = self.bridgeEnd - self.bridgeStart
                if self.take(buffer + self.bridgeStart, count) < 0 { return }  // waits for room or window
                self.bridgeStart = self.bridgeEnd
                continue
            }
            if self.bridgeEnded { return self.end() }
            if self.bridgeBuffer == nil { self.bridgeBuffer = connection.loop.takeBuffer() }
            let n = recv(self.bridgeFD, self.bridgeBuffer!, RelayLoop.bufferSize, 0)
            if n > 0 {
                self.bridgeStart = 0
                self.bridgeEnd = n
            } else if n == 0 {
                self.bridgeEnded = true
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                self.bridgeEnded = true
            }
        }
    }

    private func closeBridge() {
        if self.bridgeFD >= 0 {
            Glibc.close(self.bridgeFD)
            self.bridgeFD = -1
            self.connection.loop.retire(self)
        }
        if let buffer = self.bridgeBuffer {
            self.connection.loop.recycle(buffer)
            self.bridgeBuffer = nil
        }
    }
}
