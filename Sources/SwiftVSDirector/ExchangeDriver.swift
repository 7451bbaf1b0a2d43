import Logging
import NIOCore
import SwiftVSSystem
import SwiftVSCore

/// What both HTTP drivers (the relay's `HTTPRelaySession` and NIO's `HTTPProxyHandler`) do alike with
/// `HTTPExchange`'s actions: count a failure against the real server, give its slot back, park or close the
/// upstream connection, and choose the next real server. The rest of an action (bytes) is each driver's own.
protocol ExchangeDriver: AnyObject {
    var service: VirtualService { get }
    var exchange: HTTPExchange { get set }
    /// The real server whose in-flight slot the exchange holds (`HTTPExchange.holding`).
    var slot: RealServerSlot? { get set }
    /// What the last failure was, for the log and the ejection reason.
    var failureDetail: String { get }
    /// Hands the upstream connection to the pool (closing it if the pool will not have it).
    func parkUpstream()
    func closeUpstream()
    func perform(_ action: HTTPExchange.Action)
}

extension ExchangeDriver {
    /// Why a 504 came from the sweep, for the log.
    static var serverTimedOut: String { "the real server did not answer within timeouts.server" }

    /// The failure's count, the slot and the upstream connection, in that order (the count needs the server).
    @inline(__always)
    func settle(_ action: HTTPExchange.Action) {
        if let failure = action.failure, let slot = self.slot {
            self.service.upstreamFailed(slot, failure, detail: self.failureDetail)
        }
        if case .respond(let status, _) = action.next, status >= 500 { self.warnAnswered(status) }
        if action.release {
            self.slot?.release()
            self.slot = nil
        }
        switch action.upstream {
        case .keep: break
        case .park: self.parkUpstream()
        case .close: self.closeUpstream()
        }
    }

    /// The director answered a client with its own 502, 503 or 504: said at the default log level (at most every
    /// 5 s per service and status), with the last real server tried and what went wrong.
    func warnAnswered(_ status: Int) {
        let service = self.service.name
        let (allowed, held) = LogThrottle.allows("answered \(status) \(service)")
        guard allowed else { return }
        var metadata: Logger.Metadata = ["service": "\(service)", "status": "\(status)"]
        if let slot = self.slot { metadata["server"] = "\(slot.server.endpoint)" }
        metadata["reason"] =
            "\(status == 503 && self.exchange.tried.isEmpty ? "no real server available" : self.failureDetail)"
        if held > 0 { metadata["also_since_last"] = "\(held)" }
        self.service.logger.warning("answered the client with \(status)", metadata: metadata)
    }

    /// Chooses a real server for the request in flight, not one already tried for it, and tells the exchange.
    @inline(__always)
    func pick(key: UInt32, remote: SocketAddress?, now: Double, nanos: UInt64) {
        if !self.exchange.tried.isEmpty {
            self.service.logger.debug("retrying on another real server", metadata: ["service": "\(self.service.name)"])
        }
        let slot = self.service.schedule(key: key, remote: remote, now: now, excluding: self.exchange.tried)
        self.slot = slot
        self.perform(self.exchange.handle(.picked(server: slot?.server.id, now: nanos)))
    }
}
