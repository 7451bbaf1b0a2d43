/// The life of one HTTP/1 client connection and its requests: the one place that decides each step of an exchange,
/// for both HTTP drivers (the epoll relay and the NIO proxy).
///
/// A value with no sockets, clock or randomness of its own. A driver feeds it what happened (`Event`, with the time
/// where the time matters) and performs the `Action` it returns: choose a real server, take or open a connection to
/// it, send the request, pass the response head on, park or close the upstream connection, answer with an error
/// page, read the next request, close. Bytes (reading, writing, rewriting heads, finding a response's framing) stay
/// in the drivers; what to do with them is decided here.
///
/// ```
///  idle ──request──▶ choosing ──picked(s)──▶ connecting(s) ──connected──▶ exchanging(s) ──responseEnded──▶ idle
///   │                   │ picked(nil): 503        │ failed: retry ──▶ choosing   │ 101 + upgrade ──▶ tunnel(s)
///   │                   │ queued ──▶ queued ──picked(s)──▶ connecting(s); tick past the queue timeout: 503
///   │ tick: 408, idle   ▼                         ▼                              ▼ failed: retry, 502/504, close
///   └────────────────▶ closing (an answer or a response goes out, then the connection closes) ──▶ closed
/// ```
///
/// **In-flight accounting is machine state.** From `picked(server)` until the action that carries `release`, the
/// exchange holds one of that real server's in-flight slots (`holding`); every way out of `connecting`,
/// `exchanging` and `tunnel` releases it, exactly once. `Director.drain` waits for these slots to reach zero.
///
/// `@inlinable` throughout: the relay calls it several times per request from another module.
public struct HTTPExchange: Sendable {
    /// Where the connection stands.
    public enum State: Sendable, Equatable {
        /// Between requests (the next head may have begun: `headSince`).
        case idle
        /// A request's head is in; the driver is choosing a real server (`Action.Next.pick`).
        case choosing
        /// Every real server is full (`maxconn`), or there is none yet (scale from zero): the request waits in the
        /// service's queue until a slot is handed to it (`picked`) or the queue's timeout passes (503).
        case queued
        /// Connecting to real server `server` (or taking a pooled connection to it).
        case connecting(server: Int)
        /// The request goes to, and its response comes from, `server`.
        case exchanging(server: Int)
        /// After a 101: a byte tunnel to `server`, which holds its slot until `tunnelEnded`.
        case tunnel(server: Int)
        /// An answer or the end of a response is going out; then the connection closes.
        case closing
        case closed
    }

    /// What the driver learnt from a request's head.
    public struct Request: Sendable, Equatable {
        /// The method is idempotent (RFC 9110 §9.2.2): the request may go to another server after a failure that
        /// may have reached the first.
        public var idempotent: Bool
        /// The client asks to keep the connection (HTTP/1.1 without `close`, HTTP/1.0 with `keep-alive`).
        public var keepAlive: Bool
        /// The client asks for another protocol (`Upgrade`).
        public var upgrade: Bool
        /// The head is all of the request (no body follows).
        public var complete: Bool

        @inlinable
        public init(idempotent: Bool, keepAlive: Bool, upgrade: Bool = false, complete: Bool = true) {
            self.idempotent = idempotent
            self.keepAlive = keepAlive
            self.upgrade = upgrade
            self.complete = complete
        }
    }

    /// What the driver learnt from a response's head.
    public struct Response: Sendable, Equatable {
        public var status: Int
        /// The client learns where this response's body ends only by the connection's close.
        public var endsByClose: Bool
        /// The real server's version and `Connection` let its connection be used again.
        public var serverKeepsAlive: Bool

        @inlinable
        public init(status: Int, endsByClose: Bool = false, serverKeepsAlive: Bool = true) {
            self.status = status
            self.endsByClose = endsByClose
            self.serverKeepsAlive = serverKeepsAlive
        }
    }

    public enum Event: Sendable, Equatable {
        /// Bytes moved on the connection (the idle and server timeouts count from the last); drivers on the hot
        /// path call `touch` instead, which is the same.
        case activity(now: UInt64)
        /// Part of a head arrived, not all of it: `timeouts.header_read` runs from the first such.
        case headBegun(now: UInt64)
        /// The client sent something that is not a request to serve (a bare LF, an oversize head, a parse error):
        /// answer `status` (400, 431) and close.
        case malformed(status: Int)
        /// A whole request head.
        case request(Request, now: UInt64)
        /// The director answers the request itself (an HTTPS redirect, a routing rule's fixed status) with `status`,
        /// instead of choosing a real server; only right after `request`.
        case answer(status: Int)
        /// The driver chose real server `server` (it holds a slot of it now), or none is left to try (`nil`).
        case picked(server: Int?, now: UInt64)
        /// No server had a free slot and the driver put the request in the service's queue, to wait until `until`
        /// at most; only while choosing the first server (a retry after a failure is answered, not queued).
        case queued(until: UInt64, now: UInt64)
        /// A connection to the chosen server is ready (new, or taken from the pool).
        case connected(now: UInt64)
        /// Bytes of the request's body reached the real server: the request cannot be sent again.
        case bodyForwarded
        /// The client has sent the whole request body.
        case bodyEnded(now: UInt64)
        /// What the real server has been sent of the request reached its socket (the server owes bytes from now).
        case requestSent(now: UInt64)
        /// A response head: informational (1xx), `101`, or the final one.
        case response(Response, now: UInt64)
        /// The response ended; `serverReusable` if the real server's connection ended on a response boundary with
        /// nothing after it.
        case responseEnded(serverReusable: Bool, now: UInt64)
        /// The real server's connection failed. `headWithheld`: the driver had not passed the final head on yet
        /// (it found the body bad in the same read), so the client can still get an error page.
        case upstreamFailed(UpstreamFailure, headWithheld: Bool)
        /// The loop's sweep.
        case tick(now: UInt64)
        /// The director is shutting down. `bytesPending`: bytes of a next request or of an answer wait.
        case drain(bytesPending: Bool)
        /// The client connection is gone (reset, or closed by the driver).
        case clientClosed
        /// A tunnel's two ends are closed.
        case tunnelEnded
    }

    public struct Action: Sendable, Equatable {
        /// What becomes of the connection to the real server.
        public enum Upstream: Sendable, Equatable {
            case keep
            /// Back to the pool, for the next request to that server (the pool may still refuse it).
            case park
            case close
        }

        /// What the driver does next.
        public enum Next: Sendable, Equatable {
            /// Nothing: wait for bytes, writability or the sweep.
            case wait
            /// Choose a real server, excluding `HTTPExchange.tried`, and report it with `picked`.
            case pick
            /// Take a pooled connection to `server` or open one, then report `connected` (or a failed connect).
            case connect(server: Int)
            /// Send the request (its head, and what has come of its body).
            case send
            /// Pass an informational (1xx) head on; the final response follows.
            case passInformational
            /// Pass the final response head on, with `Connection: close` when `close`.
            case passHead(close: Bool)
            /// Turn both connections into a byte tunnel (the 101 goes out first).
            case tunnel
            /// Start on the next request (pipelined bytes may already be there).
            case nextRequest
            /// Answer with the director's error page; close after it when `close`.
            case respond(status: Int, close: Bool)
            /// Close once what is queued for the client has gone.
            case closeAfterFlush
            /// Close now: nothing more can or should reach the client.
            case closeNow
        }

        /// Give back the in-flight slot of the server the exchange held.
        public var release: Bool
        public var upstream: Upstream
        public var next: Next
        /// The request's life ended with this action (its response is out, it was answered, or it was cut): the
        /// driver writes its access-log line. Once per request, and once per malformed head answered.
        public var finished = false
        /// The request left the service's queue without being handed a slot (timeout, client gone, drain): the
        /// driver takes its place out of the queue.
        public var leaveQueue = false
        /// The held server failed so, and it counts toward its ejection (the driver counts and logs it before the
        /// slot goes back). Nil when nothing failed, or the failure says nothing of the server's health: a server
        /// that is slow is not down, one that failed mid-response had answered, and the director running out of
        /// descriptors is the director's trouble.
        public var failure: UpstreamFailure?

        @inlinable
        public init(
            release: Bool = false, upstream: Upstream = .keep, _ next: Next, failure: UpstreamFailure? = nil
        ) {
            self.release = release
            self.upstream = upstream
            self.next = next
            self.failure = failure
        }

        public static let wait = Action(.wait)
    }

    /// The service's settings the exchange obeys.
    public struct Settings: Sendable, Equatable {
        public var timeouts: ExchangeTimeouts
        /// Nanoseconds a connect may take, when the machine times connects (nil: the driver's connector does).
        public var connectTimeout: UInt64?
        /// The service's `retries`.
        public var retries: Int

        public init(_ config: TimeoutsConfig, retries: Int, timesConnects: Bool) {
            self.timeouts = ExchangeTimeouts(config)
            self.connectTimeout = timesConnects ? UInt64(max(0, config.connect) * 1e9) : nil
            self.retries = retries
        }
    }

    public let settings: Settings
    public var state: State { self._state }
    @usableFromInline var _state: State = .idle

    /// Real servers tried for the request in flight, the current one included.
    public var tried: [Int] { self._tried }
    @usableFromInline var _tried: [Int] = []
    /// What the last server tried did wrong (the answer when none is left), nil before any failure.
    @usableFromInline var lastFailure: Int?
    @usableFromInline var request = Request(idempotent: true, keepAlive: true)
    /// The client connection stays open after the request in flight.
    public var keepAlive: Bool { self._keepAlive }
    @usableFromInline var _keepAlive: Bool = true
    @usableFromInline var bodyComplete = true
    @usableFromInline var bodySent = false
    /// The final response head went to the client.
    public var responseStarted: Bool { self._responseStarted }
    @usableFromInline var _responseStarted: Bool = false
    @usableFromInline var serverKeepsAlive = true
    @usableFromInline var draining = false

    /// When the request in flight (or the last one) reached each phase, in the driver's nanoseconds; 0 = not
    /// reached. For the access log.
    public struct Timing: Sendable, Equatable {
        /// Its head's first byte (when the head came in pieces), else when the head was whole.
        public var headStart: UInt64 = 0
        /// Its head was whole.
        public var request: UInt64 = 0
        /// The connection to the (last) real server was ready.
        public var connected: UInt64 = 0
        /// The real server's final (or 101) head came.
        public var firstByte: UInt64 = 0
        /// It entered the service's queue, and left it with a slot (0 = it did not wait).
        public var queued: UInt64 = 0
        public var dequeued: UInt64 = 0

        @inlinable
        public init() {}
    }

    public var timing: Timing { self._timing }
    @usableFromInline var _timing = Timing()

    // Times, in the driver's nanoseconds.
    @usableFromInline var lastActivity: UInt64
    @usableFromInline var headSince: UInt64?
    @usableFromInline var requestSince: UInt64 = 0
    @usableFromInline var sentAt: UInt64 = 0
    @usableFromInline var connectDeadline: UInt64 = 0
    @usableFromInline var queueDeadline: UInt64 = 0

    public init(_ settings: Settings, now: UInt64) {
        self.settings = settings
        self.lastActivity = now
    }

    /// The real server whose in-flight slot the exchange holds.
    @inlinable
    public var holding: Int? {
        switch self.state {
        case .connecting(let server), .exchanging(let server), .tunnel(let server): return server
        case .idle, .choosing, .queued, .closing, .closed: return nil
        }
    }

    /// Bytes moved on the connection at `now` (the idle and server timeouts count from the last).
    @inlinable
    public mutating func touch(_ now: UInt64) {
        self.lastActivity = now
    }

    /// Feeds one event; returns what the driver does. `finished` is set where the request's life ends: the
    /// exchange left its request states (choosing, connecting, exchanging, tunnel), or answered a head that was not
    /// a request.
    @inlinable
    public mutating func handle(_ event: Event) -> Action {
        let before = self._state
        let headSince = self.headSince
        var action = self.step(event)
        switch before {
        case .choosing, .queued, .connecting, .exchanging, .tunnel:
            switch self._state {
            case .idle, .closing, .closed: action.finished = true
            case .choosing, .queued, .connecting, .exchanging, .tunnel: break
            }
            if before == .queued && self._state != .queued && self.holding == nil { action.leaveQueue = true }
        case .idle:
            if case .respond = action.next {
                // A head answered that was no request (malformed, or not whole in time): its own log line, with
                // no phases but the head's start.
                action.finished = true
                self._timing = Timing()
                self._timing.headStart = headSince ?? 0
            }
        case .closing, .closed:
            break
        }
        return action
    }

    @inlinable
    mutating func step(_ event: Event) -> Action {
        switch event {
        case .activity(let now):
            self.touch(now)
            return .wait
        case .headBegun(let now):
            if self._state == .idle && self.headSince == nil { self.headSince = max(1, now) }
            return .wait
        case .malformed(let status):
            return self.malformed(status)
        case .request(let request, let now):
            return self.start(request, now: now)
        case .answer(let status):
            guard self._state == .choosing, self._tried.isEmpty else { return .wait }
            // A body the client still sends would be read as the next request: close after the answer.
            return self.respond(status, close: !self.bodyComplete)
        case .picked(let server, let now):
            return self.picked(server, now: now)
        case .queued(let until, let now):
            guard self._state == .choosing, self._tried.isEmpty else { return .wait }
            self._state = .queued
            self.queueDeadline = until
            self._timing.queued = max(1, now)
            return .wait
        case .connected(let now):
            guard case .connecting(let server) = self._state else { return .wait }
            self._state = .exchanging(server: server)
            self.sentAt = now
            self._timing.connected = now
            self.serverKeepsAlive = true
            return Action(.send)
        case .bodyForwarded:
            self.bodySent = true
            return .wait
        case .bodyEnded(let now):
            self.bodyComplete = true
            self.lastActivity = now
            return .wait
        case .requestSent(let now):
            self.sentAt = now
            return .wait
        case .response(let response, let now):
            return self.response(response, now: now)
        case .responseEnded(let serverReusable, let now):
            return self.ended(serverReusable: serverReusable, now: now)
        case .upstreamFailed(let failure, let headWithheld):
            if headWithheld { self._responseStarted = false }
            return self.failed(failure)
        case .tick(let now):
            return self.tick(now)
        case .drain(let bytesPending):
            return self.drain(bytesPending: bytesPending)
        case .clientClosed:
            return self.closeNow()
        case .tunnelEnded:
            guard case .tunnel = self._state else { return .wait }
            self._state = .closed
            return Action(release: true, upstream: .close, .closeNow)
        }
    }

    // MARK: steps

    @inlinable
    mutating func start(_ request: Request, now: UInt64) -> Action {
        guard self._state == .idle else { return .wait }
        self.request = request
        self._keepAlive = ConnectionReuse.keepsAlive(
            clientKeepsAlive: request.keepAlive, upgrade: request.upgrade, draining: self.draining)
        self.bodyComplete = request.complete
        self.bodySent = false
        self._responseStarted = false
        self.serverKeepsAlive = true
        self._tried.removeAll(keepingCapacity: true)
        self.lastFailure = nil
        self._timing = Timing()
        self._timing.headStart = self.headSince ?? now
        self._timing.request = now
        self.headSince = nil
        self.requestSince = now
        self.lastActivity = now
        self._state = .choosing
        return Action(.pick)
    }

    @inlinable
    mutating func picked(_ server: Int?, now: UInt64) -> Action {
        if self._state == .queued, server != nil {
            self._state = .choosing
            self._timing.dequeued = now
        }
        guard self._state == .choosing else { return .wait }
        guard let server else {
            // Nothing (left) to try: after failures, say what failed; with no server at all, 503. The connection
            // stays only if nothing of the request is left unread and nothing failed.
            let close = self.lastFailure != nil || !self.bodyComplete || !self._keepAlive
            return self.respond(self.lastFailure ?? 503, close: close)
        }
        self._tried.append(server)
        self._state = .connecting(server: server)
        if let timeout = self.settings.connectTimeout { self.connectDeadline = now &+ timeout }
        return Action(.connect(server: server))
    }

    @inlinable
    mutating func response(_ response: Response, now: UInt64) -> Action {
        guard case .exchanging(let server) = self._state else { return .wait }
        self.lastActivity = now
        if self._timing.firstByte == 0 && response.status >= 200 || response.status == 101 {
            self._timing.firstByte = now
        }
        let status = response.status
        if status == 101 {
            // Only an upgrade the client asked for may switch; a 101 to anything else is not HTTP to pass on.
            guard self.request.upgrade else { return self.failed(.badResponse) }
            self._responseStarted = true
            self._state = .tunnel(server: server)
            return Action(.tunnel)
        }
        guard status >= 200 else {
            guard status >= 100 else { return self.failed(.badResponse) }
            return Action(.passInformational)
        }
        self._responseStarted = true
        self.serverKeepsAlive = response.serverKeepsAlive && !response.endsByClose
        self._keepAlive = ConnectionReuse.keepsAlive(after: self._keepAlive, responseEndsByClose: response.endsByClose)
        return Action(.passHead(close: !self._keepAlive))
    }

    @inlinable
    mutating func ended(serverReusable: Bool, now: UInt64) -> Action {
        guard case .exchanging = self._state, self._responseStarted else { return .wait }
        // A connection goes back to the pool only on a response boundary, with the whole request sent: bytes of
        // an unsent body would start the next request on it.
        let park = serverReusable && self.serverKeepsAlive && self.bodyComplete
        self.lastActivity = now
        if self._keepAlive && self.bodyComplete {
            self._state = .idle
            self.headSince = nil
            return Action(release: true, upstream: park ? .park : .close, .nextRequest)
        }
        self._state = .closing
        return Action(release: true, upstream: park ? .park : .close, .closeAfterFlush)
    }

    /// Lets go of the real server and does what `RetryDecision` says: another server, an error page, or a close
    /// once what is queued for the client has gone (part of the response is out).
    @inlinable
    mutating func failed(_ failure: UpstreamFailure) -> Action {
        switch self.state {
        case .connecting, .exchanging: break
        default: return .wait
        }
        let counted: UpstreamFailure? =
            self._responseStarted || failure == .serverTimeout || failure == .localResources ? nil : failure
        var action = self.decide(failure)
        action.failure = counted
        return action
    }

    @inlinable
    mutating func decide(_ failure: UpstreamFailure) -> Action {
        let decision = RetryDecision.decide(
            failure, replayable: self.request.idempotent && self.request.complete, bodySent: self.bodySent,
            tried: self._tried.count, retries: self.settings.retries, responseStarted: self._responseStarted)
        switch decision {
        case .close:
            self._state = .closing
            return Action(release: true, upstream: .close, .closeAfterFlush)
        case .retry(let otherwise):
            self.lastFailure = otherwise
            self._state = .choosing
            return Action(release: true, upstream: .close, .pick)
        case .respond(let status):
            var action = self.respond(status, close: true)
            action.release = true
            action.upstream = .close
            return action
        }
    }

    @inlinable
    mutating func malformed(_ status: Int) -> Action {
        switch self.state {
        case .closing, .closed, .tunnel:
            return .wait
        case .idle, .choosing, .queued, .connecting, .exchanging:
            let held = self.holding != nil
            if self._responseStarted && self._state != .idle {
                // Part of a response is out: an error page would be read as part of it.
                self._state = .closed
                return Action(release: held, upstream: .close, .closeNow)
            }
            var action = self.respond(status, close: true)
            action.release = held
            action.upstream = held ? .close : .keep
            return action
        }
    }

    /// The error page: the connection goes on to the next request only when `close` is false.
    @inlinable
    mutating func respond(_ status: Int, close: Bool) -> Action {
        let close = close || !self._keepAlive
        self.headSince = nil
        self._state = close ? .closing : .idle
        return Action(.respond(status: status, close: close))
    }

    @inlinable
    mutating func closeNow() -> Action {
        switch self.state {
        case .closed:
            return .wait
        case .tunnel:
            // The tunnel's ends close on their own; its slot goes with `tunnelEnded`.
            return .wait
        default:
            let held = self.holding != nil
            self._state = .closed
            return Action(release: held, upstream: held ? .close : .keep, .closeNow)
        }
    }

    @inlinable
    mutating func drain(bytesPending: Bool) -> Action {
        self.draining = true
        switch self.state {
        case .closing, .closed, .tunnel:
            // A tunnel has no request boundary to stop at: it ends with its peers, or with the drain timeout.
            return .wait
        case .idle, .choosing, .queued, .connecting, .exchanging:
            switch ConnectionReuse.onDrain(
                betweenRequests: self._state == .idle, bytesPending: bytesPending || self.headSince != nil)
            {
            case .closeNow:
                return self.closeNow()
            case .closeAfterResponse:
                // The response in flight (or the answer to the head that has begun) goes out with
                // `Connection: close`.
                self._keepAlive = false
                return .wait
            }
        }
    }

    @inlinable
    mutating func tick(_ now: UInt64) -> Action {
        let timeouts = self.settings.timeouts
        switch self.state {
        case .idle:
            switch timeouts.check(
                .betweenRequests(headSince: self.headSince, lastActivity: self.lastActivity), now: now)
            {
            case .idle: return self.closeNow()
            case .headerRead: return self.respond(408, close: true)
            default: return .wait
            }
        case .connecting:
            if self.settings.connectTimeout != nil,
                timeouts.check(.connecting(deadline: self.connectDeadline), now: now) == .connect
            {
                return self.failed(.connect(timedOut: true))
            }
            return self.exchangeTimeouts(now, awaitingServer: false)
        case .exchanging:
            return self.exchangeTimeouts(now, awaitingServer: self.bodyComplete || self._responseStarted)
        case .queued:
            // `timeout queue`: no slot came in time. The client may keep its connection if nothing of the request
            // is left unread.
            guard now >= self.queueDeadline else { return .wait }
            return self.respond(503, close: !self.bodyComplete)
        case .choosing, .tunnel, .closing, .closed:
            return .wait
        }
    }

    @inlinable
    mutating func exchangeTimeouts(_ now: UInt64, awaitingServer: Bool) -> Action {
        let phase = ExchangeTimeouts.Phase.exchanging(
            requestSince: self.requestSince, bodyComplete: self.bodyComplete, awaitingServer: awaitingServer,
            sentAt: self.sentAt, lastActivity: self.lastActivity)
        switch self.settings.timeouts.check(phase, now: now) {
        case .body:
            // The client is too slow with its body: 408, or a close if the response has begun.
            if self.responseStarted {
                self._state = .closed
                return Action(release: true, upstream: .close, .closeNow)
            }
            var action = self.respond(408, close: true)
            action.release = true
            action.upstream = .close
            return action
        case .server:
            if self.responseStarted {
                // The server stalled mid-response, or the client stopped reading and holds the rest: an answer
                // queued behind it would never go, so close now.
                self._state = .closed
                return Action(release: true, upstream: .close, .closeNow)
            }
            return self.failed(.serverTimeout)
        case .none, .idle, .headerRead, .connect:
            return .wait
        }
    }
}
