/// Whether a client connection outlives its request, and what a drain does to it: the one place both HTTP drivers
/// ask. Pure; the per-request parts are `@inlinable`, so the data plane pays no call across modules for them.
public enum ConnectionReuse {
    /// What a draining director does to one client connection.
    public enum OnDrain: Sendable, Equatable {
        /// Nothing is under way on it: close it now.
        case closeNow
        /// A request is under way (or its head has begun): answer it with `Connection: close`, then close.
        case closeAfterResponse
    }

    /// Whether the client connection stays open after the request now starting.
    /// - Parameters:
    ///   - clientKeepsAlive: what the client's version and `Connection` say (HTTP/1.1 unless `close`; HTTP/1.0 only
    ///     with `keep-alive`).
    ///   - upgrade: the request asks for another protocol (the connection becomes a tunnel or closes).
    ///   - draining: the director is shutting down.
    @inlinable
    public static func keepsAlive(clientKeepsAlive: Bool, upgrade: Bool = false, draining: Bool) -> Bool {
        clientKeepsAlive && !upgrade && !draining
    }

    /// Whether the connection still stays open once the response's framing is known: a body that ends only when
    /// the connection closes tells the client its end by that close.
    @inlinable
    public static func keepsAlive(after keepAlive: Bool, responseEndsByClose: Bool) -> Bool {
        keepAlive && !responseEndsByClose
    }

    /// What a drain does to a connection that is `betweenRequests` with (`bytesPending`) or without bytes of a next
    /// request or of an answer still to go.
    public static func onDrain(betweenRequests: Bool, bytesPending: Bool) -> OnDrain {
        betweenRequests && !bytesPending ? .closeNow : .closeAfterResponse
    }
}
