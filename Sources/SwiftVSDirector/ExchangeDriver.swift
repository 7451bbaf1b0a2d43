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
    /// The request's place in its pool's queue while it waits (`HTTPExchange.State.queued`).
    var queueTicket: UInt64? { get set }
    /// Hands a slot the queue gives this request to the driver's own thread, where it calls `delivered`.
    func queueDelivery() -> @Sendable (RealServerSlot) -> Void
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
        if action.finished, self.exchange.timing.firstByte > 0, let server = self.slot?.server {
            // The real server answered: its response time, head in to response out, for p50/p99.
            server.counters.latency.record(nanoseconds: self.nowNanos &- self.exchange.timing.request)
        }
        if action.finished, let log = self.service.accessLog {
            if case .respond(let status, _) = action.next { self.access.status = status }
            log.record(self.accessRecord())
            self.access = AccessFacts()
        }
        if let failure = action.failure, let slot = self.slot {
            self.pool.upstreamFailed(slot, failure, detail: self.failureDetail)
        }
        if action.leaveQueue, let ticket = self.queueTicket {
            self.queueTicket = nil
            var timedOut = false
            if case .respond = action.next { timedOut = true }
            self.pool.queue.cancel(ticket, timedOut: timedOut)
        }
        if case .respond(let status, _) = action.next, status >= 500 { self.warnAnswered(status) }
        if action.release {
            self.slot?.release()
            self.slot = nil
            self.pool.slotFreed(now: self.nowNanos)
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
            "\(status == 503 && self.exchange.tried.isEmpty ? self.noSlotReason : self.failureDetail)"
        if held > 0 { metadata["also_since_last"] = "\(held)" }
        self.service.logger.warning("answered the client with \(status)", metadata: metadata)
    }

    /// The final response head goes to the client: the server's counts, and the status for the access log.
    @inline(__always)
    func responded(_ status: Int) {
        // The server alone, not a copy of the whole slot (a retain or three less per request).
        if let server = self.slot?.server { self.pool.responded(server, status: status) }
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

    /// Why a request found no slot, for the 503's warning.
    var noSlotReason: String {
        self.exchange.timing.queued != 0
            ? "waited \(self.pool.config.queue.timeout) s in the queue (queue.timeout) without a free server"
            : self.pool.queue.length.load(ordering: .relaxed) >= self.pool.config.queue.size
                && self.pool.mayQueue() ? "the queue is full (queue.size)" : "no real server available"
    }

    /// The queue handed this request a slot (on the driver's thread). A request that left the line meanwhile
    /// gives it straight back, for the next waiter.
    func delivered(_ slot: RealServerSlot, nanos: UInt64) {
        self.queueTicket = nil
        guard self.exchange.state == .queued else {
            slot.release()
            self.pool.slotFreed(now: nanos)
            return
        }
        self.slot = slot
        self.access.server = slot.server.endpointText
        self.perform(self.exchange.handle(.picked(server: slot.server.id, now: nanos)))
    }

    /// Chooses a real server for the request in flight, not one already tried for it, and tells the exchange.
    /// With every server full (or replicas on their way) the request waits in the pool's queue instead; while
    /// anyone waits, a new request joins the line rather than take a slot a waiter is owed.
    @inline(__always)
    func pick(key: UInt32, remote: SocketAddress?, now: Double, nanos: UInt64) {
        let first = self.exchange.tried.isEmpty
        if !first {
            self.service.logger.debug("retrying on another real server", metadata: ["service": "\(self.service.name)"])
        }
        let queue = self.pool.queue
        let waiting = first && queue.length.load(ordering: .relaxed) > 0
        var slot: RealServerSlot?
        if !waiting {
            slot = self.pool.schedule(
                key: key, remote: remote, now: now, excluding: self.exchange.tried, counting: false)
        }
        if slot == nil && first && self.pool.mayQueue() {
            let settings = self.pool.config.queue
            if let ticket = queue.enqueue(
                key: key, remote: remote, now: nanos, limit: settings.size, deliver: self.queueDelivery())
            {
                self.queueTicket = ticket
                let until = nanos &+ UInt64(settings.timeout * 1e9)
                self.perform(self.exchange.handle(.queued(until: until, now: nanos)))
                // A slot may have come free between the miss and joining the line: nobody waits beside one.
                self.pool.slotFreed(now: nanos)
                return
            }
        }
        if slot == nil { self.pool.stats.noServer.wrappingAdd(1, ordering: .relaxed) }
        self.slot = slot
        if let slot { self.access.server = slot.server.endpointText }
        self.perform(self.exchange.handle(.picked(server: slot?.server.id, now: nanos)))
    }
}
