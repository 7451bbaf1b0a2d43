/// An HTTP/2 request's head as the HTTP/1.1 a real server reads (RFC 9113 §8.3.1 in, RFC 9112 out):
/// `:method :path HTTP/1.1`, `Host` from `:authority`, the fields as they came (cookie crumbs joined again, §8.2.3),
/// and `Transfer-Encoding: chunked` when a body of unknown length follows.
public struct HTTP2RequestHead: Sendable, Equatable {
    /// The head, through its empty line.
    public var http1: [UInt8]
    public var isHEAD: Bool
    /// DATA follows.
    public var hasBody: Bool
    public var contentLength: Int?
    /// The body goes to the real server chunked (it has no content-length).
    public var chunked: Bool { self.hasBody && self.contentLength == nil }

    public enum Made: Sendable, Equatable {
        case head(HTTP2RequestHead)
        /// §8.3: a malformed request, a stream error PROTOCOL_ERROR.
        case malformed
        /// CONNECT: a tunnel, which this end does not open over HTTP/2.
        case connect
    }

    public static func make(_ fields: HeaderList, endStream: Bool) -> Made {
        fields.bytes.withUnsafeBytes { raw in Self.make(fields, raw, endStream: endStream) }
    }

    private static func make(_ fields: HeaderList, _ raw: UnsafeRawBufferPointer, endStream: Bool) -> Made {
        var method: UnsafeRawBufferPointer?
        var scheme: UnsafeRawBufferPointer?
        var path: UnsafeRawBufferPointer?
        var authority: UnsafeRawBufferPointer?
        var host: UnsafeRawBufferPointer?
        var contentLength: Int?
        var regular = false
        var cookies = 0
        // First the checks and the pseudo-headers; the fields are written after the request line, below.
        for field in fields.fields {
            let name = UnsafeRawBufferPointer(rebasing: raw[field.name])
            let value = UnsafeRawBufferPointer(rebasing: raw[field.value])
            guard let first = name.first, Self.validValue(value) else { return .malformed }
            if first == 0x3A {  // ':' a pseudo-header: before the rest, each once, only the request's four
                guard !regular else { return .malformed }
                switch Self.pseudo(name) {
                case 1 where method == nil: method = value
                case 2 where scheme == nil: scheme = value
                case 3 where path == nil: path = value
                case 4 where authority == nil: authority = value
                default: return .malformed
                }
                continue
            }
            regular = true
            guard Self.validName(name) else { return .malformed }
            switch Self.special(name) {
            case .connectionSpecific:
                return .malformed
            case .te:
                guard Self.equals(value, "trailers") else { return .malformed }
            case .host:
                host = value
            case .contentLength:
                guard let length = Self.decimal(value), contentLength == nil || contentLength == length else {
                    return .malformed
                }
                contentLength = length
            case .cookie:
                cookies += 1
            case .other:
                break
            }
        }
        guard let method else { return .malformed }
        if Self.equals(method, "CONNECT") { return .connect }
        guard let path, !path.isEmpty, let scheme, !scheme.isEmpty else { return .malformed }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + 4 * fields.fields.count + 64)
        out.append(contentsOf: method)
        out.append(0x20)
        out.append(contentsOf: path)
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        if let target = authority ?? host {
            out.append(contentsOf: "Host: ".utf8)
            out.append(contentsOf: target)
            out.append(0x0D)
            out.append(0x0A)
        }
        for field in fields.fields {
            let name = UnsafeRawBufferPointer(rebasing: raw[field.name])
            guard name[0] != 0x3A else { continue }
            switch Self.special(name) {
            case .host, .cookie: continue
            default: break
            }
            out.append(contentsOf: name)
            out.append(0x3A)
            out.append(0x20)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[field.value]))
            out.append(0x0D)
            out.append(0x0A)
        }
        if cookies > 0 {
            out.append(contentsOf: "cookie: ".utf8)
            var first = true
            for field in fields.fields where Self.special(UnsafeRawBufferPointer(rebasing: raw[field.name])) == .cookie
            {
                if !first { out.append(contentsOf: "; ".utf8) }
                first = false
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[field.value]))
            }
            out.append(0x0D)
            out.append(0x0A)
        }
        if !endStream && contentLength == nil { out.append(contentsOf: "transfer-encoding: chunked\r\n".utf8) }
        out.append(0x0D)
        out.append(0x0A)
        return .head(
            HTTP2RequestHead(
                http1: out, isHEAD: Self.equals(method, "HEAD"), hasBody: !endStream, contentLength: contentLength))
    }

    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount
            && (bytes.isEmpty || memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0)
    }

    /// 1 :method, 2 :scheme, 3 :path, 4 :authority, 0 anything else.
    static func pseudo(_ name: UnsafeRawBufferPointer) -> Int {
        switch name.count {
        case 5: return Self.equals(name, ":path") ? 3 : 0
        case 7: return Self.equals(name, ":method") ? 1 : Self.equals(name, ":scheme") ? 2 : 0
        case 10: return Self.equals(name, ":authority") ? 4 : 0
        default: return 0
        }
    }

    enum Special { case connectionSpecific, te, host, contentLength, cookie, other }

    /// What a lowercase field name means to the translation.
    static func special(_ name: UnsafeRawBufferPointer) -> Special {
        switch name.count {
        case 2: return Self.equals(name, "te") ? .te : .other
        case 4: return Self.equals(name, "host") ? .host : .other
        case 6: return Self.equals(name, "cookie") ? .cookie : .other
        case 7: return Self.equals(name, "upgrade") ? .connectionSpecific : .other
        case 10:
            return Self.equals(name, "connection") || Self.equals(name, "keep-alive") ? .connectionSpecific : .other
        case 14: return Self.equals(name, "content-length") ? .contentLength : .other
        case 16: return Self.equals(name, "proxy-connection") ? .connectionSpecific : .other
        case 17: return Self.equals(name, "transfer-encoding") ? .connectionSpecific : .other
        default: return .other
        }
    }

    /// §8.2.1: a token in lowercase.
    static func validName(_ name: UnsafeRawBufferPointer) -> Bool {
        for byte in name {
            guard byte > 0x20 && byte < 0x7F && byte != 0x3A && !(byte >= 0x41 && byte <= 0x5A) else { return false }
        }
        return true
    }

    /// §8.2.1: no NUL, CR or LF, and no whitespace at either end.
    static func validValue(_ value: UnsafeRawBufferPointer) -> Bool {
        for byte in value where byte == 0 || byte == 0x0A || byte == 0x0D { return false }
        if let first = value.first, first == 0x20 || first == 0x09 { return false }
        if let last = value.last, last == 0x20 || last == 0x09 { return false }
        return true
    }

    static func decimal(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var n = 0
        for byte in value {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            n = n * 10 + Int(byte - 0x30)
        }
        return n
    }
}

#if canImport(Glibc)
import Glibc
#endif
