/// The server name (SNI, RFC 6066 §3) and the offered application protocols (ALPN, RFC 7301) of a TLS ClientHello,
/// read from a connection's first bytes without terminating TLS: how a `tcp` service routes TLS it passes through
/// (HAProxy's `req.ssl_sni`), and how an `http` service tells an HTTP/2 client from an HTTP/1.1 one before its
/// handshake.
public enum ClientHello {
    /// The largest ClientHello read (several records may carry it); past this, no name is looked for.
    public static let maxBytes = 16 * 1024

    /// What a whole ClientHello says.
    public struct Hello: Sendable, Equatable {
        /// nil: none, or one no host name has.
        public var serverName: String?
        /// ALPN's list, in the client's order (printable ASCII names only); empty without the extension.
        public var protocols: [String] = []

        public init(serverName: String? = nil, protocols: [String] = []) {
            self.serverName = serverName
            self.protocols = protocols
        }
    }

    public enum Read: Sendable, Equatable {
        /// Too few bytes yet.
        case needMore
        /// Not a TLS handshake (a `tcp` route falls to rules without `sni`).
        case notTLS
        case hello(Hello)
    }

    public static func read(_ bytes: [UInt8]) -> Read {
        // Records: type 22 (handshake), version 3.x, length. The handshake may span records: join their bodies.
        var handshake: [UInt8] = []
        var at = 0
        while true {
            guard bytes.count >= at + 5 else {
                return bytes.count == at && !handshake.isEmpty ? Self.parse(handshake) : .needMore
            }
            guard bytes[at] == 22, bytes[at + 1] == 3 else { return at == 0 ? .notTLS : Self.parse(handshake) }
            let length = Int(bytes[at + 3]) << 8 | Int(bytes[at + 4])
            guard bytes.count >= at + 5 + length else {
                handshake += bytes[(at + 5)...]
                return Self.complete(handshake) ? Self.parse(handshake) : .needMore
            }
            handshake += bytes[(at + 5)..<(at + 5 + length)]
            at += 5 + length
            if Self.complete(handshake) { return Self.parse(handshake) }
            if at >= Self.maxBytes { return .hello(Hello()) }
        }
    }

    /// The handshake message's whole body is there.
    static func complete(_ h: [UInt8]) -> Bool {
        h.count >= 4 && h.count >= 4 + (Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3]))
    }

    static func parse(_ h: [UInt8]) -> Read {
        guard h.count >= 4 else { return .needMore }
        guard h[0] == 1 else { return .notTLS }  // ClientHello
        let end = min(h.count, 4 + (Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])))
        var hello = Hello()
        var at = 4 + 2 + 32  // version, random
        func byte() -> Int? { at < end ? Int(h[at]) : nil }
        func u16(_ i: Int) -> Int? { i + 1 < end ? Int(h[i]) << 8 | Int(h[i + 1]) : nil }
        guard let session = byte() else { return .hello(hello) }
        at += 1 + session
        guard let suites = u16(at) else { return .hello(hello) }
        at += 2 + suites
        guard let compressions = byte() else { return .hello(hello) }
        at += 1 + compressions
        guard let extensionsLength = u16(at) else { return .hello(hello) }
        at += 2
        let extensionsEnd = min(end, at + extensionsLength)
        while at + 4 <= extensionsEnd {
            guard let type = u16(at), let length = u16(at + 2) else { return .hello(hello) }
            let body = at + 4
            let bodyEnd = min(body + length, extensionsEnd)
            if type == 0 {  // server_name: list length, then (type 0 host_name, length, name)
                hello.serverName = Self.hostName(h, from: body + 2, to: bodyEnd)
            } else if type == 16 {  // ALPN: list length, then (length, name)
                var item = body + 2
                while item < bodyEnd {
                    let nameLength = Int(h[item])
                    guard nameLength > 0, item + 1 + nameLength <= bodyEnd else { break }
                    // Protocol ids are bytes; those of every registered protocol are printable ASCII, and only
                    // those are kept (a name that is not is no protocol the director speaks).
                    let name = h[(item + 1)..<(item + 1 + nameLength)]
                    if name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                        hello.protocols.append(String(decoding: name, as: UTF8.self))
                    }
                    item += 1 + nameLength
                }
            }
            at = body + length
        }
        return .hello(hello)
    }

    /// The host_name entry of a server_name list in `h[from..<to]`; nil when empty or not a host name's bytes.
    static func hostName(_ h: [UInt8], from: Int, to: Int) -> String? {
        var item = from
        while item + 3 <= to {
            let nameLength = Int(h[item + 1]) << 8 | Int(h[item + 2])
            if h[item] == 0, item + 3 + nameLength <= to {
                let name = h[(item + 3)..<(item + 3 + nameLength)]
                // An empty name, or bytes no host name has, is no name to route by.
                guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
                return String(decoding: name, as: UTF8.self).lowercased()
            }
            item += 3 + nameLength
        }
        return nil
    }
}
