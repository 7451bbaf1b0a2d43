/// `slow_start`: a real server that joins the rotation (added, back up, enabled) takes a growing share of new
/// requests, from 10 % of its weight to all of it over `duration`, so that a cold process (a replica the
/// autoscaler just started, a server back from a crash) is not hit at full weight (HAProxy's `slowstart`, Envoy's
/// slow start with its 10 % floor). While it is on, every weight is scaled by 16 so that a weight of 1 can ramp
/// too (HAProxy's `BE_WEIGHT_SCALE`); the ratios between servers are those configured. Schedulers that ignore
/// weights (rr, lc, sh, dh) ignore the ramp, as in HAProxy.
public struct SlowStart: Sendable, Equatable {
    /// Seconds; 0 = off.
    public let duration: Double
    /// The weight a server starts at, as a fraction of its own.
    public static let floor = 0.1
    static let scale = 16

    public init(duration: Double) {
        self.duration = duration
    }

    /// A weight as the scheduler sees it once warm.
    public func scaled(_ weight: Int) -> Int { self.duration > 0 ? weight * Self.scale : weight }

    /// The weight `now` of a server with configured `weight` that joined at `joined` (nil: long in, or slow start
    /// off). "1 over 10 s" gives 2 at 0 s, 8 at 5 s, 16 from 10 s: 16 being the weight 1 of a warm server.
    public func weight(_ weight: Int, joined: Double?, now: Double) -> Int {
        guard self.duration > 0 else { return weight }
        guard let joined, weight > 0 else { return self.scaled(weight) }
        let fraction = Swift.min(1, Swift.max(Self.floor, (now - joined) / self.duration))
        return Swift.max(1, Int((Double(self.scaled(weight)) * fraction).rounded(.up)))
    }
}
