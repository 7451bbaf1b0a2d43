import SwiftVSCore
import Testing

/// Requests as a browser page, a DNS-rebinding page, curl and `swiftvs adm` send them, and what the guard says.
@Suite("Who may drive the admin API")
struct AdminGuardTests {
    struct Case: CustomStringConvertible, Sendable {
        var why: String
        var guard_: AdminGuard
        var request: AdminGuard.Request
        var status: Int?  // nil: allowed
        var description: String { self.why }
    }

    static let open = AdminGuard(transport: .tcp, token: nil)
    static let tokened = AdminGuard(transport: .tcp, token: "s3cret-token", names: ["lb.example.com"])
    static let socket = AdminGuard(transport: .unixSocket, token: "s3cret-token")
    static let auth = "Bearer s3cret-token"
    static let json = "application/json"

    static let cases: [Case] = [
        Case(
            why: "a read over TCP with the listener's address needs nothing (Prometheus, curl)",
            guard_: open, request: .init(method: "GET", host: "127.0.0.1:9100"), status: nil),
        Case(
            why: "localhost and an IPv6 literal are this machine's own names",
            guard_: open, request: .init(method: "GET", host: "localhost:9100"), status: nil),
        Case(
            why: "an IPv6 literal in brackets cannot be a rebinding name",
            guard_: open, request: .init(method: "GET", host: "[::1]:9100"), status: nil),
        Case(
            why: "a rebinding page names its own domain: refused even for reads (it would read the real servers)",
            guard_: open, request: .init(method: "GET", host: "evil.example:9100"), status: 403),
        Case(
            why: "a request with no Host (HTTP/1.0 by hand) cannot be told apart from a rebinding one",
            guard_: open, request: .init(method: "GET"), status: 403),
        Case(
            why: "a name listed in admin.names is accepted, with or without the port",
            guard_: tokened, request: .init(method: "GET", host: "LB.example.com:9100", authorization: auth),
            status: nil),
        Case(
            why: "the issue's reproduction: text/plain, a foreign Origin and Host: evil.example",
            guard_: open,
            request: .init(
                method: "POST", host: "evil.example", origin: "http://evil.example", contentType: "text/plain"),
            status: 403),
        Case(
            why: "a write over TCP without a token configured: refused, the socket is the local control channel",
            guard_: open, request: .init(method: "POST", host: "127.0.0.1:9100", contentType: json), status: 403),
        Case(
            why: "a token configured: a read without it is refused too",
            guard_: tokened, request: .init(method: "GET", host: "127.0.0.1:9100"), status: 401),
        Case(
            why: "a wrong token is refused like a missing one",
            guard_: tokened,
            request: .init(method: "GET", host: "127.0.0.1:9100", authorization: "Bearer s3cret-tokex"), status: 401),
        Case(
            why: "a browser's Basic credentials with the token as password read the stats page (any user name)",
            guard_: tokened,
            // base64("admin:s3cret-token")
            request: .init(method: "GET", host: "127.0.0.1:9100", authorization: "Basic YWRtaW46czNjcmV0LXRva2Vu"),
            status: nil),
        Case(
            why: "Basic with another password, or not base64 at all, is refused",
            guard_: tokened,
            // base64("admin:s3cret-tokex")
            request: .init(method: "GET", host: "127.0.0.1:9100", authorization: "Basic YWRtaW46czNjcmV0LXRva2V4"),
            status: 401),
        Case(
            why: "a Basic value that is not base64 is refused",
            guard_: tokened, request: .init(method: "GET", host: "127.0.0.1:9100", authorization: "Basic ***"),
            status: 401),
        Case(
            why: "the token and JSON: a write over TCP goes through (swiftvs adm --token)",
            guard_: tokened,
            request: .init(method: "PATCH", host: "127.0.0.1:9100", contentType: json, authorization: auth),
            status: nil),
        Case(
            why: "a write from a page of another origin is refused even with the token (a browser may hold it)",
            guard_: tokened,
            request: .init(
                method: "POST", host: "127.0.0.1:9100", origin: "http://evil.example", contentType: json,
                authorization: auth), status: 403),
        Case(
            why: "the null origin (sandboxed frames, file: pages) is another origin",
            guard_: tokened,
            request: .init(
                method: "POST", host: "127.0.0.1:9100", origin: "null", contentType: json, authorization: auth),
            status: 403),
        Case(
            why: "a browser's own page of this API (same origin) may write",
            guard_: tokened,
            request: .init(
                method: "POST", host: "127.0.0.1:9100", origin: "http://127.0.0.1:9100", contentType: json,
                authorization: auth), status: nil),
        Case(
            why: "Sec-Fetch-Site: cross-site says a page elsewhere made the request",
            guard_: tokened,
            request: .init(
                method: "DELETE", host: "127.0.0.1:9100", fetchSite: "cross-site", contentType: json,
                authorization: auth), status: 403),
        Case(
            why: "text/plain is what a cross-origin form can send without a preflight: 415",
            guard_: tokened,
            request: .init(method: "POST", host: "127.0.0.1:9100", contentType: "text/plain", authorization: auth),
            status: 415),
        Case(
            why: "JSON with a charset parameter is JSON",
            guard_: tokened,
            request: .init(
                method: "POST", host: "127.0.0.1:9100", contentType: "application/json; charset=utf-8",
                authorization: auth), status: nil),
        Case(
            why: "the socket needs no token and no IP Host: its file's permissions are the guard",
            guard_: socket, request: .init(method: "POST", host: "localhost", contentType: json), status: nil),
        Case(
            why: "even on the socket, writes are JSON (one rule for every client)",
            guard_: socket, request: .init(method: "POST", host: "localhost", contentType: "text/plain"), status: 415),
    ]

    @Test(arguments: cases)
    func verdict(_ c: Case) {
        let verdict = c.guard_.check(c.request)
        switch verdict {
        case .allow: #expect(c.status == nil, "\(c.why)")
        case .refuse(let status, _, _): #expect(status == c.status, "\(c.why)")
        }
    }
}
