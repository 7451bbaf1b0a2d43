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

/// Renders access records, one line each (with its newline), as bytes written in place (`ByteWriter`): building
/// the line from strings was a fifth of the director's time with the log on.
public enum AccessLine {
    /// The line appended to `out`.
    public static func render(_ record: AccessRecord, _ format: AccessLogConfig.Format, into out: inout [UInt8]) {
        switch format {
        case .text: self.text(record, into: &out)
        case .json: self.json(record, into: &out)
        }
    }

    /// `127.0.0.1:40000 - - [01/Dec/2026:10:33:00.123 +0000] "GET /x HTTP/1.1" 200 12 service=web
    /// server=127.0.0.1:8081 in=0 retries=0 head=0.000 connect=0.001 ttfb=0.003 total=0.004`
    public static func text(_ r: AccessRecord) -> String {
        var bytes: [UInt8] = []
        self.text(r, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The most bytes a line takes besides its strings: the time, the numbers (20 digits at most each) and the
    /// field names.
    static let fixedRoom = 400

    public static func text(_ r: AccessRecord, into bytes: inout [UInt8]) {
        let room =
            Self.fixedRoom + r.client.utf8.count + r.service.utf8.count + (r.pool?.utf8.count ?? 0)
            + (r.server?.utf8.count ?? 0) + r.proto.utf8.count
            + 4 * ((r.method?.utf8.count ?? 0) + (r.target?.utf8.count ?? 0))
        bytes.append(upTo: room) { out in
            out.bytes(r.client)
            out.literal(" - - [")
            let t = UTCTime(r.time)
            out.decimal(t.day, width: 2)
            out.byte(UInt8(ascii: "/"))
            out.bytes(Self.monthBytes[t.month - 1])
            out.byte(UInt8(ascii: "/"))
            out.decimal(t.year, width: 4)
            out.byte(UInt8(ascii: ":"))
            self.timeOfDay(t, &out)
            out.literal(" +0000] \"")
            if let method = r.method {
                self.escaped(method, &out)
                out.byte(UInt8(ascii: " "))
                self.escaped(r.target ?? "-", &out)
                out.byte(UInt8(ascii: " "))
                out.bytes(r.proto)
            } else if r.proto == "TCP" {
                out.literal("- - TCP")
            } else {
                out.byte(UInt8(ascii: "-"))
            }
            out.literal("\" ")
            if let status = r.status { out.decimal(status) } else { out.byte(UInt8(ascii: "-")) }
            out.byte(UInt8(ascii: " "))
            out.decimal(r.bytesOut)
            out.literal(" service=")
            out.bytes(r.service)
            if let route = r.route {
                out.literal(" route=")
                out.decimal(route)
                out.literal(" pool=")
                out.bytes(r.pool ?? "-")
            }
            out.literal(" server=")
            out.bytes(r.server ?? "-")
            out.literal(" in=")
            out.decimal(r.bytesIn)
            out.literal(" retries=")
            out.decimal(r.retries)
            out.literal(" head=")
            self.seconds(r.head, &out)
            out.literal(" connect=")
            self.seconds(r.connect, &out)
            out.literal(" ttfb=")
            self.seconds(r.firstByte, &out)
            out.literal(" total=")
            self.seconds(r.total, &out)
            out.byte(UInt8(ascii: "\n"))
        }
    }

    static let monthBytes = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map {
        Array($0.utf8)
    }

    /// `10:33:00.123`
    static func timeOfDay(_ t: UTCTime, _ out: inout ByteWriter) {
        out.decimal(t.hour, width: 2)
        out.byte(UInt8(ascii: ":"))
        out.decimal(t.minute, width: 2)
        out.byte(UInt8(ascii: ":"))
        out.decimal(t.second, width: 2)
        out.byte(UInt8(ascii: "."))
        out.decimal(t.millisecond, width: 3)
    }

    /// Seconds with milliseconds (`0.004`), or `-`.
    static func seconds(_ value: Double?, _ out: inout ByteWriter) {
        guard let value else { return out.byte(UInt8(ascii: "-")) }
        self.thousandths(Int((max(0, value) * 1000).rounded()), &out)
    }

    /// `n` thousandths as a decimal with three places (`4500` → `4.500`).
    static func thousandths(_ n: Int, _ out: inout ByteWriter) {
        out.decimal(n / 1000)
        out.byte(UInt8(ascii: "."))
        out.decimal(n % 1000, width: 3)
    }

    static let hex = Array("0123456789ABCDEF".utf8)

    /// A request's method or target in the text line: quotes, backslashes, control and non-ASCII bytes as `\xHH`
    /// (nginx's escaping), so a line stays one line and splits on its quotes.
    static func escaped(_ text: String, _ out: inout ByteWriter) {
        var text = text
        text.withUTF8 { utf8 in
            for byte in utf8 {
                if byte < 0x20 || byte == 0x22 || byte == 0x5C || byte >= 0x7F {
                    out.literal("\\x")
                    out.byte(Self.hex[Int(byte >> 4)])
                    out.byte(Self.hex[Int(byte & 0x0F)])
                } else {
                    out.byte(byte)
                }
            }
        }
    }

    public static func json(_ r: AccessRecord) -> String {
        var bytes: [UInt8] = []
        self.json(r, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One JSON object, every field, `null` for what did not happen.
    public static func json(_ r: AccessRecord, into bytes: inout [UInt8]) {
        var room = Self.fixedRoom + JSONText.maxQuotedCount(r.client) + JSONText.maxQuotedCount(r.service)
        room += JSONText.maxQuotedCount(r.pool ?? "") + JSONText.maxQuotedCount(r.server ?? "")
        room += JSONText.maxQuotedCount(r.method ?? "") + JSONText.maxQuotedCount(r.target ?? "")
        room += JSONText.maxQuotedCount(r.proto)
        bytes.append(upTo: room) { out in
            out.literal("{\"time\":\"")
            let t = UTCTime(r.time)
            out.decimal(t.year, width: 4)
            out.byte(UInt8(ascii: "-"))
            out.decimal(t.month, width: 2)
            out.byte(UInt8(ascii: "-"))
            out.decimal(t.day, width: 2)
            out.byte(UInt8(ascii: "T"))
            self.timeOfDay(t, &out)
            out.literal("Z\",\"client\":")
            JSONText.quote(r.client, into: &out)
            out.literal(",\"service\":")
            JSONText.quote(r.service, into: &out)
            out.literal(",\"route\":")
            if let route = r.route { out.decimal(route) } else { out.literal("null") }
            out.literal(",\"pool\":")
            self.quotedOrNull(r.pool, &out)
            out.literal(",\"server\":")
            self.quotedOrNull(r.server, &out)
            out.literal(",\"method\":")
            self.quotedOrNull(r.method, &out)
            out.literal(",\"path\":")
            self.quotedOrNull(r.target, &out)
            out.literal(",\"protocol\":")
            JSONText.quote(r.proto, into: &out)
            out.literal(",\"status\":")
            if let status = r.status { out.decimal(status) } else { out.literal("null") }
            out.literal(",\"bytes_in\":")
            out.decimal(r.bytesIn)
            out.literal(",\"bytes_out\":")
            out.decimal(r.bytesOut)
            out.literal(",\"retries\":")
            out.decimal(r.retries)
            out.literal(",\"head_ms\":")
            self.millis(r.head, &out)
            out.literal(",\"connect_ms\":")
            self.millis(r.connect, &out)
            out.literal(",\"ttfb_ms\":")
            self.millis(r.firstByte, &out)
            out.literal(",\"total_ms\":")
            self.millis(r.total, &out)
            out.literal("}\n")
        }
    }

    static func quotedOrNull(_ text: String?, _ out: inout ByteWriter) {
        if let text { JSONText.quote(text, into: &out) } else { out.literal("null") }
    }

    /// Milliseconds with three places (microseconds), or `null`.
    static func millis(_ value: Double?, _ out: inout ByteWriter) {
        guard let value else { return out.literal("null") }
        self.thousandths(Int((max(0, value) * 1_000_000).rounded()), &out)
    }
}
