/// What went wrong between the director and a request's real server, as either HTTP driver sees it.
public enum UpstreamFailure: Sendable, Equatable {
    /// The connect failed (refused, unreachable, or out of time when `timedOut`): nothing reached the server.
    case connect(timedOut: Bool)
    /// The connection closed or reset before the response's first byte came back.
    case lostBeforeResponse
    /// The server sent something that is not an HTTP/1 response to pass on (502 on every path).
    case badResponse
    /// The server said nothing within `timeouts.server`.
    case serverTimeout
    /// The director could not open a socket for the server (out of file descriptors or memory): nothing reached
    /// it, and it says nothing of its health. Another server would fail alike.
    case localResources
}

/// What a driver does about an `UpstreamFailure`: the one place that decides retries and the 502/504 choice for
/// both HTTP drivers.
public enum RetryDecision: Sendable, Equatable {
    /// Try another real server (one not tried yet for this request); if none is left, answer `otherwise`.
    case retry(otherwise: Int)
    /// Answer with this status (and close: the connection's state is not to be trusted after it).
    case respond(Int)
    /// Part of the response is out already: only closing the connection can tell the client.
    case close

    /// - Parameters:
    ///   - replayable: the method is idempotent (RFC 9110 §9.2.2), so a request that may have reached a server
    ///     can be sent to another.
    ///   - bodySent: bytes of the request's body went upstream (they cannot be sent again).
    ///   - tried: real servers tried so far for this request, the failing one included.
    ///   - retries: the service's `retries`.
    ///   - responseStarted: bytes of the response went to the client.
    public static func decide(
        _ failure: UpstreamFailure, replayable: Bool, bodySent: Bool, tried: Int, retries: Int, responseStarted: Bool
    ) -> RetryDecision {
        if responseStarted { return .close }
        let status: Int
        let mayRetry: Bool
        switch failure {
        case .connect(let timedOut):
            // Nothing was sent: any request may go to another server.
            status = timedOut ? 504 : 502
            mayRetry = true
        case .lostBeforeResponse, .badResponse:
            // The server may have acted on it: only a replayable request with nothing of its body sent goes again.
            status = 502
            mayRetry = replayable && !bodySent
        case .serverTimeout:
            // A slow server is not a dead one: sending the request again would double the load that made it slow.
            status = 504
            mayRetry = false
        case .localResources:
            // The director is out of something; every server would fail alike: 503, as for no server.
            status = 503
            mayRetry = false
        }
        return mayRetry && tried <= retries ? .retry(otherwise: status) : .respond(status)
    }
}
