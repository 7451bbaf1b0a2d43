/// What a client speaks, from its first bytes: how an `http` service's connection is set up (TLS, HTTP/2 with
/// prior knowledge, HTTP/1), and what to tell a client that speaks the wrong one.
public enum FrontProtocol: Sendable, Equatable {
    /// A TLS record (a ClientHello) on a TLS service.
    case tls
    /// HTTP/2's connection preface in clear text (prior knowledge, RFC 9113 §3.3).
    case h2c
    case http1
    /// Plain HTTP on a TLS service: answered with a 400 that says to use https (as nginx does), then closed.
    case plainOnTLS
    /// Neither TLS nor HTTP on a TLS service: closed.
    case unknown

    /// The start of RFC 9113 §3.4's preface, which no HTTP/1 request has: what follows it is HTTP/2's to judge (a
    /// bad rest of the preface gets its GOAWAY, not an HTTP/1 400).
    public static let prefaceStart = Array("PRI * HTTP/2.0\r\n\r\n".utf8)

    /// The protocol of a connection that began with `bytes`; nil while they are too few to tell.
    public static func classify(_ bytes: some Collection<UInt8>, tls: Bool, http2: Bool) -> FrontProtocol? {
        guard let first = bytes.first else { return nil }
        if tls {
            if first == 0x16 { return .tls }  // handshake record
            return (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) ? .plainOnTLS : .unknown
        }
        guard http2 else { return .http1 }
        let compared = min(bytes.count, Self.prefaceStart.count)
        guard bytes.prefix(compared).elementsEqual(Self.prefaceStart.prefix(compared)) else { return .http1 }
        return compared == Self.prefaceStart.count ? .h2c : nil
    }
}
