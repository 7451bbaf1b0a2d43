/// The outcome of one health check of one real server.
public struct CheckResult: Sendable, Equatable {
    public var ok: Bool
    /// What the check saw, for logs and `swiftvs adm list`: `200 OK`, `connection refused`, `exit 1`.
    public var detail: String
    /// False when the check could not run at all for a local reason (the director out of file descriptors): it
    /// is shown, but counts neither way.
    public var conclusive: Bool

    public init(ok: Bool, detail: String, conclusive: Bool = true) {
        self.ok = ok
        self.detail = detail
        self.conclusive = conclusive
    }

    public static func passed(_ detail: String) -> CheckResult { CheckResult(ok: true, detail: detail) }
    public static func failed(_ detail: String) -> CheckResult { CheckResult(ok: false, detail: detail) }
    /// The check could not be made (a local resource ran out): the server's state and streak stay as they are.
    public static func inconclusive(_ detail: String) -> CheckResult {
        CheckResult(ok: false, detail: detail, conclusive: false)
    }
}

/// Up or down, as the health checks (or passive ejection) see a real server.
public enum HealthState: String, Sendable, Equatable, Codable {
    case up
    case down
}

/// A change of a real server's health state, with the reason to log and show.
public struct HealthTransition: Sendable, Equatable {
    public var from: HealthState
    public var to: HealthState
    public var reason: String
    public var at: Double
}

/// keepalived's and HAProxy's rise/fall hysteresis for one real server, as a value: it is fed results and the time
/// they were seen and answers with the transition, if any. No clock, sockets or timers of its own.
///
/// - An up server goes down after `fall` consecutive failed checks; a success in between starts the count again.
/// - A down server comes up after `rise` consecutive passed checks; a failure in between starts the count again.
/// - With `alpha` a server starts down and needs `rise` passed checks before it takes traffic; without it a server
///   starts up (innocent until proven guilty, as keepalived without `alpha`).
/// - Passive ejection (`eject`) takes an up server down at once; it comes back through `rise` passed checks.
public struct HealthTracker: Sendable, Equatable {
    public let rise: Int
    public let fall: Int
    public private(set) var state: HealthState
    /// Consecutive results that argue for leaving `state` (failures while up, passes while down).
    public private(set) var streak = 0
    /// Why the server is in its state: the last transition's reason, or how it started.
    public private(set) var reason: String
    /// When `state` last changed (or the tracker started).
    public private(set) var since: Double
    /// The last check's result, if any.
    public private(set) var last: CheckResult?
    /// Checks seen, and how many of them failed.
    public private(set) var checks = 0
    public private(set) var failures = 0
    /// State changes so far.
    public private(set) var transitions = 0

    public init(rise: Int, fall: Int, alpha: Bool = false, now: Double) {
        precondition(rise >= 1 && fall >= 1, "rise and fall are at least 1 (the config loader enforces it)")
        self.rise = rise
        self.fall = fall
        self.state = alpha ? .down : .up
        self.reason = alpha ? "alpha: down until \(rise) check\(rise == 1 ? "" : "s") pass" : "not checked yet"
        self.since = now
    }

    /// The same server's tracker under new `rise`/`fall` (a reload): state, reason and counts stay, the streak restarts.
    public func reconfigured(rise: Int, fall: Int) -> HealthTracker {
        var copy = HealthTracker(rise: rise, fall: fall, now: self.since)
        copy.state = self.state
        copy.reason = self.reason
        copy.last = self.last
        copy.checks = self.checks
        copy.failures = self.failures
        copy.transitions = self.transitions
        return copy
    }

    /// Records one check result; returns the transition it caused, if any.
    public mutating func record(_ result: CheckResult, now: Double) -> HealthTransition? {
        self.last = result
        guard result.conclusive else { return nil }
        self.checks += 1
        if !result.ok { self.failures += 1 }
        switch (self.state, result.ok) {
        case (.up, true), (.down, false):
            self.streak = 0
            return nil
        case (.up, false):
            self.streak += 1
            guard self.streak >= self.fall else { return nil }
            return self.change(
                to: .down, reason: "check failed \(self.streak)/\(self.fall): \(result.detail)", now: now)
        case (.down, true):
            self.streak += 1
            guard self.streak >= self.rise else { return nil }
            return self.change(to: .up, reason: "check passed \(self.streak)/\(self.rise): \(result.detail)", now: now)
        }
    }

    /// Takes an up server down at once (passive ejection); the active checks bring it back after `rise` passes.
    public mutating func eject(reason: String, now: Double) -> HealthTransition? {
        guard self.state == .up else { return nil }
        return self.change(to: .down, reason: reason, now: now)
    }

    private mutating func change(to state: HealthState, reason: String, now: Double) -> HealthTransition {
        let transition = HealthTransition(from: self.state, to: state, reason: reason, at: now)
        self.state = state
        self.streak = 0
        self.transitions += 1
        self.reason = reason
        self.since = now
        return transition
    }
}
