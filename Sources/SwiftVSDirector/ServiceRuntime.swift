import Logging
import NIOCore
import SwiftVSCore
import Synchronization

/// A real server as the data plane holds it for one connection or request: the snapshot entry (with its live
/// counters) and its socket address.
struct Backend {
    let server: RealServer
    let address: SocketAddress

    @inline(__always) func release() {
        self.server.counters.close(upper: self.server.upper, lower: self.server.lower)
    }
}

/// One virtual service while it runs: its config, its real servers and the scheduling state the event loops pick
/// from. Changes (weight, membership) rebuild the snapshot under the lock; picks take the same lock for as long
/// as one scheduler step.
public final class VirtualService: Sendable {
    public let config: VirtualServiceConfig
    let logger: Logger

    struct State {
        var scheduling: SchedulingState
        var addresses: [Int: SocketAddress]
        var configs: [Int: RealServerConfig]
        var counters: [Int: ServerCounters]
        var nextID: Int
    }

    let state: Mutex<State>
    /// The service's own address folded, the `destination` key of tcp services.
    let destinationKey: UInt32
    let persistencePrefix: (v4: Int, v6: Int)?

    init(config: VirtualServiceConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.destinationKey = KeyHash.fold(config.listen.addressBytes)
        self.persistencePrefix = config.persistence.map { ($0.prefixV4, $0.prefixV6) }
        var addresses: [Int: SocketAddress] = [:]
        var configs: [Int: RealServerConfig] = [:]
        var counters: [Int: ServerCounters] = [:]
        var servers: [RealServer] = []
        for (id, server) in config.servers.enumerated() {
            addresses[id] = try SocketAddress(ipAddress: server.address.host, port: server.address.port)
            configs[id] = server
            let counter = ServerCounters()
            counters[id] = counter
            servers.append(RealServer(id: id, endpoint: server.address, weight: server.weight, upper: server.upper,
                                      lower: server.lower, counters: counter))
        }
        let scheduling = SchedulingState(
            kind: config.scheduler,
            flags: config.flags,
            servers: servers,
            persistenceTimeout: config.persistence?.timeout,
            seed: UInt64(truncatingIfNeeded: config.name.hashValue)
        )
        self.state = Mutex(State(scheduling: scheduling, addresses: addresses, configs: configs, counters: counters,
                                 nextID: config.servers.count))
    }

    /// Chooses a real server and counts the new connection or request on it.
    @inline(__always)
    func schedule(key: UInt32, client: PersistenceKey?, now: Double, excluding: [Int] = []) -> Backend? {
        self.state.withLock { state -> Backend? in
            guard let server = state.scheduling.schedule(PickInput(key: key, now: now), client: client, excluding: excluding),
                  let address = state.addresses[server.id] else { return nil }
            server.counters.open(upper: server.upper)
            return Backend(server: server, address: address)
        }
    }

    /// The persistence key of a client, if this service is persistent.
    @inline(__always)
    func persistenceKey(_ address: SocketAddress?) -> PersistenceKey? {
        guard let prefix = self.persistencePrefix, let address else { return nil }
        return address.withAddressBytes { PersistenceKey(address: $0, prefixV4: prefix.v4, prefixV6: prefix.v6) }
    }

    // MARK: runtime control (the admin API and tests)

    /// A real server's state as `ipvsadm -L` shows it.
    public struct ServerStatus: Sendable, Equatable {
        public var id: Int
        public var address: Endpoint
        public var weight: Int
        public var active: Int
        public var inactive: Int
        public var total: Int
        public var overloaded: Bool
    }

    public func servers() -> [ServerStatus] {
        self.state.withLock { state in
            state.scheduling.servers.map {
                ServerStatus(id: $0.id, address: $0.endpoint, weight: $0.weight,
                             active: $0.counters.active.load(ordering: .relaxed),
                             inactive: $0.counters.inactive.load(ordering: .relaxed),
                             total: $0.counters.total.load(ordering: .relaxed), overloaded: $0.isOverloaded)
            }
        }
    }

    public enum ControlError: Error, CustomStringConvertible, Equatable {
        case noSuchServer(String)
        case duplicate(String)
        case badWeight(Int)

        public var description: String {
            switch self {
            case .noSuchServer(let address): return "no real server \(address) in this service"
            case .duplicate(let address): return "real server \(address) is already in this service"
            case .badWeight(let weight): return "weight must be 0...65535, got \(weight)"
            }
        }
    }

    /// Sets a real server's weight; 0 quiesces it (open connections and requests finish, no new ones arrive).
    public func setWeight(_ address: Endpoint, _ weight: Int) throws(ControlError) {
        guard (0...65535).contains(weight) else { throw .badWeight(weight) }
        try self.state.withLock { state throws(ControlError) in
            guard let id = state.configs.first(where: { $0.value.address == address })?.key else {
                throw .noSuchServer(address.description)
            }
            state.configs[id]!.weight = weight
            Self.publish(&state)
        }
        self.logger.info("weight changed", metadata: ["service": "\(self.config.name)", "server": "\(address)",
                                                      "weight": "\(weight)"])
    }

    public func addServer(_ server: RealServerConfig) throws(ControlError) {
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: server.address.host, port: server.address.port)
        } catch {
            throw .noSuchServer(server.address.description)
        }
        try self.state.withLock { state throws(ControlError) in
            if state.configs.values.contains(where: { $0.address == server.address }) {
                throw .duplicate(server.address.description)
            }
            let id = state.nextID
            state.nextID += 1
            state.configs[id] = server
            state.addresses[id] = address
            state.counters[id] = ServerCounters()
            Self.publish(&state)
        }
    }

    public func removeServer(_ address: Endpoint) throws(ControlError) {
        try self.state.withLock { state throws(ControlError) in
            guard let id = state.configs.first(where: { $0.value.address == address })?.key else {
                throw .noSuchServer(address.description)
            }
            state.configs[id] = nil
            state.addresses[id] = nil
            state.counters[id] = nil
            Self.publish(&state)
        }
    }

    private static func publish(_ state: inout State) {
        let servers = state.configs.keys.sorted().map { id -> RealServer in
            let config = state.configs[id]!
            return RealServer(id: id, endpoint: config.address, weight: config.weight, upper: config.upper,
                              lower: config.lower, counters: state.counters[id]!)
        }
        state.scheduling.replaceServers(servers)
    }

    func expireTemplates(now: Double) {
        guard self.persistencePrefix != nil else { return }
        self.state.withLock { _ = $0.scheduling.expireTemplates(now: now) }
    }
}

extension SocketAddress {
    /// Calls `body` with the 4 or 16 address bytes.
    @inline(__always)
    func withAddressBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        switch self {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { body($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { body($0) }
        case .unixDomainSocket:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// The folded address (and port) as the sh/mh key of a client.
    @inline(__always)
    func sourceKey(withPort: Bool) -> UInt32 {
        let folded = self.withAddressBytes { $0.count == 4 || $0.count == 16 ? KeyHash.fold($0) : 0 }
        return KeyHash.source(folded: folded, port: self.port ?? 0, withPort: withPort)
    }
}
