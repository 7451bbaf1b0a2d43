import Foundation
import Logging
import NIOCore
import SwiftVSSystem
import SwiftVSConfigKit
import SwiftVSCore

/// What both HTTP drivers (the relay's `HTTPRelaySession` and NIO's `HTTPProxyHandler`) do alike with
/// `HTTPExchange`'s actions: count a failure against the real server, give its slot back, park or close the
/// upstream connection, and choose the next real server. The rest of an action (bytes) is each driver's own.
protocol ExchangeDriver: AnyObject {
    /// The service whose listener the client came to.
    var service: VirtualService { get }
    /// The pool the request in flight goes to (its real servers, scheduler, counts): the service itself, or the
    /// pool its route chose.
    var pool: VirtualService { get }
    var exchange: HTTPExchange { get set }
    /// The real server whose in-flight slot the exchange holds (`HTTPExchange.holding`).
    var slot: RealServerSlot? { get set }
    /// What the last failure was, for the log and the ejection reason.
    var failureDetail: String { get }
    /// The request in flight, as the access log tells it (filled only while the log is on).
    var access: AccessFacts { get set }
    /// The client's address as the access log writes it (made once per connection), and the driver's clock
    /// (nanoseconds).
    var clientText: String { get }
    var nowNanos: UInt64 { get }
    /// Hands the upstream connection to the pool (closing it if the pool will not have it).
    func parkUpstream()
    func closeUpstream()
    func perform(_ action: HTTPExchange.Action)
}

extension AccessRecord {
    /// `ip:port`, `[ip]:port` for IPv6, `-` when unknown.
    static func address(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress else { return "-" }
        if case .v6 = address { return "[\(ip)]:\(address.port ?? 0)" }
        return "\(ip):\(address.port ?? 0)"
    }
}

/// What a driver saw of the request in flight, for its access-log line.
struct AccessFacts {
    var method: String?
    var target: String?
    var version = "HTTP/1.1"
    var status: Int?
    var bytesIn = 0
    var bytesOut = 0
    var server: String?
    /// The route that matched (its index) and the pool it chose.
    var route: Int?
    var pool: String?
}

extension ExchangeDriver {
    /// Why a 504 came from the sweep, for the log.
    static var serverTimedOut: String { "the real server did not answer within timeouts.server" }

    /// The failure's count, the slot and the upstream connection, in that order (the count needs the server).
    @inline(__always)
    func settle(_ action: HTTPExchange.Action) {
        if action.finished, let slot = self.slot, self.exchange.timing.firstByte > 0 {
            // The real server answered: its response time, head in to response out, for p50/p99.
            slot.server.counters.latency.record(nanoseconds: self.nowNanos &- self.exchange.timing.request)
        }
        if action.finished, let log = self.service.accessLog {
            if case .respond(let status, _) = action.next { self.access.status = status }
            log.record(self.accessRecord())
            self.access = AccessFacts()
        }
        if let failure = action.failure, let slot = self.slot {
            self.pool.upstreamFailed(slot, failure, detail: self.failureDetail)
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

    /// The final response head goes to the client: the server's counts, and the status for the access log.
    @inline(__always)
    func responded(_ status: Int) {
        if let slot = self.slot { self.pool.responded(slot, status: status) }
        self.access.status = status
    }

    /// The request that just finished, from what the driver saw and the exchange's phases.
    func accessRecord() -> AccessRecord {
        let timing = self.exchange.timing
        let now = self.nowNanos
        func seconds(_ from: UInt64, _ to: UInt64) -> Double? {
            from == 0 || to == 0 || to < from ? nil : Double(to - from) / 1e9
        }
        let access = self.access
        return AccessRecord(
            time: Date().timeIntervalSince1970, client: self.clientText,
            service: self.service.name, route: access.route, pool: access.pool,
            server: access.server, method: access.method, target: access.target, proto: access.version,
            status: access.status, bytesIn: access.bytesIn, bytesOut: access.bytesOut,
            retries: max(0, self.exchange.tried.count - 1), head: seconds(timing.headStart, timing.request),
            connect: seconds(timing.request, timing.connected), firstByte: seconds(timing.request, timing.firstByte),
            total: seconds(timing.headStart, now) ?? 0)
    }

    /// Chooses a real server for the request in flight, not one already tried for it, and tells the exchange.
    @inline(__always)
    func pick(key: UInt32, remote: SocketAddress?, now: Double, nanos: UInt64) {
        if !self.exchange.tried.isEmpty {
            self.service.logger.debug("retrying on another real server", metadata: ["service": "\(self.service.name)"])
        }
        let slot = self.pool.schedule(key: key, remote: remote, now: now, excluding: self.exchange.tried)
        self.slot = slot
        if let slot { self.access.server = slot.server.endpointText }
        self.perform(self.exchange.handle(.picked(server: slot?.server.id, now: nanos)))
    }
}
