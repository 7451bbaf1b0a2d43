import Glibc
import NIOCore
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem

/// `accept_proxy`: a trusted front (HAProxy, a cloud load balancer) starts each connection with a PROXY header
/// (v1 or v2) that names the client. Both relay paths read it here, before anything else: `RelaySession` (tcp) and
/// `HTTPPrelude` (http, in front of the relay's HTTP session or the NIO proxy).
enum ProxyPrelude {
    /// Whether `remote` is in the service's `accept_proxy` networks.
    static func trusts(_ config: VirtualServiceConfig, _ remote: SocketAddress?) -> Bool {
        guard let remote else { return false }
        return remote.withAddressBytes { bytes in config.acceptProxy.contains { $0.contains(Array(bytes)) } }
    }

    /// A client outside the networks is closed, and said (at most every 5 s per service).
    static func refuseUntrusted(_ service: VirtualService, _ remote: SocketAddress?) {
        let (allowed, held) = LogThrottle.allows("proxy-untrusted \(service.name)")
        guard allowed else { return }
        service.logger.warning(
            "a client outside accept_proxy: closed",
            metadata: [
                "service": "\(service.name)", "client": "\(AccessRecord.address(remote))",
                "also_since_last": "\(held)",
            ])
    }

    enum Outcome {
        /// Not all of it yet.
        case needMore
        /// The client closed, or the socket failed.
        case closed
        /// Not a PROXY header, or a broken one: the reason.
        case refused(String)
        /// Read and taken off the socket: the client and the address it connected to, as the header says (nil for
        /// `UNKNOWN`/`LOCAL`, which keep the connection's own).
        case header(source: SocketAddress?, destination: SocketAddress?)
    }

    /// The largest header read (v1's is at most 107 bytes; v2's TLVs rarely reach 1 KiB).
    static let maxBytes = 4096

    /// Reads the header off `fd` without taking a byte past it: peeks, parses, then takes exactly its length.
    static func read(_ fd: Int32) -> Outcome {
        var peeked = [UInt8](repeating: 0, count: Self.maxBytes)
        let count = peeked.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .needMore }
        guard count > 0 else { return .closed }
        switch ProxyHeader.parse(Array(peeked[0..<count])) {
        case .needMore:
            return count == peeked.count ? .refused("a PROXY header over 4 KiB") : .needMore
        case .invalid(let reason):
            return .refused(reason)
        case .header(let header, let length):
            _ = peeked.withUnsafeMutableBytes { recv(fd, $0.baseAddress, length, 0) }
            guard let header else { return .header(source: nil, destination: nil) }
            return .header(
                source: try? SocketAddress(ipAddress: Endpoint.format(header.source), port: header.sourcePort),
                destination: try? SocketAddress(
                    ipAddress: Endpoint.format(header.destination), port: header.destinationPort))
        }
    }
}

/// A TLS client's ClientHello, peeked (never taken off the socket): for `sni` routes on `tcp` services and for
/// the choice between the relay's TLS and the NIO proxy's on `http` ones.
enum ClientHelloPeek {
    case needMore
    case closed
    case hello(ClientHello.Hello)
    /// Not TLS, or a ClientHello over `ClientHello.maxBytes`.
    case unreadable

    static func peek(_ fd: Int32) -> ClientHelloPeek {
        var peeked = [UInt8](repeating: 0, count: ClientHello.maxBytes + 5)
        let count = peeked.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .needMore }
        guard count > 0 else { return .closed }
        switch ClientHello.read(Array(peeked[0..<count])) {
        case .needMore: return count < peeked.count ? .needMore : .unreadable
        case .notTLS: return .unreadable
        case .hello(let hello): return .hello(hello)
        }
    }
}

/// An `http` connection before its first request, while the relay reads what decides who serves it (under
/// `timeouts.header_read`): a trusted front's PROXY header (`accept_proxy`), whose client becomes the client
/// (X-Forwarded-For, hashing, persistence, the access log); then, on a `tls` service, the ClientHello, peeked:
/// a client that speaks no TLS goes to the NIO proxy; HTTP/1.1 and h2 clients are served by the relay's own TLS
/// (`RelayTLSContext`).
final class HTTPPrelude: RelayConnection {
    enum Awaiting { case proxyHeader, clientHello }

    let loop: RelayLoop
    let service: VirtualService
    let fd: Int32
    let remote: SocketAddress?
    let awaiting: Awaiting
    private let deadline: UInt64
    private var done = false
    var sweepIndex = -1

    init(loop: RelayLoop, service: VirtualService, fd: Int32, remote: SocketAddress?, awaiting: Awaiting) {
        self.loop = loop
        self.service = service
        self.fd = fd
        self.remote = remote
        self.awaiting = awaiting
        self.deadline = loop.now &+ UInt64(max(0, service.config.timeouts.headerRead) * 1e9)
    }

    func readable() {
        guard !self.done else { return }
        switch self.awaiting {
        case .proxyHeader: self.readProxyHeader()
        case .clientHello: self.readClientHello()
        }
    }

    private func readProxyHeader() {
        switch ProxyPrelude.read(self.fd) {
        case .needMore:
            return
        case .closed:
            self.close()
        case .refused(let reason):
            self.refuse(reason)
        case .header(let source, _):
            self.leave()
            self.loop.serveHTTP(self.fd, self.service, remote: source ?? self.remote)
        }
    }

    private func readClientHello() {
        let tls = self.service.tlsFront
        var relay = tls?.relay
        switch ClientHelloPeek.peek(self.fd) {
        case .needMore:
            return
        case .closed:
            return self.close()
        case .unreadable:
            relay = nil  // not TLS (the NIO proxy tells a plain-HTTP client to use https://), or more than NIOSSL's
        case .hello:
            break  // HTTP/1.1 and h2 alike: the relay's TLS selects by ALPN, its session by the preface
        }
        self.leave()
        if let relay {
            self.loop.serveTLS(self.fd, self.service, remote: self.remote, context: relay)
        } else {
            self.loop.handOff(self.fd, self.service, [], self.remote, false)
        }
    }

    /// Done here: the connection goes on elsewhere with its descriptor.
    private func leave() {
        self.done = true
        self.loop.unwatch(self.fd)
        self.loop.forget(self)
    }

    private func refuse(_ reason: String) {
        self.service.logger.debug(
            "closed before its first request", metadata: ["service": "\(self.service.name)", "reason": "\(reason)"])
        self.close()
    }

    func checkTimeout(now: UInt64) {
        guard now > self.deadline else { return }
        self.refuse(
            self.awaiting == .proxyHeader
                ? "no PROXY header within timeouts.header_read" : "no TLS ClientHello within timeouts.header_read")
    }

    func drain() { self.close() }

    func close() {
        guard !self.done else { return }
        self.done = true
        Glibc.close(self.fd)  // which takes it out of the epoll set
        self.loop.forget(self)
    }
}
