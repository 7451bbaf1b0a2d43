/// When an HTTP connection's timeouts fire: the one place both HTTP drivers ask, from their loop's sweep, with
/// the loop's coarse time (nanoseconds). Pure: the phase and the times come in, what expired goes out.
public struct ExchangeTimeouts: Sendable, Equatable {
    /// Where a client connection stands, with the times its timeouts count from.
    public enum Phase: Sendable, Equatable {
        /// Between requests: `headSince` once part of the next head has arrived, else idle since `lastActivity`.
        case betweenRequests(headSince: UInt64?, lastActivity: UInt64)
        /// Connecting to a real server, until `deadline`.
        case connecting(deadline: UInt64)
        /// A request is under way since `requestSince`. `bodyComplete`: the client has sent all of it.
        /// `awaitingServer`: the real server owes bytes (the request is sent, or its response has begun), silent
        /// since the later of `sentAt` and `lastActivity`.
        case exchanging(
            requestSince: UInt64, bodyComplete: Bool, awaitingServer: Bool, sentAt: UInt64, lastActivity: UInt64)
    }

    /// What expired.
    public enum Expiry: Sendable, Equatable {
        case none
        /// An idle keep-alive connection: close it.
        case idle
        /// A started head not finished in time: 408.
        case headerRead
        /// The connect took too long: the next real server (`UpstreamFailure.connect(timedOut: true)`).
        case connect
        /// A body not finished in time: 408, or a close if the response has begun.
        case body
        /// The real server said nothing in time: `UpstreamFailure.serverTimeout`.
        case server
    }

    public let headerRead: UInt64
    public let idle: UInt64
    public let server: UInt64
    public let body: UInt64

    public init(_ config: TimeoutsConfig) {
        func nanos(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }
        self.headerRead = nanos(config.headerRead)
        self.idle = nanos(config.idle)
        self.server = nanos(config.server)
        self.body = nanos(config.body)
    }

    public func check(_ phase: Phase, now: UInt64) -> Expiry {
        switch phase {
        case .betweenRequests(let headSince?, _):
            return now &- headSince > self.headerRead ? .headerRead : .none
        case .betweenRequests(nil, let lastActivity):
            return now &- lastActivity > self.idle ? .idle : .none
        case .connecting(let deadline):
            return now > deadline ? .connect : .none
        case .exchanging(let requestSince, let bodyComplete, let awaitingServer, let sentAt, let lastActivity):
            // The client's slowness is judged first: a server cannot answer a request it has not had whole.
            if !bodyComplete && now &- requestSince > self.body { return .body }
            if awaitingServer && now &- max(sentAt, lastActivity) > self.server { return .server }
            return .none
        }
    }
}
