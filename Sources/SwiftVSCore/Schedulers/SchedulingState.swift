/// Everything one virtual service needs to choose a real server: the snapshot's servers, its scheduler, the
/// persistence templates and a seeded generator. A value type with no clock of its own; the data plane keeps one
/// per service behind a lock and passes the time in.
public struct SchedulingState: Sendable {
    public private(set) var servers: [RealServer]
    public let kind: SchedulerKind
    public let flags: SchedulerFlags
    var scheduler: Scheduler
    var persistence: PersistenceTable?
    var random: SplitMix64

    public init(
        kind: SchedulerKind,
        flags: SchedulerFlags = .init(),
        servers: [RealServer],
        persistenceTimeout: Double? = nil,
        seed: UInt64 = 0x5EED
    ) {
        self.kind = kind
        self.flags = flags
        self.servers = servers
        self.scheduler = Scheduler(kind: kind, servers: servers, flags: flags)
        self.persistence = persistenceTimeout.map { PersistenceTable(timeout: $0) }
        self.random = SplitMix64(seed: seed)
    }

    /// Publishes a new server list (weights, membership, health) with a scheduler built for it.
    public mutating func replaceServers(_ servers: [RealServer]) {
        self.install(servers, Scheduler(kind: self.kind, servers: servers, flags: self.flags))
    }

    /// Publishes `servers` with `scheduler`, built for them beforehand and outside any lock the picks take
    /// (Maglev's table takes milliseconds): this is the cheap part, a swap that keeps the scheduler's state where
    /// IPVS keeps it (`Scheduler.inherit`) and drops the templates of servers that left.
    public mutating func install(_ servers: [RealServer], _ scheduler: Scheduler) {
        if self.persistence != nil {
            var remaining = Set<Int>(minimumCapacity: servers.count)
            for server in servers { remaining.insert(server.id) }
            for old in self.servers where !remaining.contains(old.id) {
                self.persistence!.forget(server: old.id)
            }
        }
        var scheduler = scheduler
        scheduler.inherit(from: self.scheduler, oldServers: self.servers, newServers: servers)
        self.servers = servers
        self.scheduler = scheduler
    }

    /// Chooses a real server: the client's persistence template first (as IPVS, even when its server has weight
    /// 0: a quiesced server keeps its persistent clients, but one out of rotation does not), then the scheduler. Servers in `excluding` (ids already
    /// tried for this request) are passed over; if the scheduler insists on one of them, wlc picks among the rest.
    ///
    /// With `hold`, the connection counts toward the template's life until `release` (IPVS's controlled
    /// connections).
    public mutating func schedule(
        _ input: PickInput,
        client: PersistenceKey? = nil,
        excluding: [Int] = [],
        hold: Bool = false
    ) -> RealServer? {
        if let client, self.persistence != nil {
            if let id = self.persistence!.lookup(client, now: input.now),
                let server = self.servers.first(where: { $0.id == id }), server.inRotation, !excluding.contains(id)
            {
                if hold { _ = self.persistence!.lookup(client, now: input.now, hold: true) }
                return server
            }
        }
        var index = self.scheduler.pick(self.servers, input, &self.random)
        if let chosen = index, excluding.contains(self.servers[chosen].id) {
            index = leastWeightedOverhead(self.servers) { excluding.contains(self.servers[$0].id) }
        } else if index == nil, !excluding.isEmpty {
            // Hashing schedulers give nil for an unavailable bucket; a retry still deserves any other server.
            index = leastWeightedOverhead(self.servers) { excluding.contains(self.servers[$0].id) }
        }
        guard let index else { return nil }
        let server = self.servers[index]
        if let client, self.persistence != nil {
            self.persistence!.record(client, server: server.id, now: input.now, hold: hold)
            self.newTemplate = (client, server.id)
        }
        return server
    }

    /// A connection scheduled with `hold` closed.
    public mutating func release(client: PersistenceKey, server: Int, now: Double) {
        self.persistence?.release(client, server: server, now: now)
    }

    /// Open connections the client's template controls.
    public func holders(_ client: PersistenceKey) -> Int { self.persistence?.holders(client) ?? 0 }

    /// The template the last `schedule` created, if it created one; cleared on reading. The director sends it to the
    /// backup director (persistence sync).
    public var newTemplate: (client: PersistenceKey, server: Int)?

    /// A template made on the peer director: this client goes to `server` here too.
    public mutating func adopt(client: PersistenceKey, server: Int, now: Double) {
        guard self.persistence != nil, self.servers.contains(where: { $0.id == server }) else { return }
        self.persistence!.record(client, server: server, now: now)
    }

    /// The live persistence templates at `now` (none without persistence).
    public func liveTemplates(now: Double) -> [(client: PersistenceKey, server: Int)] {
        self.persistence?.live(now: now) ?? []
    }

    /// The templates open connections hold.
    public func heldTemplates() -> [(client: PersistenceKey, server: Int)] { self.persistence?.held() ?? [] }

    /// Expires persistence templates; the data plane calls it now and then.
    @discardableResult
    public mutating func expireTemplates(now: Double) -> Int {
        self.persistence?.expire(now: now) ?? 0
    }
}
