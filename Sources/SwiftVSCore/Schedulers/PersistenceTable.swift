/// A client address masked by the service's netmask: the key of a persistence template.
public struct PersistenceKey: Hashable, Sendable {
    public internal(set) var high: UInt64
    public internal(set) var low: UInt64
    public internal(set) var isIPv6: Bool

    /// A key as the persistence sync carries it.
    public init(high: UInt64, low: UInt64, isIPv6: Bool) {
        self.high = high
        self.low = low
        self.isIPv6 = isIPv6
    }

    /// `bytes` are 4 (IPv4) or 16 (IPv6) address bytes; bits past the prefix are cleared.
    public init(address bytes: UnsafeRawBufferPointer, prefixV4: Int, prefixV6: Int) {
        if bytes.count == 4 {
            let value = UInt64(bytes[0]) << 24 | UInt64(bytes[1]) << 16 | UInt64(bytes[2]) << 8 | UInt64(bytes[3])
            let mask: UInt64 = prefixV4 == 0 ? 0 : (UInt64(0xFFFF_FFFF) << UInt64(32 - prefixV4)) & 0xFFFF_FFFF
            self.high = 0
            self.low = value & mask
            self.isIPv6 = false
        } else {
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
            let prefix = max(0, min(128, prefixV6))
            let highMask: UInt64 = prefix >= 64 ? ~0 : (prefix == 0 ? 0 : ~UInt64(0) << UInt64(64 - prefix))
            let lowMask: UInt64 = prefix <= 64 ? 0 : (prefix == 128 ? ~0 : ~UInt64(0) << UInt64(128 - prefix))
            self.high = high & highMask
            self.low = low & lowMask
            self.isIPv6 = true
        }
    }

    public init(address bytes: [UInt8], prefixV4: Int = 32, prefixV6: Int = 128) {
        self = bytes.withUnsafeBytes { PersistenceKey(address: $0, prefixV4: prefixV4, prefixV6: prefixV6) }
    }

    /// The key of an affinity template (`persistence: {key: hash}`): the request field's hash (`KeyHash.string`),
    /// marked apart from every client address (whose `high` is 0 for IPv4) so that both kinds sync alike.
    public init(hashed key: UInt32) {
        self.high = Self.hashedMarker
        self.low = UInt64(key)
        self.isIPv6 = false
    }

    static let hashedMarker: UInt64 = 0x5357_5653_4B45_5900  // "SWVSKEY"

    /// Whether this is a request field's hash rather than a client network.
    public var isHashed: Bool { !self.isIPv6 && self.high == Self.hashedMarker }
}

/// IPVS persistence templates: masked client (or a request field's hash) → real server id, consulted before the
/// scheduler.
///
/// As in IPVS, a template lives while connections it controls are open and `timeout` seconds after the last one
/// closed: `lookup` and `record` with `hold` count a connection, `release` uncounts it. So a room's template lasts
/// as long as any of its WebSockets, however long that is, and a pool change in the meantime does not move it.
/// Time is given by the caller.
public struct PersistenceTable: Sendable {
    struct Template {
        var server: Int
        var expires: Double
        var holders: Int = 0
    }

    public let timeout: Double
    var templates: [PersistenceKey: Template] = [:]

    public init(timeout: Double) {
        self.timeout = timeout
    }

    /// The server id this client is held to, if its template is alive; refreshes it.
    public mutating func lookup(_ key: PersistenceKey, now: Double, hold: Bool = false) -> Int? {
        guard var template = self.templates[key] else { return nil }
        guard template.expires > now || template.holders > 0 else {
            self.templates[key] = nil
            return nil
        }
        template.expires = now + self.timeout
        if hold { template.holders += 1 }
        self.templates[key] = template
        return template.server
    }

    /// A new template, or one moved to another server (the old server's connections no longer count: they
    /// release against their own server).
    public mutating func record(_ key: PersistenceKey, server: Int, now: Double, hold: Bool = false) {
        let old = self.templates[key]
        let holders = old?.server == server ? old!.holders : 0
        self.templates[key] = Template(server: server, expires: now + self.timeout, holders: holders + (hold ? 1 : 0))
    }

    /// A connection the template controlled (to `server`) closed: the template lives `timeout` after the last one.
    public mutating func release(_ key: PersistenceKey, server: Int, now: Double) {
        guard var template = self.templates[key], template.server == server else { return }
        template.holders = max(0, template.holders - 1)
        template.expires = now + self.timeout
        self.templates[key] = template
    }

    /// Open connections a template controls (tests and the admin API).
    public func holders(_ key: PersistenceKey) -> Int { self.templates[key]?.holders ?? 0 }

    /// Drops the templates of a server that left the pool.
    public mutating func forget(server: Int) {
        self.templates = self.templates.filter { $0.value.server != server }
    }

    /// Drops expired templates; returns how many.
    @discardableResult
    public mutating func expire(now: Double) -> Int {
        let before = self.templates.count
        self.templates = self.templates.filter { $0.value.expires > now || $0.value.holders > 0 }
        return before - self.templates.count
    }

    public var count: Int { self.templates.count }

    /// The templates that open connections hold (rooms in session): re-sent to the peer director now and then, so
    /// that its copies, which only a timeout keeps, outlive any session here.
    public func held() -> [(client: PersistenceKey, server: Int)] {
        self.templates.compactMap { $0.value.holders > 0 ? ($0.key, $0.value.server) : nil }
    }

    /// The live templates at `now`: client → server id (a peer director that (re)connects is sent them all).
    public func live(now: Double) -> [(client: PersistenceKey, server: Int)] {
        self.templates.compactMap { $0.value.expires > now || $0.value.holders > 0 ? ($0.key, $0.value.server) : nil }
    }
}
