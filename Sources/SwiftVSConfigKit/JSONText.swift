/// JSON text written by hand where an encoder would cost too much (the access log's lines, the signaling hub's
/// busiest message): one escaping, for every caller.
public enum JSONText {
    /// A JSON string literal: quotes, backslashes and control characters escaped.
    public static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.append(upTo: Self.maxQuotedCount(text)) { self.quote(text, into: &$0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The most bytes `quote` writes for `text`.
    @inlinable public static func maxQuotedCount(_ text: String) -> Int { text.utf8.count * 6 + 2 }

    /// The same literal, written into `out`: byte by byte, since every byte it escapes is ASCII and every other
    /// byte (UTF-8's multi-byte sequences included) goes through as it is.
    public static func quote(_ text: String, into out: inout ByteWriter) {
        out.byte(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): out.literal("\\\"")
                case UInt8(ascii: "\\"): out.literal("\\\\")
                case UInt8(ascii: "\n"): out.literal("\\n")
                case UInt8(ascii: "\r"): out.literal("\\r")
                case UInt8(ascii: "\t"): out.literal("\\t")
                case 0..<0x20:
                    out.literal("\\u00")
                    out.byte(Self.hex[Int(byte >> 4)])
                    out.byte(Self.hex[Int(byte & 0x0F)])
                default:
                    out.byte(byte)
                }
            }
        }
        out.byte(UInt8(ascii: "\""))
    }

    static let hex = Array("0123456789abcdef".utf8)
}

/// A JSON document built in code and written as text (the kernel path's nftables commands): keys keep their order,
/// so the same value always writes the same text, which tests compare.
public indirect enum JSONValue: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    case string(String)
    case int(Int)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.text == b.text }

    /// The value as compact JSON text.
    public var text: String {
        var out = ""
        self.write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .string(let s): out += JSONText.quoted(s)
        case .int(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                out += JSONText.quoted(key) + ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }
}
