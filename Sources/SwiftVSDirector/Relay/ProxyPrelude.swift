import Glibc
import NIOCore
import SwiftVSConfigKit
import SwiftVSCore
import SwiftVSSystem

/// `accept_proxy`: a trusted front (HAProxy, a cloud load balancer) starts each connection with a PROXY header
/// (v1 or v2) that names the client. Both relay paths read it here, before anything else: `RelaySession` (tcp) and
/// `HTTPProxyPrelude` (http, in front of the relay's HTTP session or the NIO proxy).
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

/// An `http` connection from a trusted front, until its PROXY header is read (under `timeouts.header_read`); then it
/// goes on as any http connection does, with the header's client as its client (X-Forwarded-For, hashing,
/// persistence, the access log).
final class HTTPProxyPrelude: RelayConnection {
    let loop: RelayLoop
    let service: VirtualService
    let fd: Int32
    let remote: SocketAddress?
    private let deadline: UInt64
    private var done = false
    var sweepIndex = -1

    init(loop: RelayLoop, service: VirtualService, fd: Int32, remote: SocketAddress?) {
        self.loop = loop
        self.service = service
        self.fd = fd
        self.remote = remote
        self.deadline = loop.now &+ UInt64(max(0, service.config.timeouts.headerRead) * 1e9)
    }

    func readable() {
        guard !self.done else { return }
        switch ProxyPrelude.read(self.fd) {
        case .needMore:
            return
        case .closed:
            self.close()
        case .refused(let reason):
            self.service.logger.debug(
                "closed before its first request",
                metadata: ["service": "\(self.service.name)", "reason": "\(reason)"])
            self.close()
        case .header(let source, _):
            self.done = true
            self.loop.unwatch(self.fd)
            self.loop.forget(self)
            self.loop.serveHTTP(self.fd, self.service, remote: source ?? self.remote)
        }
    }

    func checkTimeout(now: UInt64) {
        if now > self.deadline {
            self.service.logger.debug(
                "closed before its first request",
                metadata: ["service": "\(self.service.name)", "reason": "no PROXY header within timeouts.header_read"])
            self.close()
        }
    }

    func drain() { self.close() }

    func close() {
        guard !self.done else { return }
        self.done = true
        Glibc.close(self.fd)  // which takes it out of the epoll set
        self.loop.forget(self)
    }
}
