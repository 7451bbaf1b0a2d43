import SwiftVSCore
import Testing

@Suite("What a client speaks, from its first bytes")
struct FrontProtocolTests {
    static let cases: [(String, Bool, Bool, FrontProtocol?)] = [
        ("", true, true, nil),
        ("\u{16}\u{03}\u{01}", true, true, .tls),
        ("GET / HTTP/1.1\r\n", true, true, .plainOnTLS),
        ("\u{00}\u{01}", true, true, .unknown),
        ("GET / HTTP/1.1\r\n", false, true, .http1),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\u{00}", false, true, .h2c),
        ("PRI * HTTP/2.0\r\n", false, true, nil),
        ("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", false, true, .h2c),
        ("PRI * HTTP/1.1\r\n", false, true, .http1),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, false, .http1),
        ("P", false, true, nil),
    ]

    @Test("classified by table", arguments: Self.cases.indices)
    func classify(_ index: Int) {
        let (text, tls, http2, expected) = Self.cases[index]
        #expect(
            FrontProtocol.classify(Array(text.utf8), tls: tls, http2: http2) == expected, "\(text.debugDescription)")
    }

    @Test("SNI: exact names before wildcards, a wildcard covers one label, case and a final dot do not matter")
    func serverNames() {
        let table = ServerNameTable([["a.example.com"], ["*.example.com", "b.test"], ["A.EXAMPLE.COM", "c.test."]])
        #expect(table.certificate(for: "a.example.com") == 0)
        #expect(table.certificate(for: "A.Example.Com.") == 0)
        #expect(table.certificate(for: "x.example.com") == 1)
        #expect(table.certificate(for: "y.x.example.com") == nil)
        #expect(table.certificate(for: "example.com") == nil)
        #expect(table.certificate(for: "c.test") == 2)
        #expect(table.certificate(for: "b.test") == 1)
        #expect(table.certificate(for: nil) == nil)
        #expect(table.certificate(for: ".example.com") == nil)
    }

    @Test("the HTTPS redirect's Location: the request's host without its port, the path kept, 443 left out")
    func redirect() {
        let r = HTTPSRedirect(status: 308, port: 443)
        #expect(r.location(host: "example.com:8080", target: "/a?b=1") == "https://example.com/a?b=1")
        #expect(r.location(host: "[::1]:80", target: "/") == "https://[::1]/")
        #expect(HTTPSRedirect(port: 8443).location(host: "example.com", target: "/x") == "https://example.com:8443/x")
        #expect(r.location(host: nil, target: "/") == nil)
        #expect(r.location(host: "evil.com/x", target: "/") == nil)
        #expect(r.location(host: "a.com", target: "http://a.com/x") == "https://a.com/x")
        #expect(r.location(host: "a.com", target: "*") == "https://a.com/")
    }
}
