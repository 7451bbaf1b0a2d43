import Synchronization

/// One routing rule of an `http` service (`services[N].routes[M]`): what a request must look like, and where it
/// goes: a pool, a redirect, or a fixed answer; with the path rewritten and headers set or removed on the way.
public struct RouteConfig: Sendable, Equatable {
    public enum HostPattern: Sendable, Equatable, CustomStringConvertible {
        case exact(String)
        /// `*.example.com`: one or more labels before `.example.com`.
        case suffix(String)

        public init(_ text: String) {
            let lower = text.lowercased()
            self = lower.hasPrefix("*.") ? .suffix(String(lower.dropFirst(1))) : .exact(lower)
        }

        public var description: String {
            switch self {
            case .exact(let host): return host
            case .suffix(let suffix): return "*" + suffix
            }
        }
    }

    public enum PathPattern: Sendable, Equatable {
        case exact(String)
        case prefix(String)
        /// A regular expression matched anywhere in the path (anchor it with `^`).
        case regex(String)
    }

    /// Every field given must match (an empty match takes every request).
    public struct Match: Sendable, Equatable {
        public var hosts: [HostPattern] = []
        public var path: PathPattern?
        /// Upper-case methods; any of them.
        public var methods: [String] = []
        /// Header name (lower-case) and value; a nil value: the header is present.
        public var headers: [Header] = []
        /// Query parameter and value; a nil value: the parameter is present.
        public var query: [Header] = []
        /// `tcp`: the TLS ClientHello's server name (TLS passed through, not terminated).
        public var sni: [HostPattern] = []

        public init() {}

        public var isEmpty: Bool {
            self.hosts.isEmpty && self.path == nil && self.methods.isEmpty && self.headers.isEmpty
                && self.query.isEmpty && self.sni.isEmpty
        }
    }

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String?

        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    public enum Action: Sendable, Equatable {
        /// To the pool of this name (`services[N].pools`).
        case pool(String)
        /// `Location: location` (the request's path and query appended when `keepPath`).
        case redirect(location: String, status: Int, keepPath: Bool)
        /// The director answers `status` itself.
        case respond(status: Int)
    }

    public var match = Match()
    public var action: Action
    /// The path's leading `from` becomes `to` (`strip_prefix: /api` is from /api to "").
    public var rewritePrefix: (from: String, to: String)?
    public var setRequestHeaders: [Header] = []
    public var removeRequestHeaders: [String] = []
    public var setResponseHeaders: [Header] = []
    public var removeResponseHeaders: [String] = []

    public init(action: Action) {
        self.action = action
    }

    public static func == (a: RouteConfig, b: RouteConfig) -> Bool {
        a.match == b.match && a.action == b.action && a.rewritePrefix?.from == b.rewritePrefix?.from
            && a.rewritePrefix?.to == b.rewritePrefix?.to && a.setRequestHeaders == b.setRequestHeaders
            && a.removeRequestHeaders == b.removeRequestHeaders && a.setResponseHeaders == b.setResponseHeaders
            && a.removeResponseHeaders == b.removeResponseHeaders
    }

    /// The path as the real server gets it: `rewritePrefix` applied, and never empty.
    public func rewrite(_ target: String) -> String {
        guard let (from, to) = self.rewritePrefix, target.hasPrefix(from) else { return target }
        let rest = target.dropFirst(from.count)
        let path = to + rest
        if path.isEmpty || path.hasPrefix("?") { return "/" + path }
        return path.hasPrefix("/") ? path : "/" + path
    }
}

/// A service's routes, compiled: the first rule that matches a request wins.
public final class RouteTable: Sendable {
    public let routes: [RouteConfig]
    /// Compiled regular expressions by route index. Swift's `Regex` is not `Sendable` (it compiles lazily), so
    /// each is used under its own lock; uncontended, that costs a few nanoseconds beside the match.
    private let regexes: [Int: LockedRegex]

    final class LockedRegex: Sendable {
        let regex: Mutex<Regex<AnyRegexOutput>?>
        /// Compiles `pattern` inside the lock's own value, so the Regex is never shared outside it.
        init(_ pattern: String) throws {
            self.regex = Mutex(nil)
            try self.regex.withLock { $0 = try Regex(pattern) }
        }
    }

    /// Throws the index and message of the first regular expression that does not compile.
    public init(_ routes: [RouteConfig]) throws(RouteError) {
        self.routes = routes
        var regexes: [Int: LockedRegex] = [:]
        for (index, route) in routes.enumerated() {
            guard case .regex(let pattern)? = route.match.path else { continue }
            do {
                regexes[index] = try LockedRegex(pattern)
            } catch {
                throw RouteError(index: index, message: "'\(pattern)' is not a regular expression: \(error)")
            }
        }
        self.regexes = regexes
    }

    public struct RouteError: Error, Equatable {
        public var index: Int
        public var message: String
    }

    /// What the table needs of a request.
    public struct Request {
        public var host: String?
        public var target: String
        public var method: String
        public var header: (String) -> String?
        /// The TLS server name, for a `tcp` service's `sni` rules.
        public var sni: String?

        public init(
            host: String?, target: String, method: String, header: @escaping (String) -> String?, sni: String? = nil
        ) {
            self.host = host
            self.target = target
            self.method = method
            self.header = header
            self.sni = sni
        }

        /// A tcp connection: only its server name to match.
        public static func tls(serverName: String?) -> Request {
            Request(host: nil, target: "/", method: "", header: { _ in nil }, sni: serverName)
        }
    }

    /// The index of the first route `request` matches; nil when none does (the director answers 404).
    public func route(_ request: Request) -> Int? {
        let path = request.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let host = request.host.map(Self.hostName)
        for (index, route) in self.routes.enumerated() where self.matches(index, route.match, request, path, host) {
            return index
        }
        return nil
    }

    /// The Host header without its port, lower-case.
    static func hostName(_ host: String) -> String {
        (Self.withoutPort(host) ?? Substring(host)).lowercased()
    }

    /// A Host header's name without its port (`[v6]` keeps its brackets); nil for an IPv6 literal left unclosed.
    public static func withoutPort(_ host: String) -> Substring? {
        let name = Substring(host)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return nil }
            return name[...close]
        }
        guard let colon = name.lastIndex(of: ":") else { return name }
        return name[..<colon]
    }

    private func matches(
        _ index: Int, _ match: RouteConfig.Match, _ request: Request, _ path: Substring, _ host: String?
    ) -> Bool {
        if !match.methods.isEmpty && !match.methods.contains(request.method) { return false }
        if !match.hosts.isEmpty && !Self.matches(match.hosts, host) { return false }
        if !match.sni.isEmpty && !Self.matches(match.sni, request.sni?.lowercased()) { return false }
        switch match.path {
        case nil: break
        case .exact(let exact)?: if path != exact { return false }
        case .prefix(let prefix)?: if !Self.hasPathPrefix(path, prefix) { return false }
        case .regex?:
            let hit = self.regexes[index]?.regex.withLock { regex in
                regex.map { String(path).firstMatch(of: $0) != nil } ?? false
            }
            if hit != true { return false }
        }
        for header in match.headers {
            guard let value = request.header(header.name) else { return false }
            if let wanted = header.value, value != wanted { return false }
        }
        for parameter in match.query {
            guard let value = Self.queryValue(request.target, parameter.name) else { return false }
            if let wanted = parameter.value, value != wanted { return false }
        }
        return true
    }

    static func matches(_ patterns: [RouteConfig.HostPattern], _ name: String?) -> Bool {
        guard let name else { return false }
        return patterns.contains { pattern in
            switch pattern {
            case .exact(let exact): return name == exact
            case .suffix(let suffix): return name.hasSuffix(suffix) && name.count > suffix.count
            }
        }
    }

    /// `/api` is a prefix of `/api`, `/api/x` and `/api?x`, not of `/apix`; `/api/` of `/api/x` only.
    static func hasPathPrefix(_ path: Substring, _ prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        if prefix.hasSuffix("/") || path.count == prefix.count { return true }
        return path[path.index(path.startIndex, offsetBy: prefix.count)] == "/"
    }

    /// One query parameter's value (the first), or nil.
    static func queryValue(_ target: String, _ name: String) -> String? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }

    /// Rules no request can reach: after one that takes every request, or the same match as an earlier one
    /// (an earlier rule with the same match always wins).
    public static func unreachable(_ routes: [RouteConfig]) -> [(index: Int, reason: String)] {
        var found: [(Int, String)] = []
        for (index, route) in routes.enumerated() {
            if let earlier = routes[..<index].firstIndex(where: { $0.match.isEmpty }) {
                found.append((index, "can never match: routes[\(earlier)] before it takes every request"))
            } else if let earlier = routes[..<index].firstIndex(where: { $0.match == route.match }) {
                found.append((index, "can never match: routes[\(earlier)] has the same match and comes first"))
            }
        }
        return found
    }
}
