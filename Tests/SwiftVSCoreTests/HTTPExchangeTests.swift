import SwiftVSCore
import Testing

/// Scripted exchanges: each case feeds events to a fresh machine and checks every action it returns, and where the
/// connection stands at the end (state, and which real server's in-flight slot it holds). Settings: connect 3 s,
/// header_read 10 s, idle 60 s, server 60 s, body 60 s, retries 1, connects timed by the machine.
@Suite("The HTTP exchange state machine, by table")
struct HTTPExchangeTests {
    typealias E = HTTPExchange.Event
    typealias A = HTTPExchange.Action

    struct Case: CustomStringConvertible, Sendable {
        var why: String
        var retries = 1
        var timesConnects = true
        var steps: [(E, A)]
        var state: HTTPExchange.State
        var holding: Int? = nil
        var description: String { self.why }
    }

    static func s(_ seconds: Double) -> UInt64 { UInt64(seconds * 1e9) }

    // Requests.
    static let get = HTTPExchange.Request(idempotent: true, keepAlive: true)
    static let getClose = HTTPExchange.Request(idempotent: true, keepAlive: false)
    static let post = HTTPExchange.Request(idempotent: false, keepAlive: true, complete: false)
    static let postWhole = HTTPExchange.Request(idempotent: false, keepAlive: true)
    static let putWithBody = HTTPExchange.Request(idempotent: true, keepAlive: true, complete: false)
    static let upgrade = HTTPExchange.Request(idempotent: true, keepAlive: true, upgrade: true)

    // Events at time 0 unless the case needs another.
    static func request(_ r: HTTPExchange.Request, at t: Double = 0) -> E { .request(r, now: s(t)) }
    static func picked(_ server: Int?, at t: Double = 0) -> E { .picked(server: server, now: s(t)) }
    static func connected(at t: Double = 0) -> E { .connected(now: s(t)) }
    static func sent(at t: Double = 0) -> E { .requestSent(now: s(t)) }
    static func response(
        _ status: Int, endsByClose: Bool = false, serverKeepsAlive: Bool = true, at t: Double = 0
    ) -> E {
        .response(.init(status: status, endsByClose: endsByClose, serverKeepsAlive: serverKeepsAlive), now: s(t))
    }
    static func ended(reusable: Bool = true, at t: Double = 0) -> E {
        .responseEnded(serverReusable: reusable, now: s(t))
    }
    static func failed(_ f: UpstreamFailure, withheld: Bool = false) -> E { .upstreamFailed(f, headWithheld: withheld) }
    static func tick(_ t: Double) -> E { .tick(now: s(t)) }

    // Actions.
    static let wait = A(.wait)
    static let pick = A(.pick)
    static func connect(_ server: Int) -> A { A(.connect(server: server)) }
    static let send = A(.send)
    static func head(close: Bool = false) -> A { A(.passHead(close: close)) }
    static let nextParked = A(release: true, upstream: .park, .nextRequest)
    static let nextClosed = A(release: true, upstream: .close, .nextRequest)
    static let retry = A(release: true, upstream: .close, .pick)
    static func fail(_ status: Int) -> A { A(release: true, upstream: .close, .respond(status: status, close: true)) }
    static func answer(_ status: Int, close: Bool) -> A { A(.respond(status: status, close: close)) }

    /// A GET to server 1 up to the point its request is sent.
    static let sentGET: [(E, A)] = [
        (request(get), pick), (picked(1), connect(1)), (connected(), send), (sent(), wait),
    ]

    static let cases: [Case] = [
        // MARK: the plain path
        Case(
            why: "a keep-alive GET: pick, connect, send, pass the head, park the connection, read the next request",
            steps: sentGET + [(response(200), head()), (ended(), nextParked)], state: .idle),
        Case(
            why: "a client that says Connection: close gets the head with close, and the connection closes after it",
            steps: [
                (request(getClose), pick), (picked(1), connect(1)), (connected(), send),
                (response(200), head(close: true)),
                (ended(), A(release: true, upstream: .park, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "the server said it closes: the client keeps its connection, the upstream one is not parked",
            steps: sentGET + [(response(200, serverKeepsAlive: false), head()), (ended(), nextClosed)],
            state: .idle),
        Case(
            why: "a body that runs until the server closes: the client learns its end by our close too",
            steps: sentGET + [
                (response(200, endsByClose: true), head(close: true)),
                (ended(), A(release: true, upstream: .close, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "bytes after a response's end (not HTTP) make the upstream connection unfit to park",
            steps: sentGET + [(response(204), head()), (ended(reusable: false), nextClosed)], state: .idle),
        Case(
            why: "HEAD, 204 and 304 end at their head: the driver reports the end at once, and the slot is freed",
            steps: sentGET + [(response(304), head()), (ended(), nextParked)], state: .idle),
        Case(
            why: "pipelining: the second request starts only once the first has ended, on the same machine",
            steps: sentGET + [
                (response(200), head()), (ended(), nextParked),
                (request(get), pick), (picked(2), connect(2)), (connected(), send),
            ], state: .exchanging(server: 2), holding: 2),
        Case(
            why: "a second head while a request is in flight is not started (the driver holds it until the first ends)",
            steps: sentGET + [(request(get), wait)], state: .exchanging(server: 1), holding: 1),
        Case(
            why: "from picked to the end of the response the exchange holds that server's in-flight slot",
            steps: [(request(get), pick), (picked(7), connect(7))], state: .connecting(server: 7), holding: 7),
        Case(
            why: "a 5xx from the server is still a response: passed on, and the connection is kept",
            steps: sentGET + [(response(503), head()), (ended(), nextParked)], state: .idle),

        // MARK: answers of the director's own (an HTTPS redirect, a routing rule's fixed status)
        Case(
            why: "a request the director answers itself (a redirect) takes no server, and keep-alive goes on",
            steps: [(request(get), pick), (.answer(status: 308), answer(308, close: false))], state: .idle),
        Case(
            why: "answered before its body came: the connection closes after the answer (the body is no request)",
            steps: [(request(post), pick), (.answer(status: 308), answer(308, close: true))], state: .closing),
        Case(
            why: "a client that said Connection: close gets the answer and the close",
            steps: [(request(getClose), pick), (.answer(status: 301), answer(301, close: true))], state: .closing),
        Case(
            why: "an answer once a server was tried is too late: ignored",
            steps: [(request(get), pick), (picked(1), connect(1)), (.answer(status: 308), wait)],
            state: .connecting(server: 1), holding: 1),

        // MARK: informational responses and upgrades
        Case(
            why: "100 Continue and 103 Early Hints go on to the client; the final response follows",
            steps: sentGET + [
                (response(100), A(.passInformational)), (response(103), A(.passInformational)),
                (response(200), head()), (ended(), nextParked),
            ], state: .idle),
        Case(
            why: "a 101 the client asked for turns the connection into a tunnel that keeps the server's slot",
            steps: [
                (request(upgrade), pick), (picked(1), connect(1)), (connected(), send), (response(101), A(.tunnel)),
            ], state: .tunnel(server: 1), holding: 1),
        Case(
            why: "the tunnel gives the slot back when both ends have closed",
            steps: [
                (request(upgrade), pick), (picked(1), connect(1)), (connected(), send), (response(101), A(.tunnel)),
                (.tunnelEnded, A(release: true, upstream: .close, .closeNow)),
            ], state: .closed),
        Case(
            why: "an upgrade the server declines is an ordinary response, and the connection closes after it",
            steps: [
                (request(upgrade), pick), (picked(1), connect(1)), (connected(), send),
                (response(200), head(close: true)),
                (ended(), A(release: true, upstream: .park, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "a 101 nobody asked for is not HTTP to pass on: a bad response, retried like one",
            steps: sentGET + [(response(101), retry)], state: .choosing),
        Case(
            why: "a status below 100 is a bad response",
            retries: 0, steps: sentGET + [(response(99), fail(502))], state: .closing),

        // MARK: retries
        Case(
            why: "a refused connect goes to the next server, and its slot is given back first",
            steps: [
                (request(get), pick), (picked(1), connect(1)), (failed(.connect(timedOut: false)), retry),
                (picked(2), connect(2)),
            ], state: .connecting(server: 2), holding: 2),
        Case(
            why: "a POST whose connect failed sent nothing: it may go to another server too",
            steps: [
                (request(postWhole), pick), (picked(1), connect(1)), (failed(.connect(timedOut: false)), retry),
            ], state: .choosing),
        Case(
            why: "a reset before the first response byte: a GET goes to another server",
            steps: sentGET + [(failed(.lostBeforeResponse), retry), (picked(2), connect(2))],
            state: .connecting(server: 2), holding: 2),
        Case(
            why: "a POST that may have reached the server is never sent twice: 502",
            steps: [
                (request(postWhole), pick), (picked(1), connect(1)), (connected(), send),
                (failed(.lostBeforeResponse), fail(502)),
            ], state: .closing),
        Case(
            why: "an idempotent PUT whose body bytes went up cannot be sent again: 502",
            steps: [
                (request(putWithBody), pick), (picked(1), connect(1)), (connected(), send), (.bodyForwarded, wait),
                (failed(.lostBeforeResponse), fail(502)),
            ], state: .closing),
        Case(
            why: "a request with a body is not replayable even before a byte of it went up (it is not buffered)",
            steps: [
                (request(putWithBody), pick), (picked(1), connect(1)), (connected(), send),
                (failed(.lostBeforeResponse), fail(502)),
            ], state: .closing),
        Case(
            why: "never a retry after a byte of the response went to the client: close so the client sees it cut",
            steps: sentGET + [
                (response(200), head()),
                (failed(.lostBeforeResponse), A(release: true, upstream: .close, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "a bad body found in the read that brought the head: nothing left yet, so a 502 page, not a cut",
            retries: 0,
            steps: sentGET + [(response(200), head()), (failed(.badResponse, withheld: true), fail(502))],
            state: .closing),
        Case(
            why: "with retries: 1, two servers at most: after the second refuses, the answer is 502",
            steps: [
                (request(get), pick), (picked(1), connect(1)), (failed(.connect(timedOut: false)), retry),
                (picked(2), connect(2)), (failed(.connect(timedOut: false)), fail(502)),
            ], state: .closing),
        Case(
            why: "no server left to try after a failure: the last failure decides the status (504 for a timeout)",
            steps: [
                (request(get), pick), (picked(1), connect(1)), (failed(.connect(timedOut: true)), retry),
                (picked(nil), answer(504, close: true)),
            ], state: .closing),
        Case(
            why: "no server at all (all down, or none configured): 503, and the keep-alive connection stays",
            steps: [(request(get), pick), (picked(nil), answer(503, close: false))], state: .idle),
        Case(
            why: "503 to a request whose body is still unread closes the connection: its bytes are not a next request",
            steps: [(request(post), pick), (picked(nil), answer(503, close: true))], state: .closing),
        Case(
            why: "a slow server is not retried (it would double the load that made it slow): 504",
            steps: sentGET + [(tick(61), fail(504))], state: .closing),
        Case(
            why: "a failure reported for a connection the exchange no longer uses changes nothing",
            steps: [(request(get), pick), (failed(.lostBeforeResponse), wait)], state: .choosing),
        Case(
            why: "retries: 0 never tries a second server",
            retries: 0,
            steps: [(request(get), pick), (picked(1), connect(1)), (failed(.connect(timedOut: false)), fail(502))],
            state: .closing),

        // MARK: the queue (every server full, or replicas on their way)
        Case(
            why: "a queued request takes the slot the queue hands it and goes on as any other",
            steps: [
                (request(get), pick), (.queued(until: s(5), now: 0), wait), (tick(1), wait),
                (picked(2, at: 2), connect(2)), (connected(), send),
            ], state: .exchanging(server: 2), holding: 2),
        Case(
            why: "timeout queue: no slot by its deadline is a 503, the request leaves the line, the connection stays",
            steps: [
                (request(get), pick), (.queued(until: s(5), now: 0), wait), (tick(4.9), wait),
                (
                    tick(5),
                    {
                        var a = answer(503, close: false); a.leaveQueue = true; return a
                    }()
                ),
            ], state: .idle),
        Case(
            why: "a client gone while queued leaves the line and holds nothing",
            steps: [
                (request(get), pick), (.queued(until: s(5), now: 0), wait),
                (
                    .clientClosed,
                    {
                        var a = A(.closeNow); a.leaveQueue = true; return a
                    }()
                ),
            ], state: .closed),
        Case(
            why: "a retry after a failure is not queued: the queued event is ignored while the machine chooses",
            steps: sentGET + [
                (failed(.connect(timedOut: false)), retry), (.queued(until: s(5), now: 0), wait),
                (picked(nil), answer(502, close: true)),
            ], state: .closing),

        // MARK: timeouts
        Case(
            why: "an idle keep-alive connection closes after timeouts.idle",
            steps: [(tick(59), wait), (tick(61), A(.closeNow))], state: .closed),
        Case(
            why: "a head begun and not finished within header_read gets 408 and a close",
            steps: [(.headBegun(now: s(1)), wait), (tick(10.5), wait), (tick(11.5), answer(408, close: true))],
            state: .closing),
        Case(
            why: "header_read counts from the first piece of the head, not from the last",
            steps: [
                (.headBegun(now: s(1)), wait), (.headBegun(now: s(9)), wait), (tick(11.5), answer(408, close: true)),
            ], state: .closing),
        Case(
            why: "a connect past timeouts.connect counts as a failed connect: the next server",
            steps: [(request(get), pick), (picked(1), connect(1)), (tick(2), wait), (tick(3.5), retry)],
            state: .choosing),
        Case(
            why: "when the driver's connector times connects itself, the sweep leaves them alone",
            timesConnects: false,
            steps: [(request(get), pick), (picked(1), connect(1)), (tick(3.5), wait)],
            state: .connecting(server: 1), holding: 1),
        Case(
            why: "a body that trickles in past timeouts.body gets 408, and the server's slot is given back",
            steps: [
                (request(post), pick), (picked(1), connect(1)), (connected(), send), (tick(30), wait),
                (tick(61), fail(408)),
            ], state: .closing),
        Case(
            why: "a body late after the response began cannot get a page: the connection closes",
            steps: [
                (request(post), pick), (picked(1), connect(1)), (connected(), send), (response(200), head()),
                (tick(61), A(release: true, upstream: .close, .closeNow)),
            ], state: .closed),
        Case(
            why: "while the body is still coming, the server owes nothing: no server timeout",
            steps: [
                (request(post), pick), (picked(1), connect(1)), (connected(), send),
                (.bodyEnded(now: s(50)), wait), (tick(100), wait), (tick(111), fail(504)),
            ], state: .closing),
        Case(
            why: "a server silent mid-response (or a client that stopped reading) is closed at the server timeout",
            steps: sentGET + [
                (response(200, at: 1), head()), (tick(60), wait),
                (tick(62), A(release: true, upstream: .close, .closeNow)),
            ], state: .closed),
        Case(
            why: "bytes keep a slow response alive: the server timeout counts from the last of them",
            steps: sentGET + [
                (response(200, at: 1), head()), (.activity(now: s(50)), wait), (tick(100), wait),
                (tick(111), A(release: true, upstream: .close, .closeNow)),
            ], state: .closed),

        // MARK: bad requests
        Case(
            why: "a malformed head between requests: 400 and close",
            steps: [(.malformed(status: 400), answer(400, close: true))], state: .closing),
        Case(
            why: "a parse error while a request is forwarded: its server's slot goes back with the 400",
            steps: [
                (request(post), pick), (picked(1), connect(1)), (connected(), send),
                (.malformed(status: 400), fail(400)),
            ], state: .closing),
        Case(
            why: "a parse error after the response began: only a close is left",
            steps: [
                (request(post), pick), (picked(1), connect(1)), (connected(), send), (response(200), head()),
                (.malformed(status: 400), A(release: true, upstream: .close, .closeNow)),
            ], state: .closed),

        // MARK: drain and close
        Case(
            why: "drain with nothing under way closes the connection at once",
            steps: [(.drain(bytesPending: false), A(.closeNow))], state: .closed),
        Case(
            why: "drain between requests with a head begun lets that request be answered, with close",
            steps: [
                (.headBegun(now: s(1)), wait), (.drain(bytesPending: false), wait), (request(get), pick),
                (picked(1), connect(1)), (connected(), send), (response(200), head(close: true)),
                (ended(), A(release: true, upstream: .park, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "drain mid-request: the response goes out with Connection: close, then the slot is free",
            steps: sentGET + [
                (.drain(bytesPending: false), wait), (response(200), head(close: true)),
                (ended(), A(release: true, upstream: .park, .closeAfterFlush)),
            ], state: .closing),
        Case(
            why: "drain with pipelined bytes waiting between requests: they are answered first, with close",
            steps: [(.drain(bytesPending: true), wait), (request(get), pick)], state: .choosing),
        Case(
            why: "the client went away mid-request: the slot goes back and the upstream connection closes",
            steps: sentGET + [(.clientClosed, A(release: true, upstream: .close, .closeNow))], state: .closed),
        Case(
            why: "the client went away between requests: nothing to release",
            steps: [(.clientClosed, A(.closeNow)), (.clientClosed, wait)], state: .closed),
        Case(
            why: "a tunnel's client closing does not end it: its two ends close together (tunnelEnded)",
            steps: [
                (request(upgrade), pick), (picked(1), connect(1)), (connected(), send), (response(101), A(.tunnel)),
                (.clientClosed, wait), (.drain(bytesPending: false), wait),
            ], state: .tunnel(server: 1), holding: 1),
    ]

    @Test(arguments: cases)
    func script(_ c: Case) {
        let settings = HTTPExchange.Settings(
            TimeoutsConfig(), retries: c.retries, timesConnects: c.timesConnects)
        var exchange = HTTPExchange(settings, now: 0)
        for (index, (event, expected)) in c.steps.enumerated() {
            var action = exchange.handle(event)
            action.failure = nil  // what counts toward ejection has its own table
            action.finished = false  // and where a request's life ends has its own test
            #expect(action == expected, "step \(index + 1): \(event)")
        }
        #expect(exchange.state == c.state)
        #expect(exchange.holding == c.holding)
    }

    /// Every script that ends with no slot held gave back each slot it took exactly once: in-flight accounting
    /// cannot leak (the drain hang) nor go negative.
    @Test(arguments: cases)
    func slotsBalance(_ c: Case) {
        var exchange = HTTPExchange(
            HTTPExchange.Settings(TimeoutsConfig(), retries: c.retries, timesConnects: c.timesConnects), now: 0)
        var held = 0
        for (event, _) in c.steps {
            let before = exchange.holding
            let action = exchange.handle(event)
            if case .picked(let server?, _) = event, before == nil, exchange.holding == server { held += 1 }
            if action.release { held -= 1 }
            #expect(held >= 0 && held <= 1)
        }
        #expect(held == (exchange.holding == nil ? 0 : 1))
    }

    /// Every request that starts is finished (its access-log line) at most once, and exactly once if the script
    /// leaves it over; a head answered that was no request (malformed, or a 408) is finished once too; nothing else
    /// is.
    @Test(arguments: cases)
    func finishedOncePerRequest(_ c: Case) {
        var exchange = HTTPExchange(
            HTTPExchange.Settings(TimeoutsConfig(), retries: c.retries, timesConnects: c.timesConnects), now: 0)
        var open = false
        for (index, (event, _)) in c.steps.enumerated() {
            let before = exchange.state
            let action = exchange.handle(event)
            if case .request = event, before == .idle, exchange.state != .idle { open = true }
            if action.finished {
                var answered = false
                if case .respond = action.next, before == .idle { answered = true }
                #expect(open || answered, "step \(index + 1): finished with no request open")
                open = false
            }
        }
        switch exchange.state {
        case .choosing, .queued, .connecting, .exchanging, .tunnel:
            #expect(open, "a request in flight is still open")
        case .idle, .closing, .closed: #expect(!open, "a request left over was never finished")
        }
    }

    @Test("the phases of a request, for the access log: head start, head, connected, first byte")
    func timing() {
        var exchange = HTTPExchange(HTTPExchange.Settings(TimeoutsConfig(), retries: 1, timesConnects: true), now: 0)
        _ = exchange.handle(.headBegun(now: Self.s(1)))
        _ = exchange.handle(Self.request(Self.get, at: 2))
        _ = exchange.handle(Self.picked(1, at: 2))
        _ = exchange.handle(Self.failed(.connect(timedOut: false)))
        _ = exchange.handle(Self.picked(2, at: 3))
        _ = exchange.handle(Self.connected(at: 4))
        _ = exchange.handle(Self.response(100, at: 5))
        _ = exchange.handle(Self.response(200, at: 6))
        let end = exchange.handle(Self.ended(at: 7))
        #expect(end.finished)
        #expect(exchange.timing.headStart == Self.s(1) && exchange.timing.request == Self.s(2))
        #expect(exchange.timing.connected == Self.s(4) && exchange.timing.firstByte == Self.s(6))
        #expect(exchange.tried == [1, 2], "one retry")
        // The next request starts its own phases; a head sent whole starts when it is whole.
        _ = exchange.handle(Self.request(Self.get, at: 8))
        #expect(exchange.timing.headStart == Self.s(8) && exchange.timing.connected == 0)
    }

    /// Which failures count toward the real server's ejection: the last action of each script carries it.
    static let counted: [(why: String, steps: [E], counted: UpstreamFailure?)] = [
        (
            "a refused connect counts against the server",
            [request(get), picked(1), failed(.connect(timedOut: false))], .connect(timedOut: false)
        ),
        (
            "a connect out of time counts, found by the sweep",
            [request(get), picked(1), tick(4)], .connect(timedOut: true)
        ),
        (
            "a connection lost before the response counts",
            [request(get), picked(1), connected(), failed(.lostBeforeResponse)], .lostBeforeResponse
        ),
        (
            "a response that is not HTTP counts",
            [request(get), picked(1), connected(), failed(.badResponse)], .badResponse
        ),
        (
            "a slow server is not a dead one: a server timeout does not count",
            [request(get), picked(1), connected(), tick(61)], nil
        ),
        (
            "the director out of file descriptors does not count against the server",
            [request(get), picked(1), failed(.localResources)], nil
        ),
        (
            "a connection lost mid-response does not count: the server had answered",
            [request(get), picked(1), connected(), response(200), failed(.lostBeforeResponse)], nil
        ),
    ]

    @Test func countedFailures() {
        for c in Self.counted {
            var exchange = HTTPExchange(
                HTTPExchange.Settings(TimeoutsConfig(), retries: 1, timesConnects: true), now: 0)
            var last = HTTPExchange.Action.wait
            for event in c.steps { last = exchange.handle(event) }
            #expect(last.failure == c.counted, "\(c.why)")
            #expect(last.release, "\(c.why): the slot goes back with it")
        }
    }

    @Test func enoughCases() {
        #expect(Self.cases.count >= 40)
    }
}
