import NIOHTTP1

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

    /// The request as it goes to a real server: HTTP/1.1, hop-by-hop headers gone (kept for an upgrade), the
    /// client appended to X-Forwarded-For, a Host added if the client sent none.
    static func upstreamRequest(_ head: HTTPRequestHead, clientIP: String?, forwardedFor: Bool, upgrade: Bool,
                                defaultHost: String) -> HTTPRequestHead {
        var head = head
        var needsRewrite = false
        var xffIndex = -1
        var hasHost = false
        var index = 0
        for (name, _) in head.headers {
            let length = name.utf8.count
            if length == 15 && name.caseInsensitiveEquals("x-forwarded-for") {
                xffIndex = index
            } else if length == 4 && name.caseInsensitiveEquals("host") {
                hasHost = true
            } else if !upgrade && Self.isHopByHop(name) {
                needsRewrite = true
            } else if upgrade && length == 16 && name.caseInsensitiveEquals("proxy-connection") {
                needsRewrite = true
            }
            index += 1
        }
        if needsRewrite || xffIndex >= 0 {
            var listed: [Substring] = []
            for value in head.headers[canonicalForm: "connection"] where !upgrade {
                listed.append(value)
            }
            var rebuilt = HTTPHeaders()
            for (name, value) in head.headers {
                if upgrade {
                    if name.caseInsensitiveEquals("proxy-connection") { continue }
                } else if Self.isHopByHop(name) || listed.contains(where: { name.caseInsensitiveEquals(String($0)) }) {
                    continue
                }
                if forwardedFor, let ip = clientIP, name.utf8.count == 15, name.caseInsensitiveEquals("x-forwarded-for") {
                    rebuilt.add(name: name, value: "\(value), \(ip)")
                    continue
                }
                rebuilt.add(name: name, value: value)
            }
            if forwardedFor, xffIndex < 0, let ip = clientIP {
                rebuilt.add(name: "X-Forwarded-For", value: ip)
            }
            head.headers = rebuilt
        } else if forwardedFor, let ip = clientIP {
            head.headers.add(name: "X-Forwarded-For", value: ip)
        }
        if !hasHost {
            head.headers.add(name: "Host", value: defaultHost)
        }
        head.version = .http1_1
        return head
    }

    /// The response as it goes to the client: hop-by-hop headers gone, and Connection set for what the proxy
    /// will do with the client connection.
    static func clientResponse(_ head: HTTPResponseHead, version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var head = head
        var needsRewrite = false
        for (name, _) in head.headers where Self.isHopByHop(name) {
            needsRewrite = true
            break
        }
        if needsRewrite {
            var listed: [Substring] = []
            for value in head.headers[canonicalForm: "connection"] {
                listed.append(value)
            }
            var rebuilt = HTTPHeaders()
            for (name, value) in head.headers {
                if Self.isHopByHop(name) || listed.contains(where: { name.caseInsensitiveEquals(String($0)) }) {
                    continue
                }
                rebuilt.add(name: name, value: value)
            }
            head.headers = rebuilt
        }
        head.version = version
        if !keepAlive {
            head.headers.add(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            head.headers.add(name: "Connection", value: "keep-alive")
        }
        return head
    }

    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        guard head.headers.contains(name: "upgrade") else { return false }
        return head.headers[canonicalForm: "connection"].contains { $0.caseInsensitiveEquals("upgrade") }
    }

    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): safe to send again.
    @inline(__always)
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }

    /// Whether a request carries a body (so cannot be replayed once sent).
    @inline(__always)
    static func hasBody(_ head: HTTPRequestHead) -> Bool {
        if let length = head.headers.first(name: "content-length") { return length != "0" }
        return head.headers.contains(name: "transfer-encoding")
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
    @inline(__always)
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = self.utf8
        let b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            // ASCII letters differ by 0x20 between cases.
            if x | 0x20 != y | 0x20 || !((x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A) { return false }
        }
        return true
    }
}
