import SwiftVSCore
import Testing

@Suite("Which timeout fires, as both HTTP drivers ask")
struct ExchangeTimeoutsTests {
    static let s: UInt64 = 1_000_000_000
    /// header_read 10 s, idle 60 s, server 30 s, body 20 s.
    static let timeouts = ExchangeTimeouts(TimeoutsConfig(connect: 3, headerRead: 10, idle: 60, server: 30, body: 20))

    struct Case: CustomStringConvertible, Sendable {
        var phase: ExchangeTimeouts.Phase
        var now: UInt64
        var expected: ExchangeTimeouts.Expiry
        var why: String
        var description: String { self.why }
    }

    static let cases: [Case] = [
        Case(
            phase: .betweenRequests(headSince: nil, lastActivity: 0), now: 59 * s, expected: .none,
            why: "an idle keep-alive client within timeouts.idle stays"),
        Case(
            phase: .betweenRequests(headSince: nil, lastActivity: 0), now: 61 * s, expected: .idle,
            why: "an idle keep-alive client past timeouts.idle is closed"),
        Case(
            phase: .betweenRequests(headSince: 100 * s, lastActivity: 100 * s), now: 109 * s, expected: .none,
            why: "a head arriving in pieces has header_read to finish"),
        Case(
            phase: .betweenRequests(headSince: 100 * s, lastActivity: 109 * s), now: 111 * s, expected: .headerRead,
            why: "header_read counts from the head's first byte, not the last: a trickling head still gets 408"),
        Case(
            phase: .betweenRequests(headSince: 100 * s, lastActivity: 100 * s), now: 150 * s, expected: .headerRead,
            why: "a started head is judged by header_read, never by the longer idle timeout"),
        Case(
            phase: .connecting(deadline: 3 * s), now: 3 * s, expected: .none,
            why: "the connect deadline itself is still in time"),
        Case(
            phase: .connecting(deadline: 3 * s), now: 3 * s + 1, expected: .connect,
            why: "past the connect deadline the next real server is tried"),
        Case(
            phase: .exchanging(requestSince: 0, bodyComplete: true, awaitingServer: true, sentAt: 0, lastActivity: 0),
            now: 29 * s, expected: .none, why: "a server within timeouts.server is waited for"),
        Case(
            phase: .exchanging(requestSince: 0, bodyComplete: true, awaitingServer: true, sentAt: 0, lastActivity: 0),
            now: 31 * s, expected: .server, why: "a silent server past timeouts.server: 504 (or a close mid-response)"),
        Case(
            phase: .exchanging(
                requestSince: 0, bodyComplete: true, awaitingServer: true, sentAt: 0,
                lastActivity: 20 * s),
            now: 31 * s, expected: .none,
            why: "the server timeout counts from its last byte: a slow but steady response goes on"),
        Case(
            phase: .exchanging(
                requestSince: 0, bodyComplete: false, awaitingServer: false, sentAt: 0,
                lastActivity: 19 * s),
            now: 21 * s, expected: .body,
            why: "a body that trickles in is cut at timeouts.body from the head, however recent its last byte"),
        Case(
            phase: .exchanging(requestSince: 0, bodyComplete: false, awaitingServer: true, sentAt: 0, lastActivity: 0),
            now: 35 * s, expected: .body,
            why: "an unfinished body and a silent server: the client's slowness is judged first"),
        Case(
            phase: .exchanging(requestSince: 0, bodyComplete: false, awaitingServer: false, sentAt: 0, lastActivity: 0),
            now: 19 * s, expected: .none,
            why: "a body still arriving within timeouts.body, with nothing owed by the server: no timeout"),
        Case(
            phase: .exchanging(requestSince: 0, bodyComplete: true, awaitingServer: false, sentAt: 0, lastActivity: 0),
            now: 1000 * s, expected: .none,
            why: "a request whose server owes nothing yet (still connecting, in NIO's own bootstrap): no timeout here"),
    ]

    @Test("each phase and time gives its expiry", arguments: Self.cases)
    func expiry(_ c: Case) {
        #expect(Self.timeouts.check(c.phase, now: c.now) == c.expected, "\(c.why)")
    }
}
