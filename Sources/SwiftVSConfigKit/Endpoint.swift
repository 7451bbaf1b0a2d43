#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP literal and a port, as written in config: `127.0.0.1:80`, `[::1]:80`, `0.0.0.0:8080`.
///
/// `localhost` is accepted as a convenience and means `127.0.0.1`. Host names are not resolved: a director
/// that depends on DNS at scheduling time is a director that fails when DNS does.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// The IP address in canonical text form (`127.0.0.1`, `::1`).
    public var host: String
    public var port: Int
    /// The raw address bytes: 4 for IPv4, 16 for IPv6.
    public var addressBytes: [UInt8]

    public var isIPv6: Bool { self.addressBytes.count == 16 }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        self.isIPv6 ? self.addressBytes == [UInt8](repeating: 0, count: 15) + [1] : self.addressBytes.first == 127
    }

    public var description: String { self.isIPv6 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }

    public init(host: String, port: Int) throws(EndpointError) {
        guard (0...65535).contains(port) else { throw .badPort(String(port)) }
        let literal = host == "localhost" ? "127.0.0.1" : host
        guard let bytes = Endpoint.parseIP(literal) else { throw .badHost(host) }
        self.host = Endpoint.format(bytes)
        self.port = port
        self.addressBytes = bytes
    }

    /// `127.0.0.1:port`, which needs no parsing.
    public static func loopback(port: Int) -> Endpoint {
        Endpoint(host: "127.0.0.1", port: port, addressBytes: [127, 0, 0, 1])
    }

    private init(host: String, port: Int, addressBytes: [UInt8]) {
        self.host = host
        self.port = port
        self.addressBytes = addressBytes
    }

    /// Parses `host:port` or `[v6]:port`.
    public init(parsing text: String) throws(EndpointError) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .syntax(text) }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .syntax(text) }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .syntax(text) }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { throw .syntax(text) }  // bare IPv6 needs brackets
        }
        guard !portPart.isEmpty, portPart.allSatisfy(\.isASCII), let port = Int(portPart) else {
            throw .badPort(String(portPart))
        }
        guard (0...65535).contains(port) else { throw .badPort(String(portPart)) }
        try self.init(host: String(hostPart), port: port)
    }

    public static func parseIP(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    public static func format(_ bytes: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &out, socklen_t(out.count)) != nil
        }
        guard ok else { return bytes.map(String.init).joined(separator: ".") }
        let utf8 = out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: utf8, as: UTF8.self)
    }
}

public enum EndpointError: Error, Equatable, CustomStringConvertible {
    case syntax(String)
    case badHost(String)
    case badPort(String)

    public var description: String {
        switch self {
        case .syntax(let text):
            return "'\(text)' is not host:port (put an IPv6 address in brackets: [addr]:port)"
        case .badHost(let host):
            return "'\(host)' is not an IPv4 or IPv6 address (host names are not resolved)"
        case .badPort(let port):
            return "port '\(port)' is not a number in 0...65535"
        }
    }
}
