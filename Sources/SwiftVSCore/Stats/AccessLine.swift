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
    /// The line appended to `out`.
    public static func render(_ record: AccessRecord, _ format: AccessLogConfig.Format, into out: inout [UInt8]) {
        switch format {
        case .text: self.text(record, into: &out)
        case .json: out.append(contentsOf: self.json(record).utf8)
        }
    }

    /// `127.0.0.1:40000 - - [01/Dec/2026:10:33:00.123 +0000] "GET /x HTTP/1.1" 200 12 service=web
    /// server=127.0.0.1:8081 in=0 retries=0 head=0.000 connect=0.001 ttfb=0.003 total=0.004`
    public static func text(_ r: AccessRecord) -> String {
        var bytes: [UInt8] = []
        self.text(r, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The same line, appended to `out` byte by byte: no intermediate strings (String building was a fifth of the
    /// director's time with the log on).
    public static func text(_ r: AccessRecord, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 256)
        out.append(contentsOf: r.client.utf8)
        out.append(contentsOf: " - - [".utf8)
        let t = UTCTime(r.time)
        self.digits(t.day, 2, &out)
        out.append(UInt8(ascii: "/"))
        out.append(contentsOf: Self.monthBytes[t.month - 1])
        out.append(UInt8(ascii: "/"))
        self.digits(t.year, 4, &out)
        out.append(UInt8(ascii: ":"))
        self.digits(t.hour, 2, &out)
        out.append(UInt8(ascii: ":"))
        self.digits(t.minute, 2, &out)
        out.append(UInt8(ascii: ":"))
        self.digits(t.second, 2, &out)
        out.append(UInt8(ascii: "."))
        self.digits(t.millisecond, 3, &out)
        out.append(contentsOf: " +0000] \"".utf8)
        if let method = r.method {
            self.escaped(method, &out)
            out.append(UInt8(ascii: " "))
            self.escaped(r.target ?? "-", &out)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: r.proto.utf8)
        } else {
            out.append(contentsOf: (r.proto == "TCP" ? "- - TCP" : "-").utf8)
        }
        out.append(contentsOf: "\" ".utf8)
        if let status = r.status { self.digits(status, 1, &out) } else { out.append(UInt8(ascii: "-")) }
        out.append(UInt8(ascii: " "))
        self.digits(r.bytesOut, 1, &out)
        out.append(contentsOf: " service=".utf8)
        out.append(contentsOf: r.service.utf8)
        if let route = r.route {
            out.append(contentsOf: " route=".utf8)
            self.digits(route, 1, &out)
            out.append(contentsOf: " pool=".utf8)
            out.append(contentsOf: (r.pool ?? "-").utf8)
        }
        out.append(contentsOf: " server=".utf8)
        out.append(contentsOf: (r.server ?? "-").utf8)
        out.append(contentsOf: " in=".utf8)
        self.digits(r.bytesIn, 1, &out)
        out.append(contentsOf: " retries=".utf8)
        self.digits(r.retries, 1, &out)
        out.append(contentsOf: " head=".utf8)
        self.seconds(r.head, &out)
        out.append(contentsOf: " connect=".utf8)
        self.seconds(r.connect, &out)
        out.append(contentsOf: " ttfb=".utf8)
        self.seconds(r.firstByte, &out)
        out.append(contentsOf: " total=".utf8)
        self.seconds(r.total, &out)
        out.append(UInt8(ascii: "\n"))
    }

    static let monthBytes = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map {
        Array($0.utf8)
    }

    /// `value` in decimal, zero-padded to `width`.
    static func digits(_ value: Int, _ width: Int, _ out: inout [UInt8]) {
        var v = max(0, value)
        var buffer:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &buffer) { raw in
            repeat {
                raw[19 - count] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                count += 1
            } while v > 0 && count < 20
            while count < width && count < 20 {
                raw[19 - count] = UInt8(ascii: "0")
                count += 1
            }
            out.append(contentsOf: raw[(20 - count)...])
        }
    }

    /// Seconds with milliseconds (`0.004`), or `-`.
    static func seconds(_ value: Double?, _ out: inout [UInt8]) {
        guard let value else { return out.append(UInt8(ascii: "-")) }
        let millis = Int((max(0, value) * 1000).rounded())
        self.digits(millis / 1000, 1, &out)
        out.append(UInt8(ascii: "."))
        self.digits(millis % 1000, 3, &out)
    }

    static func escaped(_ text: String, _ out: inout [UInt8]) {
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x22 || byte == 0x5C || byte >= 0x7F {
                let hex = Array("0123456789ABCDEF".utf8)
                out.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)],
                ])
            } else {
                out.append(byte)
            }
        }
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

    /// A JSON string.
    static func quoted(_ text: String) -> String { JSONText.quoted(text) }

    static func clf(_ time: Double) -> String { UTCTime(time).commonLog }

    static func iso(_ time: Double) -> String { UTCTime(time).iso8601 }
}
