/// keepalived's quorum for one virtual service: the service is up while the real servers that can take traffic
/// (healthy, enabled) add up to at least `quorum` weight. `hysteresis` widens the band so that a weight hovering at
/// the quorum does not flap: down below `quorum - hysteresis`, up again at `quorum + hysteresis`.
///
/// When the quorum is lost and the service has a `sorry` server, the sorry server takes all new traffic (keepalived
/// removes the remaining live servers then too, so clients see one consistent "sorry" answer); without one, the
/// live servers keep serving and the service only reports down.
public struct Quorum: Sendable, Equatable {
    public let quorum: Int
    public let hysteresis: Int
    public private(set) var isUp: Bool

    public init(quorum: Int = 1, hysteresis: Int = 0, healthyWeight: Int) {
        self.quorum = quorum
        self.hysteresis = hysteresis
        self.isUp = healthyWeight >= quorum
    }

    /// Feeds the current healthy weight; returns the new state when it changed.
    public mutating func update(healthyWeight: Int) -> Bool? {
        if self.isUp, healthyWeight < self.quorum - self.hysteresis {
            self.isUp = false
            return false
        }
        if !self.isUp, healthyWeight >= self.quorum + self.hysteresis {
            self.isUp = true
            return true
        }
        return nil
    }
}

/// Passive ejection's guard: a server may be ejected only while the servers out of rotation (for any reason) stay
/// within `maxPercent` of the pool, so a bad deploy that makes every server answer 500 cannot empty it.
public func mayEject(outOfRotation: Int, poolSize: Int, maxPercent: Int) -> Bool {
    poolSize > 0 && (outOfRotation + 1) * 100 <= poolSize * maxPercent
}

/// One real server as the rotation sees it.
public struct RealServerStatus: Sendable, Equatable {
    public var id: Int
    public var weight: Int
    /// False while an operator has disabled it (`swiftvs adm disable`).
    public var enabled: Bool
    public var health: HealthState

    public init(id: Int, weight: Int, enabled: Bool = true, health: HealthState = .up) {
        self.id = id
        self.weight = weight
        self.enabled = enabled
        self.health = health
    }

    /// In rotation: enabled and healthy. A weight-0 server stays in (quiesced: its persistent clients keep it).
    public var inRotation: Bool { self.enabled && self.health == .up }
}

/// Which servers take new traffic, from the members' state and the quorum.
public struct Rotation: Sendable, Equatable {
    /// Ids of the real servers the scheduler chooses among (empty when the sorry server has the traffic).
    public var servers: [Int]
    /// True when the sorry server takes all new traffic.
    public var sorry: Bool
    /// Weight of the members in rotation, compared with the quorum.
    public var healthyWeight: Int

    public init(servers: [Int], sorry: Bool, healthyWeight: Int) {
        self.servers = servers
        self.sorry = sorry
        self.healthyWeight = healthyWeight
    }

    /// Updates `quorum` with the members' healthy weight and decides the rotation.
    public static func plan(
        _ members: [RealServerStatus], quorum: inout Quorum, hasSorry: Bool
    ) -> (Rotation, quorumChanged: Bool?) {
        let live = members.filter(\.inRotation)
        let weight = live.reduce(0) { $0 + $1.weight }
        let changed = quorum.update(healthyWeight: weight)
        if !quorum.isUp && hasSorry {
            return (Rotation(servers: [], sorry: true, healthyWeight: weight), changed)
        }
        return (Rotation(servers: live.map(\.id), sorry: false, healthyWeight: weight), changed)
    }
}
