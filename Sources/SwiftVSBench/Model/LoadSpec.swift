import SwiftVSCore
import SwiftVSConfigKit
/// One target of a load run: an `http://` URL split into what a connection needs, with a weight in the mix.
public struct BenchTarget: Sendable, Equatable, Codable {
    /// Host as written in the URL (an IP literal, `localhost`, or a name resolved when connecting).
    public var host: String
    public var port: Int
    /// Path and query, always starting with `/`.
    public var path: String
    /// Relative share of requests in a mix of URLs; default 1.
    public var weight: Int
    /// The URL as given.
    public var url: String

    public init(host: String, port: Int, path: String, weight: Int = 1, url: String) {
        self.host = host
        self.port = port
        self.path = path
        self.weight = weight
        self.url = url
    }

    /// Parses `http://host[:port][/path][?query]`, optionally followed by `@WEIGHT` (`http://h/a@3`).
    public static func parse(_ text: String) throws(BenchSpecError) -> BenchTarget {
        var url = text
        var weight = 1
        if let at = text.lastIndex(of: "@"), let w = Int(text[text.index(after: at)...]) {
            guard (1...1_000_000).contains(w) else { throw .init("\(text): the weight after '@' must be 1...1000000") }
            weight = w
            url = String(text[..<at])
        }
        if url.hasPrefix("https://") {
            throw .init(
                "\(text): https is not supported; bench plain HTTP (put TLS termination out of the measurement)")
        }
        guard url.hasPrefix("http://") else { throw .init("\(text): expected a URL starting with http://") }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        guard !authority.isEmpty, !authority.contains("@") else { throw .init("\(text): missing or unsupported host") }
        var host = String(authority)
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .init("\(text): unclosed '[' in the host") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let tail = authority[authority.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":"), let p = Int(tail.dropFirst()) else { throw .init("\(text): bad port") }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]) else { throw .init("\(text): bad port") }
            port = p
        }
        guard (1...65535).contains(port) else { throw .init("\(text): port must be 1...65535") }
        guard !host.isEmpty else { throw .init("\(text): missing host") }
        return BenchTarget(host: host, port: port, path: path, weight: weight, url: url)
    }

    /// The value of the Host header for this target.
    public var hostHeader: String {
        let h = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == 80 ? h : "\(h):\(self.port)"
    }
}

public struct BenchSpecError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How load is offered.
public enum LoadModel: Sendable, Equatable, Codable {
    /// A fixed number of users (connections), each sending its next request when the last one is answered
    /// (JMeter threads, wrk).
    case closed
    /// Requests arrive at a fixed rate whatever the server does (httperf `--rate`, wrk2); a request that has to wait
    /// for a free connection is timed from when it should have been sent.
    case open(ratePerSecond: Double)

    public var label: String {
        switch self {
        case .closed: return "closed loop"
        case .open(let rate): return "open loop at \(BenchFormat.number(rate)) req/s"
        }
    }
}

/// Everything a load phase needs; every field has a default a wrk or httperf user would expect.
public struct LoadSpec: Sendable, Equatable, Codable {
    public var targets: [BenchTarget]
    public var model: LoadModel = .closed
    /// Closed loop: the number of users. Open loop: the most connections open at once (default 64 with keep-alive,
    /// 1000 without).
    public var connections: Int = 64
    /// Stop issuing requests after this many seconds (default 10).
    public var duration: Double? = 10
    /// Stop after this many requests (whichever of duration and count comes first).
    public var requests: Int?
    /// Reuse connections (HTTP/1.1 keep-alive); false = one request per connection, as httperf `--num-calls 1`.
    public var keepAlive: Bool = true
    public var method: String = "GET"
    /// Extra request headers, in order.
    public var headers: [(String, String)] = []
    public var body: [UInt8] = []
    /// Seconds to wait for a TCP connection (default 3).
    public var connectTimeout: Double = 3
    /// Seconds from sending a request to its last response byte (default 5).
    public var responseTimeout: Double = 5
    /// Event loops (threads) driving the load; default: cores.
    public var threads: Int = 1
    /// Width of a timeline bucket in seconds (default 1).
    public var interval: Double = 1

    public init(targets: [BenchTarget]) {
        self.targets = targets
    }

    public static func == (lhs: LoadSpec, rhs: LoadSpec) -> Bool {
        lhs.targets == rhs.targets && lhs.model == rhs.model && lhs.connections == rhs.connections
            && lhs.duration == rhs.duration && lhs.requests == rhs.requests && lhs.keepAlive == rhs.keepAlive
            && lhs.method == rhs.method && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
            && lhs.body == rhs.body && lhs.connectTimeout == rhs.connectTimeout
            && lhs.responseTimeout == rhs.responseTimeout && lhs.threads == rhs.threads && lhs.interval == rhs.interval
    }

    enum CodingKeys: String, CodingKey {
        case targets, model, connections, duration, requests, keepAlive, method, headers, bodyBytes
        case connectTimeout, responseTimeout, threads, interval
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.targets = try c.decode([BenchTarget].self, forKey: .targets)
        self.model = try c.decode(LoadModel.self, forKey: .model)
        self.connections = try c.decode(Int.self, forKey: .connections)
        self.duration = try c.decodeIfPresent(Double.self, forKey: .duration)
        self.requests = try c.decodeIfPresent(Int.self, forKey: .requests)
        self.keepAlive = try c.decode(Bool.self, forKey: .keepAlive)
        self.method = try c.decode(String.self, forKey: .method)
        self.headers = try c.decode([[String]].self, forKey: .headers).compactMap {
            $0.count == 2 ? ($0[0], $0[1]) : nil
        }
        self.body = []
        self.connectTimeout = try c.decode(Double.self, forKey: .connectTimeout)
        self.responseTimeout = try c.decode(Double.self, forKey: .responseTimeout)
        self.threads = try c.decode(Int.self, forKey: .threads)
        self.interval = try c.decode(Double.self, forKey: .interval)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.targets, forKey: .targets)
        try c.encode(self.model, forKey: .model)
        try c.encode(self.connections, forKey: .connections)
        try c.encodeIfPresent(self.duration, forKey: .duration)
        try c.encodeIfPresent(self.requests, forKey: .requests)
        try c.encode(self.keepAlive, forKey: .keepAlive)
        try c.encode(self.method, forKey: .method)
        try c.encode(self.headers.map { [$0.0, $0.1] }, forKey: .headers)
        try c.encode(self.body.count, forKey: .bodyBytes)
        try c.encode(self.connectTimeout, forKey: .connectTimeout)
        try c.encode(self.responseTimeout, forKey: .responseTimeout)
        try c.encode(self.threads, forKey: .threads)
        try c.encode(self.interval, forKey: .interval)
    }

    /// Every problem with the spec, each naming the option at fault.
    public func problems() -> [String] {
        var out: [String] = []
        if self.targets.isEmpty { out.append("at least one URL is needed") }
        if self.connections < 1 || self.connections > 100_000 { out.append("--connections must be 1...100000") }
        if case .open(let rate) = self.model, !(rate > 0 && rate <= 10_000_000) {
            out.append("--rate must be more than 0 and at most 10000000")
        }
        if self.duration == nil && self.requests == nil { out.append("give --duration or --requests (or both)") }
        if let d = self.duration, !(d > 0 && d <= 86_400) {
            out.append("--duration must be more than 0 s and at most 1 day")
        }
        if let n = self.requests, n < 1 { out.append("--requests must be at least 1") }
        if !(self.connectTimeout > 0) { out.append("--connect-timeout must be more than 0") }
        if !(self.responseTimeout > 0) { out.append("--timeout must be more than 0") }
        if self.threads < 1 || self.threads > 256 { out.append("--threads must be 1...256") }
        if !(self.interval >= 0.05 && self.interval <= 60) { out.append("--interval must be 0.05...60 s") }
        if self.method.isEmpty || !self.method.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) {
            out.append("--method must be a token such as GET, HEAD or POST")
        }
        for (name, value) in self.headers {
            if name.isEmpty || name.contains(":") || name.utf8.contains(where: { $0 <= 32 || $0 >= 127 }) {
                out.append("--header '\(name)': bad header name")
            }
            if value.contains("\r") || value.contains("\n") { out.append("--header '\(name)': value has a line break") }
        }
        return out
    }

    /// The bytes of the request for `target`, built once per target and reused for every send.
    public func requestBytes(for target: BenchTarget) -> [UInt8] {
        var text = "\(self.method) \(target.path) HTTP/1.1\r\nHost: \(target.hostHeader)\r\n"
        var hasUserAgent = false
        var hasContentType = false
        for (name, value) in self.headers {
            text += "\(name): \(value)\r\n"
            if name.lowercased() == "user-agent" { hasUserAgent = true }
            if name.lowercased() == "content-type" { hasContentType = true }
        }
        if !hasUserAgent { text += "User-Agent: swiftvs-bench\r\n" }
        if !self.body.isEmpty || ["POST", "PUT", "PATCH"].contains(self.method) {
            text += "Content-Length: \(self.body.count)\r\n"
            if !hasContentType && !self.body.isEmpty { text += "Content-Type: application/octet-stream\r\n" }
        }
        if !self.keepAlive { text += "Connection: close\r\n" }
        text += "\r\n"
        return Array(text.utf8) + self.body
    }
}

/// Picks targets in proportion to their weights, interleaved (smooth weighted round-robin, as nginx does), so a
/// mix of 3:1 sends a, a, b, a, … and not a, a, a, b in bursts. Deterministic: no randomness needed.
public struct TargetMix: Sendable {
    let weights: [Int]
    var current: [Int]
    let total: Int

    public init(weights: [Int]) {
        self.weights = weights
        self.current = Array(repeating: 0, count: weights.count)
        self.total = weights.reduce(0, +)
    }

    public mutating func next() -> Int {
        if self.weights.count == 1 { return 0 }
        var best = 0
        for i in self.weights.indices {
            self.current[i] += self.weights[i]
            if self.current[i] > self.current[best] { best = i }
        }
        self.current[best] -= self.total
        return best
    }
}

extension BenchFormat {
    /// Seconds from `2.5`, `500ms`, `10s`, `2m`, `1h` (the config's duration syntax).
    public static func parseDuration(_ text: String) -> Double? { NodeReader.parseDuration(text) }
}
