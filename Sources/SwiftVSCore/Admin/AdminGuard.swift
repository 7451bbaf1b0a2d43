/// Who may drive the admin API: decided for every request before any route, from the transport it came on and its
/// headers. Pure: the tests give it requests as a browser, a rebinding page, curl and `swiftvs adm` send them.
///
/// The threat model (docs/config.md): the Unix socket is the local control channel, guarded by its file's
/// permissions; the TCP listener serves reads (metrics, status) to whoever can connect and takes writes only with
/// the token. A web page in the operator's browser can make the browser send requests to 127.0.0.1, so on TCP:
/// - the `Host` must be an IP address, `localhost`, or a name in `admin.names` (a DNS-rebinding page names its own
///   domain, which resolves to 127.0.0.1 only for the attack);
/// - a write from another origin (`Origin` not this host, or `Sec-Fetch-Site` other than same-origin or none) is
///   refused, and every write must be `Content-Type: application/json`, which a page cannot send across origins
///   without a CORS preflight that this API never grants.
public struct AdminGuard: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        case tcp
        /// The Unix socket: only who can open its file reaches it; no browser can.
        case unixSocket
    }

    public enum Verdict: Sendable, Equatable {
        case allow
        /// Refuse with `status` and `message`; `authenticate` adds `WWW-Authenticate` (401).
        case refuse(status: Int, message: String, authenticate: Bool)
    }

    /// What the guard reads of a request.
    public struct Request: Sendable, Equatable {
        public var method: String
        public var host: String?
        public var origin: String?
        public var fetchSite: String?
        public var contentType: String?
        public var authorization: String?

        public init(
            method: String, host: String? = nil, origin: String? = nil, fetchSite: String? = nil,
            contentType: String? = nil, authorization: String? = nil
        ) {
            self.method = method
            self.host = host
            self.origin = origin
            self.fetchSite = fetchSite
            self.contentType = contentType
            self.authorization = authorization
        }
    }

    public var transport: Transport
    public var token: String?
    /// Host names, besides IP addresses and `localhost`, by which TCP requests may name the API (`admin.names`).
    public var names: [String]

    public init(transport: Transport, token: String?, names: [String] = []) {
        self.transport = transport
        self.token = token
        self.names = names.map { $0.lowercased() }
    }

    public func check(_ request: Request) -> Verdict {
        let write = !["GET", "HEAD"].contains(request.method)
        if self.transport == .tcp {
            guard let host = request.host, !host.isEmpty else {
                return .refuse(status: 403, message: "no Host header", authenticate: false)
            }
            guard self.allows(host: host) else {
                return .refuse(
                    status: 403,
                    message: "Host '\(host)' is not this admin API: use its IP address or localhost, "
                        + "or list the name in admin.names", authenticate: false)
            }
            if let token = self.token, !Self.authorized(request.authorization, token: token) {
                return .refuse(
                    status: 401,
                    message: "this admin API needs Authorization: Bearer TOKEN "
                        + "(swiftvs adm --token, or SWIFTVS_ADMIN_TOKEN)", authenticate: true)
            }
        }
        guard write else { return .allow }
        if let site = request.fetchSite?.lowercased(), site != "same-origin", site != "none" {
            return .refuse(
                status: 403, message: "cross-origin writes are refused (Sec-Fetch-Site: \(site))",
                authenticate: false)
        }
        if let origin = request.origin, !Self.sameOrigin(origin, host: request.host) {
            return .refuse(
                status: 403, message: "cross-origin writes are refused (Origin: \(origin))",
                authenticate: false)
        }
        if self.transport == .tcp && self.token == nil {
            return .refuse(
                status: 403,
                message: "writes over TCP need admin.token; swiftvs adm writes through the admin socket (admin.socket)",
                authenticate: false)
        }
        let type = request.contentType?.split(separator: ";").first?.trimmed.lowercased()
        guard type == "application/json" else {
            return .refuse(
                status: 415,
                message: "writes must be Content-Type: application/json (got \(request.contentType ?? "none"))",
                authenticate: false)
        }
        return .allow
    }

    /// An IP literal (with or without port), `localhost`, or a configured name.
    func allows(host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            // [v6] or [v6]:port: an address literal, which no DNS answer can stand for.
            return name.contains("]")
        }
        if let colon = name.lastIndex(of: ":"), name[name.index(after: colon)...].allSatisfy(\.isNumber) {
            name = name[..<colon]
        }
        if name == "localhost" || Self.isIPv4(name) { return true }
        return self.names.contains(String(name)) || self.names.contains(host.lowercased())
    }

    static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && Int(part)! <= 255
            }
    }

    /// `http://HOST` or `https://HOST` for the request's own Host.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host = host?.lowercased() else { return false }
        let origin = origin.lowercased()
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    /// Compares the bearer token in constant time.
    /// `Bearer TOKEN`, or `Basic` with the token as the password (any user name): what a browser sends for the
    /// stats page after its prompt.
    public static func authorized(_ value: String?, token: String) -> Bool {
        guard let value else { return false }
        let given: [UInt8]
        if value.lowercased().hasPrefix("bearer ") {
            given = Array(value.dropFirst(7).utf8)
        } else if value.lowercased().hasPrefix("basic "), let decoded = Self.base64(value.dropFirst(6)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        {
            given = Array(decoded[(colon + 1)...])
        } else {
            return false
        }
        let wanted = Array(token.utf8)
        var difference = UInt8(given.count == wanted.count ? 0 : 1)
        for index in wanted.indices {
            difference |= wanted[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}

extension AdminGuard {
    /// Standard base64 (RFC 4648 §4), padding optional; nil on any other byte.
    static func base64(_ text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator = 0
        var bits = 0
        for byte in text.utf8 {
            let value: Int
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = Int(byte) - 65
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = Int(byte) - 71
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte) + 4
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(accumulator >> bits & 0xFF))
            }
        }
        return out
    }
}

extension Substring {
    fileprivate var trimmed: Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
