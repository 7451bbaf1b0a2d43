import SwiftVSConfigKit

/// The access log (`access_log`): where, in which format, and how much of it.
public struct AccessLogConfig: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        /// Common Log Format's first seven fields (so tools that read nginx's and Apache's logs read these), then
        /// `key=value` fields.
        case text
        /// One JSON object per line.
        case json
    }

    /// A file (appended to, reopened on SIGUSR1), or `stdout`.
    public var path: String
    public var format: Format = .text
    /// The share of requests logged, 0 < sample ≤ 1 (every `1/sample`-th); 5xx answers and cut requests always.
    public var sample: Double = 1

    public init(path: String, format: Format = .text, sample: Double = 1) {
        self.path = path
        self.format = format
        self.sample = sample
    }
}

/// One request (or one tcp connection) as the access log tells it.
public struct AccessRecord: Sendable, Equatable {
    /// When it ended, in seconds since 1970.
    public var time: Double
    /// The client's `ip:port` (`[ip]:port` for IPv6).
    public var client: String
    public var service: String
    /// The routing rule that matched (its index in `routes`) and the pool it chose; nil without routes.
    public var route: Int?
    public var pool: String?
    /// The last real server tried; nil when none was.
    public var server: String?
    /// nil for a tcp connection, or a head that was no request.
    public var method: String?
    public var target: String?
    /// `HTTP/1.1`, `HTTP/2.0`, `TCP`.
    public var proto: String
    /// The status the client got; nil when none (cut before a response, or tcp).
    public var status: Int?
    /// Body bytes from the client, and to it (tcp: all bytes each way).
    public var bytesIn: Int
    public var bytesOut: Int
    /// Other real servers tried.
    public var retries: Int
    /// Seconds from the head's first byte to its end; to the real server's connection; to its response head
    /// (both from the head's end); and the whole (from the head's first byte). Nil: not reached.
    public var head: Double?
    public var connect: Double?
    public var firstByte: Double?
    public var total: Double

    public init(
        time: Double, client: String, service: String, route: Int? = nil, pool: String? = nil, server: String? = nil,
        method: String? = nil,
        target: String? = nil, proto: String = "HTTP/1.1", status: Int? = nil, bytesIn: Int = 0, bytesOut: Int = 0,
        retries: Int = 0, head: Double? = nil, connect: Double? = nil, firstByte: Double? = nil, total: Double = 0
    ) {
        self.time = time
        self.client = client
        self.service = service
        self.route = route
        self.pool = pool
        self.server = server
        self.method = method
        self.target = target
        self.proto = proto
        self.status = status
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.retries = retries
        self.head = head
        self.connect = connect
        self.firstByte = firstByte
        self.total = total
    }

    /// Said whatever the sampling: 5xx, a request cut without an answer, a tcp connection no real server took.
    public var alwaysLogged: Bool {
        guard let status = self.status else { return self.method != nil || self.server == nil }
        return status >= 500
    }
}

/// Renders access records, one line each (with its newline).
public enum AccessLine {
    public static func render(_ record: AccessRecord, _ format: AccessLogConfig.Format) -> String {
        switch format {
        case .text: return self.text(record)
        case .json: return self.json(record)
        }
    }

    /// `127.0.0.1:40000 - - [01/Dec/2026:10:33:00.123 +0000] "GET /x HTTP/1.1" 200 12 service=web
    /// server=127.0.0.1:8081 in=0 retries=0 head=0.000 connect=0.001 ttfb=0.003 total=0.004`
    public static func text(_ r: AccessRecord) -> String {
        var line = "\(r.client) - - [\(self.clf(r.time))] \""
        if let method = r.method {
            line += "\(self.escaped(method)) \(self.escaped(r.target ?? "-")) \(r.proto)"
        } else {
            line += r.proto == "TCP" ? "- - TCP" : "-"
        }
        line += "\" \(r.status.map(String.init) ?? "-") \(r.bytesOut) service=\(r.service)"
        if let route = r.route { line += " route=\(route) pool=\(r.pool ?? "-")" }
        line += " server=\(r.server ?? "-") in=\(r.bytesIn) retries=\(r.retries)"
        line += " head=\(self.seconds(r.head)) connect=\(self.seconds(r.connect)) ttfb=\(self.seconds(r.firstByte))"
        line += " total=\(self.seconds(r.total))\n"
        return line
    }

    public static func json(_ r: AccessRecord) -> String {
        var fields: [String] = [
            "\"time\":\"\(self.iso(r.time))\"", "\"client\":\(self.quoted(r.client))",
            "\"service\":\(self.quoted(r.service))",
        ]
        fields.append("\"route\":\(r.route.map(String.init) ?? "null")")
        fields.append("\"pool\":\(r.pool.map(self.quoted) ?? "null")")
        fields.append("\"server\":\(r.server.map(self.quoted) ?? "null")")
        fields.append("\"method\":\(r.method.map(self.quoted) ?? "null")")
        fields.append("\"path\":\(r.target.map(self.quoted) ?? "null")")
        fields.append("\"protocol\":\(self.quoted(r.proto))")
        fields.append("\"status\":\(r.status.map(String.init) ?? "null")")
        fields.append("\"bytes_in\":\(r.bytesIn)")
        fields.append("\"bytes_out\":\(r.bytesOut)")
        fields.append("\"retries\":\(r.retries)")
        fields.append("\"head_ms\":\(self.millis(r.head))")
        fields.append("\"connect_ms\":\(self.millis(r.connect))")
        fields.append("\"ttfb_ms\":\(self.millis(r.firstByte))")
        fields.append("\"total_ms\":\(self.millis(r.total))")
        return "{" + fields.joined(separator: ",") + "}\n"
    }

    /// Seconds with milliseconds (`0.004`), or `-`.
    static func seconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return self.fixed(max(0, value), places: 3)
    }

    static func millis(_ value: Double?) -> String {
        guard let value else { return "null" }
        return self.fixed(max(0, value) * 1000, places: 3)
    }

    static func fixed(_ value: Double, places: Int) -> String {
        var scale = 1
        for _ in 0..<places { scale *= 10 }
        let whole = Int((value * Double(scale)).rounded())
        let fraction = String(whole % scale)
        return "\(whole / scale).\(String(repeating: "0", count: places - fraction.count))\(fraction)"
    }

    /// Quotes and control bytes as `\xHH` (nginx's escaping), so a line stays one line with its fields apart.
    static func escaped(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 >= 0x7F }) else { return text }
        var out = ""
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x22 || byte == 0x5C || byte >= 0x7F {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// A JSON string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func clf(_ time: Double) -> String { UTCTime(time).commonLog }

    static func iso(_ time: Double) -> String { UTCTime(time).iso8601 }
}
