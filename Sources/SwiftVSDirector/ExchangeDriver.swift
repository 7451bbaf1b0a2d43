import NIOCore
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
    /// The failure's count, the slot and the upstream connection, in that order (the count needs the server).
    @inline(__always)
    func settle(_ action: HTTPExchange.Action) {
        if let failure = action.failure, let slot = self.slot {
            self.service.upstreamFailed(slot, failure, detail: self.failureDetail)
        }
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
