import SwiftVSCore
import Testing

@Suite("Retries and the 502/504 choice, as both HTTP drivers make them")
struct RetryDecisionTests {
    struct Case: CustomStringConvertible, Sendable {
        var failure: UpstreamFailure
        var replayable = true
        var bodySent = false
        var tried = 1
        var retries = 1
        var responseStarted = false
        var expected: RetryDecision
        var why: String
        var description: String { self.why }
    }

    static let cases: [Case] = [
        Case(
            failure: .connect(timedOut: false), expected: .retry(otherwise: 502),
            why: "a refused connect sent nothing: another server may take any request"),
        Case(
            failure: .connect(timedOut: false), replayable: false, bodySent: false, expected: .retry(otherwise: 502),
            why: "a POST whose connect failed sent nothing either: it goes to another server too"),
        Case(
            failure: .connect(timedOut: true), expected: .retry(otherwise: 504),
            why: "a connect out of time is retried, and answered 504 if no server is left"),
        Case(
            failure: .connect(timedOut: false), tried: 2, retries: 1, expected: .respond(502),
            why: "retries: 1 means two servers at most: after the second, answer"),
        Case(
            failure: .connect(timedOut: true), tried: 2, retries: 1, expected: .respond(504),
            why: "the last failure decides the status: a timeout is a 504"),
        Case(
            failure: .connect(timedOut: false), retries: 0, expected: .respond(502),
            why: "retries: 0 never tries another server"),
        Case(
            failure: .lostBeforeResponse, expected: .retry(otherwise: 502),
            why: "a GET reset before its first response byte goes to another server (its effect can repeat)"),
        Case(
            failure: .lostBeforeResponse, replayable: false, expected: .respond(502),
            why: "a POST reset before the response may have been acted on: never sent twice"),
        Case(
            failure: .lostBeforeResponse, bodySent: true, expected: .respond(502),
            why: "a PUT whose body went out cannot be sent again: the body is gone"),
        Case(
            failure: .lostBeforeResponse, responseStarted: true, expected: .close,
            why: "never a retry after a byte was sent to the client: only the close can tell it"),
        Case(
            failure: .connect(timedOut: false), responseStarted: true, expected: .close,
            why: "whatever failed, once the response began the client learns by the close"),
        Case(
            failure: .badResponse, expected: .retry(otherwise: 502),
            why: "a server answering garbage is treated as one that dropped the request: a GET goes elsewhere"),
        Case(
            failure: .badResponse, replayable: false, expected: .respond(502),
            why: "a POST answered with garbage is not sent twice"),
        Case(
            failure: .badResponse, responseStarted: true, expected: .close,
            why: "a bad chunk after the head went out: close"),
        Case(
            failure: .serverTimeout, expected: .respond(504),
            why: "a silent server is answered 504 and not retried: a retry would double the load that slowed it"),
        Case(
            failure: .serverTimeout, responseStarted: true, expected: .close,
            why: "a server silent in the middle of a body: the client sees the close"),
        Case(
            failure: .lostBeforeResponse, tried: 3, retries: 2, expected: .respond(502),
            why: "retries: 2 allows three servers: the third failure answers"),
        Case(
            failure: .lostBeforeResponse, tried: 2, retries: 2, expected: .retry(otherwise: 502),
            why: "retries: 2 after two failures: one more server"),
        Case(
            failure: .localResources, expected: .respond(503),
            why: "the director out of descriptors: another server would fail alike, so 503 at once"),
        Case(
            failure: .localResources, responseStarted: true, expected: .close,
            why: "out of resources after the head went out (a retry's socket): only the close is left"),
    ]

    @Test("each failure, request and response state gives its decision", arguments: Self.cases)
    func decision(_ c: Case) {
        let decision = RetryDecision.decide(
            c.failure, replayable: c.replayable, bodySent: c.bodySent,
            tried: c.tried, retries: c.retries, responseStarted: c.responseStarted)
        #expect(decision == c.expected, "\(c.why)")
    }
}
