/// Idle keep-alive connections to real servers, by service and real server: which one a request takes, whether one
/// that finished is kept, and which have idled too long. A value with no sockets or clock of its own: the time is
/// passed in, and the drivers close the connections it hands back. Both HTTP drivers keep theirs in one.
///
/// - A request takes the most recently parked connection (LIFO): its socket is the warmest, and the least likely
///   to have been closed by the real server's own keep-alive timeout meanwhile.
/// - At most `limit` connections wait per real server; one more is refused (the driver closes it).
/// - `expire` hands back those idle longer than the timeout they were parked with (their service's), oldest first.
///
/// `@inlinable` throughout: the data plane calls it on every request from another module, and an unspecialised
/// generic call there cost the relay 16% of its requests per second.
public struct IdlePool<Service: Hashable, Connection: AnyObject> {
    @usableFromInline
    struct Entry {
        @usableFromInline let connection: Connection
        /// When it has idled too long.
        @usableFromInline let expires: UInt64

        @inlinable
        init(connection: Connection, expires: UInt64) {
            self.connection = connection
            self.expires = expires
        }
    }

    // Changed in place through nested subscripts: copying a level out and back in would make copy-on-write
    // duplicate the dictionary and the array on every request.
    @usableFromInline var idle: [Service: [Int: [Entry]]] = [:]

    @inlinable
    public init() {}

    /// The connection a request to `server` of `service` takes, if one waits.
    @inlinable
    public mutating func take(service: Service, server: Int) -> Connection? {
        self.idle[service]?[server]?.popLast()?.connection
    }

    /// Parks `connection` (its request is done) at time `now`, to be closed after `idle` more; false when `limit`
    /// already wait for that server.
    @inlinable
    public mutating func put(
        _ connection: Connection, service: Service, server: Int, now: UInt64, idle: UInt64, limit: Int
    ) -> Bool {
        guard (self.idle[service]?[server]?.count ?? 0) < limit else { return false }
        self.idle[service, default: [:]][server, default: []].append(
            Entry(connection: connection, expires: now &+ idle))
        return true
    }

    /// Takes `connection` out (it closed, or said something while parked).
    @inlinable
    public mutating func remove(_ connection: Connection, service: Service, server: Int) {
        self.idle[service]?[server]?.removeAll { $0.connection === connection }
    }

    /// Takes out and returns the connections that have idled past their timeout at `now`, oldest first for each
    /// server.
    public mutating func expire(now: UInt64) -> [Connection] {
        var out: [Connection] = []
        for service in Array(self.idle.keys) {
            for server in Array(self.idle[service]!.keys)
            where self.idle[service]![server]!.contains(where: {
                $0.expires < now
            }) {
                out.append(contentsOf: self.idle[service]![server]!.filter { $0.expires < now }.map(\.connection))
                self.idle[service]![server]!.removeAll { $0.expires < now }
            }
        }
        return out
    }

    /// Takes out and returns every connection (shutdown).
    public mutating func removeAll() -> [Connection] {
        defer { self.idle.removeAll() }
        return self.idle.values.flatMap { $0.values.flatMap { $0.map(\.connection) } }
    }

    /// How many wait for `server` of `service`.
    @inlinable
    public func count(service: Service, server: Int) -> Int {
        self.idle[service]?[server]?.count ?? 0
    }
}
