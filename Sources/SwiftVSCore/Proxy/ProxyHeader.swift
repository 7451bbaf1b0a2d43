import SwiftVSConfigKit

/// The PROXY protocol's header (HAProxy's, v1 text and v2 binary): how a proxy tells the next hop the client's
/// address and port, as LVS-NAT keeps them by not rewriting the source. The director writes it towards real
/// servers (`proxy_protocol`) and reads it from a trusted front (`accept_proxy`).
public struct ProxyHeader: Sendable, Equatable {
    /// 4 (IPv4) or 16 (IPv6) bytes each.
    public var source: [UInt8]
    public var sourcePort: Int
    public var destination: [UInt8]
    public var destinationPort: Int

    public init(source: [UInt8], sourcePort: Int, destination: [UInt8], destinationPort: Int) {
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }

    public enum Version: String, Sendable, CaseIterable {
        case v1
        case v2
    }

    /// v2's first twelve bytes.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The longest v1 line, CRLF included (the spec's 107).
    public static let maxV1 = 107

    var isIPv6: Bool { self.source.count == 16 }

    public func encode(_ version: Version) -> [UInt8] {
        switch version {
        case .v1:
            let family = self.isIPv6 ? "TCP6" : "TCP4"
            let line =
                "PROXY \(family) \(Endpoint.format(self.source)) \(Endpoint.format(self.destination)) "
                + "\(self.sourcePort) \(self.destinationPort)\r\n"
            return Array(line.utf8)
        case .v2:
            let length = self.isIPv6 ? 36 : 12
            var out = Self.signature
            out += [0x21, self.isIPv6 ? 0x21 : 0x11, UInt8(length >> 8), UInt8(length & 0xFF)]
            out += self.source + self.destination
            out += [UInt8(self.sourcePort >> 8 & 0xFF), UInt8(self.sourcePort & 0xFF)]
            out += [UInt8(self.destinationPort >> 8 & 0xFF), UInt8(self.destinationPort & 0xFF)]
            return out
        }
    }

    public enum Parsed: Sendable, Equatable {
        /// Too few bytes to tell: read more.
        case needMore
        /// Not a PROXY header, or a broken one: close.
        case invalid(String)
        /// A header of `length` bytes; `header` nil for v2 LOCAL and v1 UNKNOWN (a health check of the front's own:
        /// the connection's own addresses stand).
        case header(ProxyHeader?, length: Int)
    }

    /// Reads a v1 or v2 header at the start of `bytes`.
    public static func parse(_ bytes: [UInt8]) -> Parsed {
        guard let first = bytes.first else { return .needMore }
        if first == 0x0D {
            let compared = min(bytes.count, Self.signature.count)
            guard bytes.prefix(compared).elementsEqual(Self.signature.prefix(compared)) else {
                return .invalid("not a PROXY header")
            }
            return Self.parseV2(bytes)
        }
        let v1 = Array("PROXY ".utf8)
        let compared = min(bytes.count, v1.count)
        guard bytes.prefix(compared).elementsEqual(v1.prefix(compared)) else { return .invalid("not a PROXY header") }
        return Self.parseV1(bytes)
    }

    static func parseV1(_ bytes: [UInt8]) -> Parsed {
        guard let lf = bytes.prefix(Self.maxV1).firstIndex(of: 0x0A) else {
            return bytes.count >= Self.maxV1 ? .invalid("a v1 line longer than 107 bytes") : .needMore
        }
        guard lf > 0, bytes[lf - 1] == 0x0D else { return .invalid("a v1 line without CRLF") }
        let fields = String(decoding: bytes[0..<(lf - 1)], as: UTF8.self).split(
            separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 2 else { return .invalid("a v1 line without a protocol") }
        if fields[1] == "UNKNOWN" { return .header(nil, length: lf + 1) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6" else {
            return .invalid("a v1 line that is not PROXY TCP4|TCP6 SRC DST SPORT DPORT")
        }
        let width = fields[1] == "TCP4" ? 4 : 16
        guard let source = Endpoint.parseIP(String(fields[2])), source.count == width,
            let destination = Endpoint.parseIP(String(fields[3])), destination.count == width,
            let sourcePort = Self.port(fields[4]), let destinationPort = Self.port(fields[5])
        else { return .invalid("a v1 line with a bad address or port") }
        return .header(
            ProxyHeader(
                source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort),
            length: lf + 1)
    }

    static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            text.first != "0" || text == "0",
            let value = Int(text), value <= 65535
        else { return nil }
        return value
    }

    static func parseV2(_ bytes: [UInt8]) -> Parsed {
        guard bytes.count >= 16 else { return .needMore }
        guard bytes[12] >> 4 == 2 else { return .invalid("a v2 header of version \(bytes[12] >> 4)") }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return .needMore }
        let total = 16 + length
        switch bytes[12] & 0x0F {
        case 0: return .header(nil, length: total)  // LOCAL
        case 1: break  // PROXY
        default: return .invalid("a v2 header with command \(bytes[12] & 0x0F)")
        }
        let width: Int
        switch bytes[13] >> 4 {
        case 1: width = 4
        case 2: width = 16
        default: return .header(nil, length: total)  // AF_UNSPEC, AF_UNIX: no address to take
        }
        guard length >= 2 * width + 4 else { return .invalid("a v2 header too short for its addresses") }
        let at = 16
        let source = Array(bytes[at..<(at + width)])
        let destination = Array(bytes[(at + width)..<(at + 2 * width)])
        let ports = at + 2 * width
        let header = ProxyHeader(
            source: source, sourcePort: Int(bytes[ports]) << 8 | Int(bytes[ports + 1]), destination: destination,
            destinationPort: Int(bytes[ports + 2]) << 8 | Int(bytes[ports + 3]))
        return .header(header, length: total)
    }
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or one address): who may send a PROXY header.
public struct IPNetwork: Sendable, Equatable, CustomStringConvertible {
    let key: PersistenceKey
    public let prefix: Int
    public let text: String

    /// nil when `text` is not an address or an address/prefix.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Endpoint.parseIP(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bits).contains(value) else { return nil }
            prefix = value
        }
        self.prefix = prefix
        self.text = text
        self.key = address.withUnsafeBytes { PersistenceKey(address: $0, prefixV4: prefix, prefixV6: prefix) }
    }

    /// `address`: 4 or 16 bytes.
    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == (self.key.isIPv6 ? 16 : 4) else { return false }
        let masked = address.withUnsafeBytes {
            PersistenceKey(address: $0, prefixV4: self.prefix, prefixV6: self.prefix)
        }
        return masked == self.key
    }

    public var description: String { self.text }
}
