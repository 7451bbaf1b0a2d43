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
        var method: ArraySlice<UInt8>?
        var scheme: ArraySlice<UInt8>?
        var path: ArraySlice<UInt8>?
        var authority: ArraySlice<UInt8>?
        var host: ArraySlice<UInt8>?
        var contentLength: Int?
        var regular = false
        var cookies = 0
        var out: [UInt8] = []
        var rest: [UInt8] = []
        rest.reserveCapacity(fields.bytes.count + 16 * fields.fields.count)
        for index in 0..<fields.fields.count {
            let name = fields.name(index)
            let value = fields.value(index)
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
                guard value.elementsEqual("trailers".utf8) else { return .malformed }
            case .host:
                host = value
                continue
            case .contentLength:
                guard let length = Self.decimal(value), contentLength == nil || contentLength == length else {
                    return .malformed
                }
                contentLength = length
            case .cookie:
                cookies += 1
                continue
            case .other:
                break
            }
            rest.append(contentsOf: name)
            rest.append(0x3A)
            rest.append(0x20)
            rest.append(contentsOf: value)
            rest.append(0x0D)
            rest.append(0x0A)
        }
        guard let method else { return .malformed }
        if method.elementsEqual("CONNECT".utf8) { return .connect }
        guard let path, !path.isEmpty, let scheme, !scheme.isEmpty else { return .malformed }
        out.reserveCapacity(rest.count + method.count + path.count + 64)
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
        out.append(contentsOf: rest)
        if cookies > 0 {
            out.append(contentsOf: "cookie: ".utf8)
            var first = true
            for index in 0..<fields.fields.count where Self.special(fields.name(index)) == .cookie {
                if !first { out.append(contentsOf: "; ".utf8) }
                first = false
                out.append(contentsOf: fields.value(index))
            }
            out.append(0x0D)
            out.append(0x0A)
        }
        if !endStream && contentLength == nil { out.append(contentsOf: "transfer-encoding: chunked\r\n".utf8) }
        out.append(0x0D)
        out.append(0x0A)
        return .head(
            HTTP2RequestHead(
                http1: out, isHEAD: method.elementsEqual("HEAD".utf8), hasBody: !endStream,
                contentLength: contentLength))
    }

    /// 1 :method, 2 :scheme, 3 :path, 4 :authority, 0 anything else.
    static func pseudo(_ name: ArraySlice<UInt8>) -> Int {
        if name.elementsEqual(":method".utf8) { return 1 }
        if name.elementsEqual(":scheme".utf8) { return 2 }
        if name.elementsEqual(":path".utf8) { return 3 }
        if name.elementsEqual(":authority".utf8) { return 4 }
        return 0
    }

    enum Special { case connectionSpecific, te, host, contentLength, cookie, other }

    static func special(_ name: ArraySlice<UInt8>) -> Special {
        switch name.count {
        case 2: return name.elementsEqual("te".utf8) ? .te : .other
        case 4: return name.elementsEqual("host".utf8) ? .host : .other
        case 6: return name.elementsEqual("cookie".utf8) ? .cookie : .other
        case 7: return name.elementsEqual("upgrade".utf8) ? .connectionSpecific : .other
        case 10:
            return name.elementsEqual("connection".utf8) || name.elementsEqual("keep-alive".utf8)
                ? .connectionSpecific : .other
        case 14: return name.elementsEqual("content-length".utf8) ? .contentLength : .other
        case 16: return name.elementsEqual("proxy-connection".utf8) ? .connectionSpecific : .other
        case 17: return name.elementsEqual("transfer-encoding".utf8) ? .connectionSpecific : .other
        default: return .other
        }
    }

    /// §8.2.1: a token in lowercase.
    static func validName(_ name: ArraySlice<UInt8>) -> Bool {
        for byte in name {
            guard byte > 0x20 && byte < 0x7F && byte != 0x3A && !(byte >= 0x41 && byte <= 0x5A) else { return false }
        }
        return true
    }

    /// §8.2.1: no NUL, CR or LF, and no whitespace at either end.
    static func validValue(_ value: ArraySlice<UInt8>) -> Bool {
        for byte in value where byte == 0 || byte == 0x0A || byte == 0x0D { return false }
        if let first = value.first, first == 0x20 || first == 0x09 { return false }
        if let last = value.last, last == 0x20 || last == 0x09 { return false }
        return true
    }

    static func decimal(_ value: ArraySlice<UInt8>) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var n = 0
        for byte in value {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            n = n * 10 + Int(byte - 0x30)
        }
        return n
    }
}
