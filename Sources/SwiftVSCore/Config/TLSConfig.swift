/// TLS termination on an `http` service (`services[N].tls`): the certificates it serves, chosen by the client's
/// server name (SNI), and how the handshake goes.
public struct TLSConfig: Sendable, Equatable {
    /// One certificate chain and its key, PEM files. Paths are as written; the director reads them relative to the
    /// config file's directory.
    public struct Certificate: Sendable, Equatable {
        public var cert: String
        public var key: String
        /// Names this certificate serves; empty = the DNS names of its subjectAltName.
        public var names: [String] = []

        public init(cert: String, key: String, names: [String] = []) {
            self.cert = cert
            self.key = key
            self.names = names
        }
    }

    public enum Version: String, Sendable, CaseIterable {
        case v1_2 = "1.2"
        case v1_3 = "1.3"
    }

    /// Client certificates (mutual TLS).
    public enum ClientAuth: String, Sendable, CaseIterable {
        case none
        /// Asked for and verified against `client_ca`; a client without one is let in.
        case optional
        /// A client without a certificate that `client_ca` signed is refused in the handshake.
        case required
    }

    /// What a client whose server name no certificate serves gets.
    public enum UnknownName: String, Sendable, CaseIterable {
        /// The first certificate (HAProxy's and nginx's default).
        case `default`
        /// A handshake alert (unrecognized_name).
        case reject
    }

    /// In order; the first is the default.
    public var certificates: [Certificate]
    public var minVersion: Version = .v1_2
    /// TLS 1.2 cipher list in OpenSSL syntax; nil = the modern default (ECDHE with AES-GCM or ChaCha20). TLS 1.3's
    /// suites are not configurable (BoringSSL's are all AEAD).
    public var ciphers: String?
    public var clientAuth: ClientAuth = .none
    /// PEM file of the CAs that sign client certificates; required with `client_auth: required`.
    public var clientCA: String?
    public var unknownName: UnknownName = .default
    /// ALPN protocols offered, in preference order.
    public var alpn: [String] = ["h2", "http/1.1"]

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }

    /// The modern TLS 1.2 list (Mozilla's "intermediate" without the DHE suites): forward secrecy and AEAD only.
    public static let modernCiphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
}

/// An HTTP listener that sends every request to HTTPS (`services[N].https_redirect`).
public struct HTTPSRedirect: Sendable, Equatable {
    /// 301 (Moved Permanently) or 308 (Permanent Redirect, which keeps the method and body).
    public var status: Int = 308
    /// The HTTPS port in the Location; 443 is left out of it.
    public var port: Int = 443

    public init(status: Int = 308, port: Int = 443) {
        self.status = status
        self.port = port
    }

    /// `https://HOST[:PORT]TARGET` for a request's Host and target; nil when the Host is missing or not a host name.
    public func location(host: String?, target: String) -> String? {
        guard let host, !host.isEmpty, let name = RouteTable.withoutPort(host) else { return nil }
        let allowed = { (c: Character) in c.isLetter || c.isNumber || "-._[]:".contains(c) }
        guard !name.isEmpty, name.allSatisfy(allowed) else { return nil }
        // An absolute-form target (`http://host/path`) keeps its path; `*` and the like become `/`.
        var path = Substring(target)
        if !path.hasPrefix("/") {
            let rest = path.range(of: "://").map { path[$0.upperBound...] } ?? ""
            path = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        return self.port == 443 ? "https://\(name)\(path)" : "https://\(name):\(self.port)\(path)"
    }
}

/// Which certificate serves a server name: an exact name first, then a wildcard (`*.example.com` covers one label,
/// as RFC 6125 says), else none. Names compare without case and without a trailing dot.
public struct ServerNameTable: Sendable, Equatable {
    private var exact: [String: Int] = [:]
    private var wildcard: [String: Int] = [:]

    /// `names[i]` are the names certificate `i` serves; where two serve a name, the earlier one wins.
    public init(_ names: [[String]]) {
        for (index, list) in names.enumerated() {
            for name in list {
                let name = Self.normalize(name)
                if name.hasPrefix("*.") {
                    let suffix = String(name.dropFirst(2))
                    if self.wildcard[suffix] == nil { self.wildcard[suffix] = index }
                } else if self.exact[name] == nil {
                    self.exact[name] = index
                }
            }
        }
    }

    public func certificate(for serverName: String?) -> Int? {
        guard let serverName else { return nil }
        let name = Self.normalize(serverName)
        if let index = self.exact[name] { return index }
        guard let dot = name.firstIndex(of: "."), name.startIndex != dot else { return nil }
        return self.wildcard[String(name[name.index(after: dot)...])]
    }

    static func normalize(_ name: String) -> String {
        var lower = name.lowercased()
        if lower.hasSuffix(".") { lower.removeLast() }
        return lower
    }
}
