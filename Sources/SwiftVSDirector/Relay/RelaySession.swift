import CSwiftVSLinux
import Foundation
import Glibc
import NIOCore
import Synchronization
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem

/// One direction of a relayed connection: bytes read from `from` wait in `buffer` until `to` takes them.
///
/// Readiness is edge-triggered: `readable`/`writable` say what the last epoll event promised and stay true until a
/// call would block. A read shorter than the buffer means the socket was drained (new data raises a new edge), unless
/// the peer already half-closed (`hangup`), when reading goes on to the EOF.
struct RelayFlow {
    var from: Int32 = -1
    var to: Int32 = -1
    var buffer: UnsafeMutableRawPointer?
    var start = 0
    var end = 0
    var readable = false
    var hangup = false
    var writable = false
    /// Bytes read from `from` (for the access log).
    var total = 0
    /// `from` sent its FIN (read returned 0).
    var eof = false
    /// We passed the FIN on: `to`'s write side is shut.
    var shut = false

    var isDone: Bool { self.eof && self.shut }

    enum Outcome { case blocked, failed }

    /// Moves bytes until a socket would block; `.failed` on a socket error (the connection is then aborted).
    @inline(__always)
    mutating func run(loop: RelayLoop, counter: borrowing Atomic<Int>, activity: inout UInt64) -> Outcome {
        while true {
            if self.end > self.start {
                guard self.writable, let buffer = self.buffer else { return .blocked }
                let sent = send(self.to, buffer + self.start, self.end - self.start, Int32(MSG_NOSIGNAL))
                if sent > 0 {
                    self.start += sent
                    if self.start < self.end {
                        self.writable = false
                        return .blocked
                    }
                    loop.recycle(buffer)
                    self.buffer = nil
                    self.start = 0
                    self.end = 0
                } else {
                    let error = errno
                    if error == EAGAIN || error == EWOULDBLOCK {
                        self.writable = false
                        return .blocked
                    }
                    if error == EINTR { continue }
                    return .failed
                }
            }
            if self.eof {
                if !self.shut {
                    _ = shutdown(self.to, Int32(SHUT_WR))
                    self.shut = true
                }
                return .blocked
            }
            guard self.readable else { return .blocked }
            let buffer = self.buffer ?? loop.takeBuffer()
            let count = recv(self.from, buffer, RelayLoop.bufferSize, 0)
            if count > 0 {
                self.buffer = buffer
                self.start = 0
                self.end = count
                counter.wrappingAdd(count, ordering: .relaxed)
                self.total &+= count
                activity = loop.now
                if count < RelayLoop.bufferSize && !self.hangup { self.readable = false }
            } else {
                loop.recycle(buffer)
                self.buffer = nil
                if count == 0 {
                    self.eof = true
                    self.readable = false
                    activity = loop.now
                    continue
                }
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK {
                    self.readable = false
                    return .blocked
                }
                if error == EINTR { continue }
                return .failed
            }
        }
    }

    mutating func releaseBuffer(to loop: RelayLoop) {
        if let buffer = self.buffer { loop.recycle(buffer) }
        self.buffer = nil
        self.start = 0
        self.end = 0
    }
}

/// A `tcp` service's connection in the relay engine: chooses a real server, connects without blocking (the next
/// real server on failure or timeout, before a client byte is read), then moves bytes both ways with backpressure
/// and half-close until both directions have ended, an error aborts it, or it idles out.
final class RelaySession: RelayConnection {
    let loop: RelayLoop
    let service: VirtualService
    let config: VirtualServiceConfig
    /// The client: the connection's peer, or what a trusted front's PROXY header said.
    private(set) var remote: SocketAddress?
    private(set) var key: UInt32
    let clientFD: Int32
    var serverFD: Int32 = -1
    private var tried: [Int] = []
    private var slot: RealServerSlot?
    private(set) var connecting = false
    private var connectDeadline: UInt64 = 0
    var lastActivity: UInt64
    private let idleNanos: UInt64
    /// Position in the loop's session list (for the sweeper).
    var sweepIndex = -1
    private(set) var closed = false
    /// Client → real server, and back.
    private var up = RelayFlow()
    private var down = RelayFlow()
    /// For the access log: when it was accepted and connected, and the last real server tried.
    private let accepted: UInt64
    private var connectedAt: UInt64 = 0
    private var lastServer: Endpoint?
    /// What is read of the client before a real server is chosen (until `awaitDeadline`): a trusted front's PROXY
    /// header (`accept_proxy`), then, with `sni` routes, the TLS ClientHello. Peeked, never consumed past it.
    enum Awaiting { case nothing, proxyHeader, clientHello }
    private var awaiting = Awaiting.nothing
    private var awaitDeadline: UInt64 = 0
    /// The pool the connection goes to: the service itself, or the one its `sni` route chose.
    private var pool: VirtualService
    private var poolName: String?
    private var route: Int?
    /// The address the client connected to, as its PROXY header said (else the socket's own).
    private var proxiedDestination: SocketAddress?
    private var clientWatched = false

    init(loop: RelayLoop, service: VirtualService, clientFD: Int32, remote: SocketAddress?) {
        self.loop = loop
        self.service = service
        self.config = service.config
        self.clientFD = clientFD
        self.remote = remote
        self.pool = service
        self.key = Self.key(service, self.config, remote)
        self.lastActivity = loop.now
        self.accepted = loop.now
        self.idleNanos = UInt64(max(0, self.config.timeouts.idle) * 1e9)
        self.up.from = clientFD
        self.down.to = clientFD
    }

    static func key(_ service: VirtualService, _ config: VirtualServiceConfig, _ remote: SocketAddress?) -> UInt32 {
        switch config.effectiveHash {
        case .destination: return service.destinationKey
        default: return remote?.sourceKey(withPort: config.flags.port) ?? 0
        }
    }

    /// A new connection: choose and connect, or first read what routing needs of the client (`Awaiting`).
    func start() {
        if !self.config.acceptProxy.isEmpty {
            guard ProxyPrelude.trusts(self.config, self.remote) else {
                ProxyPrelude.refuseUntrusted(self.service, self.remote)
                return self.close()
            }
            return self.await(.proxyHeader)
        }
        self.afterProxyHeader()
    }

    private func afterProxyHeader() {
        if self.service.routing != nil { return self.await(.clientHello) }
        self.connect()
    }

    /// Waits (under `timeouts.header_read`) for the client's first bytes.
    private func await(_ what: Awaiting) {
        self.awaiting = what
        self.awaitDeadline = self.loop.now &+ UInt64(max(0, self.config.timeouts.headerRead) * 1e9)
        if !self.clientWatched {
            guard self.loop.watch(self.clientFD, self, tag: .client) else { return self.close() }
            self.clientWatched = true
        } else {
            self.readAwaited()  // bytes after the PROXY header may be here already, their edge spent
        }
    }

    private func readAwaited() {
        switch self.awaiting {
        case .proxyHeader: self.readProxyHeader()
        case .clientHello: self.readClientHello()
        case .nothing: return
        }
    }

    /// Peeks the ClientHello for its server name and takes the route it matches (no name: the rules without sni).
    private func readClientHello() {
        var name: String?
        switch ClientHelloPeek.peek(self.clientFD) {
        case .needMore: return
        case .closed: return self.close()
        case .hello(let hello): name = hello.serverName
        case .unreadable: break
        }
        self.awaiting = .nothing
        guard let routing = self.service.routing, let index = routing.table.route(.tls(serverName: name)),
            case .pool(let poolName) = routing.table.routes[index].action, let pool = routing.pools[poolName]
        else {
            self.service.logger.debug(
                "no route for this TLS server name: closed",
                metadata: ["service": "\(self.config.name)", "sni": "\(name ?? "(none)")"])
            return self.close()
        }
        self.route = index
        self.poolName = poolName
        self.pool = pool
        self.key = Self.key(pool, pool.config, self.remote)
        self.connect()
    }

    /// Reads the PROXY header without taking a byte past it.
    private func readProxyHeader() {
        switch ProxyPrelude.read(self.clientFD) {
        case .needMore:
            return
        case .closed:
            self.close()
        case .refused(let reason):
            self.refuseClient(reason)
        case .header(let source, let destination):
            self.awaiting = .nothing
            if let source {
                self.remote = source
                self.proxiedDestination = destination
                self.key = Self.key(self.service, self.config, self.remote)
            }
            self.afterProxyHeader()
        }
    }

    private func refuseClient(_ reason: String) {
        self.service.logger.debug(
            "closed before a real server was chosen",
            metadata: ["service": "\(self.config.name)", "reason": "\(reason)"])
        self.close()
    }

    /// `proxy_protocol`: the header goes first on the new connection to the real server.
    private func sendProxyHeader(_ version: ProxyHeader.Version) -> Bool {
        guard let remote = self.remote, let local = self.proxiedDestination ?? Self.localAddress(self.clientFD),
            let port = remote.port, let localPort = local.port
        else { return false }
        let source = remote.withAddressBytes { Array($0) }
        var destination = local.withAddressBytes { Array($0) }
        // One family in one header: an IPv4 client on an IPv6 listener is told as IPv4-mapped.
        if source.count == 16 && destination.count == 4 {
            destination = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + destination
        }
        var source6 = source
        if source.count == 4 && destination.count == 16 {
            source6 = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + source
        }
        let bytes = ProxyHeader(source: source6, sourcePort: port, destination: destination, destinationPort: localPort)
            .encode(version)
        let sent = bytes.withUnsafeBytes { send(self.serverFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return sent == bytes.count
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        return ok ? RelayLoop.address(storage) : nil
    }

    // MARK: connecting

    func connect() {
        guard
            let slot = self.pool.schedule(
                key: self.key, remote: self.remote, now: self.loop.seconds, excluding: self.tried
            )
        else {
            self.service.logger.debug("no real server available", metadata: ["service": "\(self.config.name)"])
            self.close()
            return
        }
        self.tried.append(slot.server.id)
        self.slot = slot
        self.lastServer = slot.server.endpoint
        guard let fd = RelayLoop.startConnect(to: slot.address) else {
            self.connectFailed(errno)
            return
        }
        self.serverFD = fd
        self.up.to = fd
        self.down.from = fd
        self.connecting = true
        self.connectDeadline = self.loop.now &+ UInt64(max(0, self.config.timeouts.connect) * 1e9)
        // Connect completion shows as writability (or an error) on the edge-triggered registration.
        guard self.loop.watch(fd, self, tag: .server) else {
            self.connectFailed(errno)
            return
        }
    }

    private func connected() {
        let error = RelayLoop.connectError(self.serverFD)
        guard error == 0 else {
            self.connectFailed(error)
            return
        }
        self.connecting = false
        self.connectedAt = self.loop.now
        if let version = self.config.proxyProtocol, !self.sendProxyHeader(version) {
            self.service.logger.warning(
                "cannot send the PROXY header: closed", metadata: ["service": "\(self.config.name)"])
            return self.close()
        }
        if let server = self.slot?.server { self.pool.succeeded(server) }
        self.up.writable = true
        self.lastActivity = self.loop.now
        // Only now is the client read: its bytes wait in the kernel while no real server is chosen.
        if self.clientWatched {
            // Watched since its PROXY header: its edges were spent then, so read what came after the header now,
            // and take the client as writable (a send that would block says otherwise).
            self.up.readable = true
            self.down.writable = true
            self.pump()
            return
        }
        guard self.loop.watch(self.clientFD, self, tag: .client) else {
            self.close()
            return
        }
        self.clientWatched = true
    }

    private func connectFailed(_ error: Int32) {
        if self.serverFD >= 0 {
            Glibc.close(self.serverFD)
            self.serverFD = -1
        }
        self.connecting = false
        guard let slot = self.slot else { return self.close() }
        self.slot = nil
        self.pool.connectFailed(slot, error: error)
        if self.tried.count <= self.config.retries {
            self.connect()
        } else {
            self.close()
        }
    }

    // MARK: events

    @inline(__always)
    func handle(events: UInt32, tag: RelayLoop.Tag) {
        if self.closed { return }
        let hangup = events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let readable = hangup || events & EPOLLIN.rawValue != 0
        let writable = events & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        if tag == .server {
            if self.connecting {
                guard writable || hangup else { return }
                self.connected()
                // A failed connect has moved on to the next real server (or closed the connection).
                if self.connecting || self.closed { return }
            }
            if readable { self.down.readable = true }
            if hangup { self.down.hangup = true }
            if writable { self.up.writable = true }
        } else {
            if self.awaiting != .nothing {
                if readable { self.readAwaited() }
                if writable { self.down.writable = true }
                return
            }
            if readable { self.up.readable = true }
            if hangup { self.up.hangup = true }
            if writable { self.down.writable = true }
            // Bytes after the PROXY header while a real server is still being connected: they wait.
            if self.connecting { return }
        }
        self.pump()
    }

    private func pump() {
        guard let counters = self.slot?.server.counters else { return self.close() }
        if self.up.run(loop: self.loop, counter: counters.bytesIn, activity: &self.lastActivity) == .failed
            || self.down.run(loop: self.loop, counter: counters.bytesOut, activity: &self.lastActivity) == .failed
        {
            return self.close()
        }
        if self.up.isDone && self.down.isDone || self.loop.draining && self.down.isDone { self.close() }
    }

    /// The sweeper's look: connect timeout, then idle timeout.
    func checkTimeout(now: UInt64) {
        if self.awaiting != .nothing {
            if now > self.awaitDeadline {
                self.refuseClient(
                    self.awaiting == .proxyHeader
                        ? "no PROXY header within timeouts.header_read"
                        : "no TLS ClientHello within timeouts.header_read")
            }
        } else if self.connecting {
            if now > self.connectDeadline { self.connectFailed(ETIMEDOUT) }
        } else if now &- self.lastActivity > self.idleNanos {
            self.close()
        }
    }

    /// A tunnel has no requests to finish: it ends when its ends do, except that once the real server has said all it
    /// will (its FIN passed on to the client), a shutting-down director does not wait for the client's FIN too: a
    /// client that keeps its half open would hold the drain until its timeout (HAProxy's `timeout client-fin`).
    func drain() {
        if self.down.isDone { self.close() }
    }

    func close() {
        guard !self.closed else { return }
        self.closed = true
        // Closing a descriptor also takes it out of the epoll set.
        Glibc.close(self.clientFD)
        if self.serverFD >= 0 { Glibc.close(self.serverFD) }
        self.serverFD = -1
        self.up.releaseBuffer(to: self.loop)
        self.down.releaseBuffer(to: self.loop)
        if let slot = self.slot {
            self.slot = nil
            slot.release()
        }
        if let log = self.service.accessLog { log.record(self.accessRecord()) }
        self.loop.forget(self)
    }

    private func accessRecord() -> AccessRecord {
        let now = self.loop.now
        return AccessRecord(
            time: Date().timeIntervalSince1970, client: AccessRecord.address(self.remote), service: self.service.name,
            route: self.route, pool: self.poolName,
            server: self.lastServer?.description, proto: "TCP", bytesIn: self.up.total, bytesOut: self.down.total,
            retries: max(0, self.tried.count - 1),
            connect: self.connectedAt == 0 ? nil : Double(self.connectedAt &- self.accepted) / 1e9,
            total: Double(now &- self.accepted) / 1e9)
    }
}
