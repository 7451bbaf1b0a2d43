import SwiftVSSystem
import CSwiftVSLinux
import Glibc
import Logging
import NIOCore
import Synchronization
import SwiftVSCore

/// A listening socket of a `tcp` service, shared by every relay loop (each registers it with `EPOLLEXCLUSIVE`, so
/// one loop wakes per incoming connection).
final class RelayListener: @unchecked Sendable {
    let fd: Int32
    let service: VirtualService
    let localAddress: SocketAddress?
    /// Loops that still have it registered; the last one to let go closes the descriptor.
    let holders: Atomic<Int>
    let isClosed = Atomic<Bool>(false)

    init(fd: Int32, service: VirtualService, localAddress: SocketAddress?, holders: Int) {
        self.fd = fd
        self.service = service
        self.localAddress = localAddress
        self.holders = Atomic(holders)
    }

    func letGo() {
        if self.holders.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            Glibc.close(self.fd)
            self.isClosed.store(true, ordering: .releasing)
        }
    }
}

/// What a relay loop's sweeper and shutdown see of a connection.
protocol RelayConnection: SweptConnection {
    func close()
}

/// One thread of the relay engine: an epoll loop over its listeners, its sessions' sockets and a wake-up eventfd.
/// Everything but the mailbox is touched only on this thread.
final class RelayLoop: @unchecked Sendable {
    /// What an epoll event is for, in the low 4 bits of its data (the rest is the object's address: Swift objects
    /// are 16-byte aligned).
    enum Tag: UInt64 {
        case client = 0
        case server = 1
        case listener = 2
        case wakeup = 3
        case httpClient = 4
        case upstream = 5
        /// An http connection before its first request: its PROXY header, its ClientHello (`HTTPPrelude`).
        case prelude = 6
        /// Either end of a `TLSBridge`.
        case bridge = 7
        /// An HTTP/2 client (`HTTP2RelaySession`).
        case h2Client = 8
        /// A stream's socket pair to the NIO proxy (`HTTP2RelayStream`).
        case h2Bridge = 9
    }

    enum Command: Sendable {
        case add(RelayListener)
        /// Run on the loop's thread (a queued request's slot arriving from another thread).
        case run(@Sendable () -> Void)
        case remove(RelayListener)
        case drain
        case stop
    }

    /// Bytes per read; buffers are pooled per loop and a connection holds one only while bytes wait to be written.
    static let bufferSize = 32 * 1024
    private static let maxPooledBuffers = 256
    private static let tick: UInt64 = 100_000_000

    let id: Int
    let logger: Logger
    private let epoll: Int32
    private let wakeFD: Int32
    private let mailbox = Mutex<[Command]>([])
    let exited = Atomic<Bool>(false)
    /// Hands a client connection to the NIO proxy, with the bytes already read from it, who the client is, and
    /// whether the relay already decrypted it (a `TLSBridge` end: plain HTTP that came over TLS).
    let handOff: HandOff
    typealias HandOff = @Sendable (Int32, VirtualService, [UInt8], SocketAddress?, _ decrypted: Bool) -> Void

    /// Coarse monotonic time (ns), read once per wake-up.
    private(set) var now: UInt64 = Monotonic.nanoseconds()
    var seconds: Double { Double(self.now) / 1e9 }
    private var listeners: [RelayListener] = []
    private let sessions = SweepList()
    /// Closed this round: kept alive until the round's remaining events (which may name them) are handled.
    private var closedThisRound: [AnyObject] = []
    /// Idle upstream connections of the HTTP path, by service and real server.
    private var pool = IdlePool<ObjectIdentifier, RelayUpstream>()
    private(set) var draining = false
    private var retiredListeners: [RelayListener] = []
    /// Listeners taken out of the epoll set after accept ran out of descriptors, and when they come back.
    private var paused: [(RelayListener, UInt64)] = []
    private var freeBuffers: [UnsafeMutableRawPointer] = []
    /// Where a response head is put together before it goes back in place.
    private let scratch = UnsafeMutableRawPointer.allocate(byteCount: RelayLoop.bufferSize, alignment: 16)
    private var running = true
    private var lastSweep: UInt64 = 0

    init(id: Int, logger: Logger, handOff: @escaping HandOff) throws {
        self.id = id
        self.logger = logger
        self.handOff = handOff
        self.epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard self.epoll >= 0 else { throw RelayError.system("epoll_create1", errno) }
        self.wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard self.wakeFD >= 0 else {
            Glibc.close(self.epoll)
            throw RelayError.system("eventfd", errno)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Tag.wakeup.rawValue
        guard epoll_ctl(self.epoll, EPOLL_CTL_ADD, self.wakeFD, &event) == 0 else {
            Glibc.close(self.wakeFD)
            Glibc.close(self.epoll)
            throw RelayError.system("epoll_ctl", errno)
        }
    }

    deinit {
        for buffer in self.freeBuffers { buffer.deallocate() }
        self.scratch.deallocate()
        Glibc.close(self.wakeFD)
        Glibc.close(self.epoll)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    // MARK: other threads

    func post(_ command: Command) {
        self.mailbox.withLock { $0.append(command) }
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
    }

    // MARK: the loop

    func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        self.lastSweep = self.now
        while self.running {
            let count = epoll_wait(self.epoll, events, Int32(capacity), 100)
            self.now = Monotonic.nanoseconds()
            if count > 0 {
                for index in 0..<Int(count) {
                    let event = events[index]
                    let data = event.data.u64
                    let tag = Tag(rawValue: data & 15)!
                    let object = UnsafeRawPointer(bitPattern: UInt(data & ~15))
                    switch tag {
                    case .client, .server:
                        Unmanaged<RelaySession>.fromOpaque(object!).takeUnretainedValue()
                            .handle(events: event.events, tag: tag)
                    case .httpClient:
                        Unmanaged<HTTPRelaySession>.fromOpaque(object!).takeUnretainedValue()
                            .clientEvent(event.events)
                    case .bridge:
                        Unmanaged<TLSBridge>.fromOpaque(object!).takeUnretainedValue().pump()
                    case .prelude:
                        Unmanaged<HTTPPrelude>.fromOpaque(object!).takeUnretainedValue().readable()
                    case .h2Client:
                        Unmanaged<HTTP2RelaySession>.fromOpaque(object!).takeUnretainedValue()
                            .clientEvent(event.events)
                    case .h2Bridge:
                        Unmanaged<HTTP2RelayStream>.fromOpaque(object!).takeUnretainedValue().pumpBridge()
                    case .upstream:
                        self.upstreamEvent(
                            Unmanaged<RelayUpstream>.fromOpaque(object!).takeUnretainedValue(),
                            event.events)
                    case .listener:
                        self.accept(from: Unmanaged<RelayListener>.fromOpaque(object!).takeUnretainedValue())
                    case .wakeup:
                        self.readMailbox()
                    }
                }
                self.flushHTTP2()
                self.closedThisRound.removeAll(keepingCapacity: true)
                self.retiredListeners.removeAll(keepingCapacity: true)
            } else if count < 0 && errno != EINTR {
                self.logger.error("relay loop: epoll_wait failed: \(String(cString: strerror(errno)))")
                break
            }
            if self.now &- self.lastSweep >= Self.tick {
                self.lastSweep = self.now
                self.sweep()
                self.flushHTTP2()
            }
        }
        self.finish()
    }

    private func readMailbox() {
        var value: UInt64 = 0
        _ = read(self.wakeFD, &value, 8)
        let commands = self.mailbox.withLock { box in
            defer { box.removeAll() }
            return box
        }
        for command in commands {
            switch command {
            case .add(let listener):
                var event = epoll_event()
                event.events = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
                event.data.u64 =
                    UInt64(UInt(bitPattern: Unmanaged.passUnretained(listener).toOpaque())) | Tag.listener.rawValue
                if epoll_ctl(self.epoll, EPOLL_CTL_ADD, listener.fd, &event) == 0 {
                    self.listeners.append(listener)
                } else {
                    self.logger.error("relay loop: cannot watch a listener: \(String(cString: strerror(errno)))")
                    listener.letGo()
                }
            case .remove(let listener):
                self.drop(listener)
            case .drain:
                self.draining = true
                self.sessions.forEach { $0.drain() }
            case .stop:
                self.running = false
            case .run(let body):
                body()
            }
        }
    }

    private func pause(_ listener: RelayListener) {
        var unused = epoll_event()
        guard epoll_ctl(self.epoll, EPOLL_CTL_DEL, listener.fd, &unused) == 0 else { return }
        self.paused.append((listener, self.now &+ 1_000_000_000))
    }

    /// Listeners paused after a failed accept that are due back.
    private func resumeListeners() {
        guard !self.paused.isEmpty else { return }
        var waiting: [(RelayListener, UInt64)] = []
        for (listener, until) in self.paused {
            guard self.listeners.contains(where: { $0 === listener }) else { continue }  // removed meanwhile
            if self.now < until {
                waiting.append((listener, until))
                continue
            }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
            event.data.u64 =
                UInt64(UInt(bitPattern: Unmanaged.passUnretained(listener).toOpaque())) | Tag.listener.rawValue
            if epoll_ctl(self.epoll, EPOLL_CTL_ADD, listener.fd, &event) != 0 {
                waiting.append((listener, self.now &+ 1_000_000_000))
            }
        }
        self.paused = waiting
    }

    private func drop(_ listener: RelayListener) {
        guard let index = self.listeners.firstIndex(where: { $0 === listener }) else { return }
        var unused = epoll_event()
        _ = epoll_ctl(self.epoll, EPOLL_CTL_DEL, listener.fd, &unused)  // fails harmlessly if it is paused
        self.paused.removeAll { $0.0 === listener }
        self.retiredListeners.append(self.listeners.remove(at: index))
        listener.letGo()
    }

    private func accept(from listener: RelayListener) {
        // A bounded batch: the listener is level-triggered, so what is left wakes the loop again.
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept4(listener.fd, $0, &length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
                }
            }
            if fd < 0 {
                let error = errno
                if error == EINTR || error == ECONNABORTED { continue }
                if error != EAGAIN && error != EWOULDBLOCK {
                    // Out of descriptors or memory: the listener stays readable, so stop watching it for a second
                    // instead of spinning on it (HAProxy pauses its listeners the same way).
                    if OpenFiles.isLocalExhaustion(error) {
                        LocalExhaustion.warn(
                            self.logger, "cannot accept a client; pausing this listener for 1 s", code: error,
                            service: listener.service.name)
                    } else {
                        self.logger.warning(
                            "accept failed; pausing this listener for 1 s",
                            metadata: [
                                "service": "\(listener.service.name)", "error": "\(String(cString: strerror(error)))",
                            ])
                    }
                    self.pause(listener)
                }
                return
            }
            let service = listener.service
            let config = service.config
            Self.setNoDelay(fd)
            service.stats.connections.wrappingAdd(1, ordering: .relaxed)
            switch config.proto {
            case .tcp:
                let session = RelaySession(loop: self, service: service, clientFD: fd, remote: Self.address(storage))
                self.track(session)
                session.start()
            case .http:
                let remote = Self.address(storage)
                if config.acceptProxy.isEmpty {
                    self.serveHTTP(fd, service, remote: remote)
                } else if !ProxyPrelude.trusts(config, remote) {
                    ProxyPrelude.refuseUntrusted(service, remote)
                    Glibc.close(fd)
                } else {
                    self.await(.proxyHeader, fd, service, remote: remote)
                }
            case .udp:
                // The kernel forwards udp services; a reload that turned a listener's service to udp closes it.
                Glibc.close(fd)
            }
        }
    }

    /// An http client, from its first request on: the relay's HTTP session serves it, or the NIO proxy does (routes,
    /// a hash on a request field, client certificates). On a `tls` service the ClientHello decides first. `remote`
    /// is the client: the socket's peer, or who its PROXY header named.
    func serveHTTP(_ fd: Int32, _ service: VirtualService, remote: SocketAddress?) {
        let config = service.config
        guard HTTPRelaySession.serves(config), config.tls == nil || service.tlsFront?.relay != nil else {
            return self.handOff(fd, service, [], remote, false)
        }
        if config.tls != nil { return self.await(.clientHello, fd, service, remote: remote) }
        self.startSession(HTTPRelaySession(loop: self, service: service, config: config, clientFD: fd, remote: remote))
    }

    /// An HTTP/1.1 client of a `tls` service, whose handshake is the relay's.
    func serveTLS(_ fd: Int32, _ service: VirtualService, remote: SocketAddress?, context: RelayTLSContext) {
        guard let tls = context.connection(fd: fd, loop: self) else {
            Glibc.close(fd)
            return
        }
        self.startSession(
            HTTPRelaySession(
                loop: self, service: service, config: service.config, clientFD: fd, remote: remote, tls: tls))
    }

    private func startSession(_ session: HTTPRelaySession) {
        guard self.watch(session.clientFD, session, tag: .httpClient) else {
            session.close()
            return
        }
        self.track(session)
    }

    /// Reads what decides who serves the connection (`HTTPPrelude`).
    private func await(_ what: HTTPPrelude.Awaiting, _ fd: Int32, _ service: VirtualService, remote: SocketAddress?) {
        let prelude = HTTPPrelude(loop: self, service: service, fd: fd, remote: remote, awaiting: what)
        guard self.watch(fd, prelude, tag: .prelude) else {
            Glibc.close(fd)
            return
        }
        self.track(prelude)
    }

    func track(_ connection: RelayConnection) {
        self.sessions.add(connection)
    }

    static func address(_ storage: sockaddr_storage) -> SocketAddress? {
        let family = Int32(storage.ss_family)
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer -> SocketAddress? in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    SocketAddress($0.pointee, host: "")
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    SocketAddress($0.pointee, host: "")
                }
            default:
                return nil
            }
        }
    }

    // MARK: sessions

    /// Registers a socket, edge-triggered for reading, writing and the peer's half-close.
    func watch(_ fd: Int32, _ object: AnyObject, tag: Tag) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(object).toOpaque())) | tag.rawValue
        return epoll_ctl(self.epoll, EPOLL_CTL_ADD, fd, &event) == 0
    }

    /// Points a watched socket's events at another object (a connection that turned out to speak HTTP/2).
    func rewatch(_ fd: Int32, _ object: AnyObject, tag: Tag) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(object).toOpaque())) | tag.rawValue
        return epoll_ctl(self.epoll, EPOLL_CTL_MOD, fd, &event) == 0
    }

    /// HTTP/2 connections with frames to write, written once at the end of the round: responses of many streams
    /// that ended together leave in one TLS record and one `send`.
    private var http2Flushes: [HTTP2RelaySession] = []

    func flushLater(_ session: HTTP2RelaySession) {
        self.http2Flushes.append(session)
    }

    private func flushHTTP2() {
        while !self.http2Flushes.isEmpty {
            let sessions = self.http2Flushes
            self.http2Flushes.removeAll(keepingCapacity: true)
            for session in sessions { session.flushNow() }
        }
    }

    /// Takes a socket out of the epoll set without closing it (it is handed to NIO).
    func unwatch(_ fd: Int32) {
        var unused = epoll_event()
        _ = epoll_ctl(self.epoll, EPOLL_CTL_DEL, fd, &unused)
    }

    /// A closed connection leaves the list (swap-remove) but lives until this round's events are handled.
    func forget(_ connection: RelayConnection) {
        self.sessions.remove(connection)
        self.closedThisRound.append(connection)
    }

    /// Keeps `object` alive until this round's events, which may still name it, are handled.
    func retire(_ object: AnyObject) {
        self.closedThisRound.append(object)
    }

    private func sweep() {
        self.resumeListeners()
        let now = self.now
        self.sessions.forEach { $0.checkTimeout(now: now) }
        for upstream in self.pool.expire(now: now) { upstream.close() }
        self.closedThisRound.removeAll(keepingCapacity: true)
    }

    // MARK: upstream pool

    @inline(__always)
    func takeUpstream(service: ObjectIdentifier, server: Int) -> RelayUpstream? {
        self.pool.take(service: service, server: server)
    }

    /// Parks an upstream connection for the next request; false when the pool for its real server is full.
    @inline(__always)
    func park(_ upstream: RelayUpstream, limit: Int) -> Bool {
        guard !upstream.closed,
            self.pool.put(
                upstream, service: upstream.serviceID, server: upstream.serverID, now: self.now,
                idle: upstream.idleNanos, limit: limit)
        else { return false }
        upstream.owner = nil
        return true
    }

    private func upstreamEvent(_ upstream: RelayUpstream, _ events: UInt32) {
        if upstream.closed { return }
        if let owner = upstream.owner {
            owner.upstreamEvent(upstream, events)
        } else {
            // A pooled connection has nothing to say: data, a close or an error all make it unusable.
            self.pool.remove(upstream, service: upstream.serviceID, server: upstream.serverID)
            upstream.close()
        }
    }

    /// A non-blocking socket connecting to `address`; nil (errno set) when it cannot even start.
    static func startConnect(to address: SocketAddress) -> Int32? {
        let family: Int32
        switch address {
        case .v6: family = AF_INET6
        default: family = AF_INET
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        Self.setNoDelay(fd)
        let rc = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if rc != 0 && errno != EINPROGRESS {
            let error = errno
            Glibc.close(fd)
            errno = error
            return nil
        }
        return fd
    }

    /// The outcome of a non-blocking connect, once the socket turned writable: 0 or the error.
    static func connectError(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { return errno }
        return error
    }

    @inline(__always)
    func withScratch<T>(_ body: (UnsafeMutableRawPointer) -> T) -> T { body(self.scratch) }

    @inline(__always)
    func takeBuffer() -> UnsafeMutableRawPointer {
        self.freeBuffers.popLast()
            ?? UnsafeMutableRawPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    @inline(__always)
    func recycle(_ buffer: UnsafeMutableRawPointer) {
        if self.freeBuffers.count < Self.maxPooledBuffers {
            self.freeBuffers.append(buffer)
        } else {
            buffer.deallocate()
        }
    }

    /// Stopped: every connection and listener is closed.
    private func finish() {
        // Every session is a RelayConnection (only `track` adds to the list).
        while let session = self.sessions.last as? RelayConnection { session.close() }
        for upstream in self.pool.removeAll() { upstream.close() }
        self.closedThisRound.removeAll()
        for listener in self.listeners { listener.letGo() }
        self.listeners.removeAll()
        self.retiredListeners.removeAll()
        self.exited.store(true, ordering: .releasing)
    }
}

enum RelayError: Error, CustomStringConvertible {
    case system(String, Int32)
    /// A listener could not bind its address.
    case listen(String, Int32)

    var description: String {
        switch self {
        case .system(let call, let error): return "\(call): \(String(cString: strerror(error)))"
        case .listen(let address, let error): return ListenFailure.describe(address, errno: error, fallback: "")
        }
    }
}
