import NIOHTTP1

import NIOCore
import SwiftVSCore

/// Who a client is, read once when its connection becomes active: its address, as text for X-Forwarded-For, and
/// as the key that source hashing and persistence use.
struct ClientPeer {
    var remote: SocketAddress?
    var ip: String?
    var sourceKey: UInt32 = 0

    init() {}

    init(_ remote: SocketAddress?, _ config: VirtualServiceConfig) {
        self.remote = remote
        self.ip = self.remote?.ipAddress
        self.sourceKey = self.remote?.sourceKey(withPort: config.flags.port) ?? 0
    }
}

extension HTTPResponseScanner {
    /// A scanner as the relay engine's HTTP path uses it: it notes the hop-by-hop lines the path leaves out.
    static func forProxy() -> HTTPResponseScanner {
        var scanner = HTTPResponseScanner()
        scanner.collectsHopLines = true
        return scanner
    }
}

/// The director's own short answers (400, 408, 431, 502, 503, 504): one page for both HTTP paths. The relay writes
/// `text`; the NIOHTTP1 proxy writes `head` and `body`.
struct ErrorPage {
    let status: HTTPResponseStatus
    /// `Connection: close`: the connection ends after it.
    let close: Bool
    /// A redirect's target.
    var location: String? = nil

    var body: String {
        if let location = self.location { return "\(self.status.code) \(self.status.reasonPhrase): \(location)\n" }
        return "\(self.status.code) \(self.status.reasonPhrase)\n"
    }

    var headers: [(String, String)] {
        var headers = [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", String(self.body.utf8.count)),
            ("Cache-Control", "no-store"),
        ]
        if let location = self.location { headers.append(("Location", location)) }
        if self.close { headers.append(("Connection", "close")) }
        return headers
    }

    var head: HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: self.status, headers: HTTPHeaders(self.headers))
    }

    /// The whole response as HTTP/1.1 text.
    var text: String {
        "HTTP/1.1 \(self.status.code) \(self.status.reasonPhrase)\r\n"
            + self.headers.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n" + self.body
    }
}

/// Header work the proxy does on every request and response, in one pass over the headers.
enum HTTPHead {
    /// RFC 9110 §7.6.1 hop-by-hop headers, matched by length first so that most names cost one comparison.
    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.caseInsensitiveEquals("te")
        case 7: return name.caseInsensitiveEquals("trailer") || name.caseInsensitiveEquals("upgrade")
        case 10: return name.caseInsensitiveEquals("connection") || name.caseInsensitiveEquals("keep-alive")
        case 16: return name.caseInsensitiveEquals("proxy-connection")
        default: return false
        }
    }

    /// What one pass over a request's headers learns.
    struct RequestFacts {
        var isUpgrade = false
        var hasBody = false
        /// Why the request must be answered 400 instead of forwarded (HAProxy refuses the same).
        var invalid: String?
    }

    /// Headers the director adds or needs on every request: a client's `Connection` cannot make them hop-by-hop
    /// (`Connection: X-Forwarded-For` would strip the client address the director adds; `Connection: Host` would
    /// send an HTTP/1.1 request without a Host).
    @inline(__always)
    static func isEndToEndAlways(_ name: String) -> Bool {
        (name.utf8.count == 4 && name.caseInsensitiveEquals("host"))
            || (name.utf8.count == 15 && name.caseInsensitiveEquals("x-forwarded-for"))
    }

    /// The authority of an absolute-form target (`http://host:port/path`), or nil for any other form.
    static func absoluteAuthority(_ uri: String) -> Substring? {
        let utf8 = uri.utf8
        guard let colon = utf8.firstIndex(of: UInt8(ascii: ":")),
            utf8[utf8.index(after: colon)...].starts(with: "//".utf8)
        else { return nil }
        let scheme = uri[..<colon]
        guard scheme.caseInsensitiveEquals("http") || scheme.caseInsensitiveEquals("https") else { return nil }
        let start = uri.index(colon, offsetBy: 3)
        let rest = uri[start...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        return rest[..<end]
    }

    /// The request as it goes to a real server: HTTP/1.1, hop-by-hop headers gone (kept for an upgrade), the
    /// client appended to X-Forwarded-For, a Host added if the client sent none. One pass over the headers finds
    /// everything; the header list is rebuilt only when something must go.
    static func upstreamRequest(
        _ head: HTTPRequestHead, clientIP: String?, forwardedFor: Bool,
        defaultHost: String, forwardedProto: String? = nil
    ) -> (HTTPRequestHead, RequestFacts) {
        var head = head
        var facts = RequestFacts()
        var hopByHop = false
        var hasXFF = false
        var hasHost = false
        var host: String?
        var hasUpgradeHeader = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.caseInsensitiveEquals("host"):
                if hasHost { facts.invalid = "more than one Host header" }
                hasHost = true
                host = value
            case 14 where name.caseInsensitiveEquals("content-length"):
                facts.hasBody = facts.hasBody || value != "0"
            case 15 where name.caseInsensitiveEquals("x-forwarded-for"):
                hasXFF = true
            case 17 where name.caseInsensitiveEquals("transfer-encoding"):
                facts.hasBody = true
            default:
                if Self.isHopByHop(name) {
                    hopByHop = true
                    if name.utf8.count == 7 && name.caseInsensitiveEquals("upgrade") { hasUpgradeHeader = true }
                }
            }
        }
        if let authority = Self.absoluteAuthority(head.uri), let host, authority.lowercased() != host.lowercased() {
            facts.invalid = "the target's host is not the Host header's"
        }
        if hasUpgradeHeader {
            facts.isUpgrade = head.headers[canonicalForm: "connection"].contains { $0.caseInsensitiveEquals("upgrade") }
        }
        if hopByHop || hasXFF {
            // Connection and Upgrade stay on an upgrade request: the real server must see the handshake.
            let listed = facts.isUpgrade ? [] : Array(head.headers[canonicalForm: "connection"])
            var rebuilt = HTTPHeaders()
            for (name, value) in head.headers {
                if facts.isUpgrade {
                    if name.utf8.count == 16 && name.caseInsensitiveEquals("proxy-connection") { continue }
                } else if Self.isHopByHop(name)
                    || !Self.isEndToEndAlways(name) && listed.contains(where: { name.lowercased() == $0.lowercased() })
                {
                    continue
                }
                if forwardedFor, let ip = clientIP, name.utf8.count == 15, name.caseInsensitiveEquals("x-forwarded-for")
                {
                    rebuilt.add(name: name, value: "\(value), \(ip)")
                    continue
                }
                rebuilt.add(name: name, value: value)
            }
            if forwardedFor, !hasXFF, let ip = clientIP {
                rebuilt.add(name: "X-Forwarded-For", value: ip)
            }
            head.headers = rebuilt
        } else if forwardedFor, let ip = clientIP {
            head.headers.add(name: "X-Forwarded-For", value: ip)
        }
        if !hasHost {
            head.headers.add(name: "Host", value: defaultHost)
        }
        // The director's word, never the client's: a client could claim https over clear text.
        if let forwardedProto { head.headers.replaceOrAdd(name: "X-Forwarded-Proto", value: forwardedProto) }
        head.version = .http1_1
        return (head, facts)
    }

    /// The response as it goes to the client: hop-by-hop headers gone, and Connection set for what the proxy
    /// will do with the client connection. The usual `Connection: keep-alive` is removed in place.
    static func clientResponse(_ head: HTTPResponseHead, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var head = head
        var present: [String] = []
        var plainConnection = false
        for (name, value) in head.headers where Self.isHopByHop(name) {
            // The usual case, `Connection: keep-alive` (or close), goes without building lists.
            if name.utf8.count == 10 && name.caseInsensitiveEquals("connection")
                && (value.caseInsensitiveEquals("keep-alive") || value.caseInsensitiveEquals("close"))
            {
                plainConnection = true
                continue
            }
            present.append(name)
        }
        if present.isEmpty {
            if plainConnection { head.headers.remove(name: "connection") }
        } else {
            // Tokens in Connection other than the standard ones name more headers to drop.
            var extra: [String] = []
            for token in head.headers[canonicalForm: "connection"] {
                let lower = token.lowercased()
                if lower != "keep-alive" && lower != "close" && lower != "upgrade" { extra.append(lower) }
            }
            for name in present + extra + ["connection"] {
                head.headers.remove(name: name)
            }
        }
        head.version = version
        if !keepAlive {
            head.headers.add(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            head.headers.add(name: "Connection", value: "keep-alive")
        }
        return head
    }

    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): safe to send again.
    @inline(__always)
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }

    /// The value of `name` in a query string, if present.
    static func queryValue(_ uri: String, _ name: String) -> Substring? {
        guard let question = uri.firstIndex(of: "?") else { return nil }
        let query = uri[uri.index(after: question)...]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let equals = pair.firstIndex(of: "=") {
                if pair[..<equals] == name { return pair[pair.index(after: equals)...] }
            } else if pair == name {
                return ""
            }
        }
        return nil
    }

    static func cookieValue(_ headers: HTTPHeaders, _ name: String) -> Substring? {
        for header in headers[canonicalForm: "cookie"] {
            for cookie in header.split(separator: ";") {
                let trimmed = cookie.drop { $0 == " " }
                if let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == name {
                    return trimmed[trimmed.index(after: equals)...]
                }
            }
        }
        return nil
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality against `lowercase`, which must be lowercase letters, digits and '-' (header
    /// names the proxy looks for). Setting bit 0x20 lowercases a letter and leaves '-' and digits as they are; the
    /// HTTP parser has already rejected the few other bytes that it would map onto them.
    @inline(__always)
    func caseInsensitiveEquals(_ lowercase: String) -> Bool {
        var a = self.utf8.makeIterator()
        var b = lowercase.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?): if x | 0x20 != y { return false }
            default: return false
            }
        }
    }
}
