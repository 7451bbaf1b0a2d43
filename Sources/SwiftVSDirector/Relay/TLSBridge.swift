import CSwiftVSLinux
import Glibc
import NIOCore

/// A TLS client whose connection needs the NIO proxy after all (a request the relay does not serve: a body, an
/// upgrade to WebSocket, HTTP/1.0, a head over the relay's limits…): the relay keeps the TLS it terminated and
/// passes the plaintext both ways over a socket pair, whose other end the NIO proxy serves as an HTTPS client's
/// (X-Forwarded-Proto, the client's address). From then on every request of the connection goes that way.
final class TLSBridge: RelayConnection {
    let loop: RelayLoop
    let tls: RelayTLSConnection
    let peerFD: Int32
    var sweepIndex = -1
    private var closed = false
    /// Plaintext from the client for the NIO proxy, and back; each `buffer[sent..<count]` waits for its writer.
    private let up = UnsafeMutableRawPointer.allocate(byteCount: TLSBridge.bufferSize, alignment: 16)
    private var upCount = 0
    private var upSent = 0
    private let down = UnsafeMutableRawPointer.allocate(byteCount: TLSBridge.bufferSize, alignment: 16)
    private var downCount = 0
    private var downSent = 0
    private var clientEnded = false
    private var peerEnded = false

    static let bufferSize = 16 * 1024

    private init(loop: RelayLoop, tls: RelayTLSConnection, peerFD: Int32) {
        self.loop = loop
        self.tls = tls
        self.peerFD = peerFD
    }

    deinit {
        self.up.deallocate()
        self.down.deallocate()
    }

    /// Hands the NIO proxy its end with `bytes` (plaintext the relay had read), and starts passing the rest.
    static func start(
        loop: RelayLoop, service: VirtualService, tls: RelayTLSConnection, remote: SocketAddress?, bytes: [UInt8]
    ) {
        var ends: [Int32] = [-1, -1]
        let made = socketpair(
            AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &ends)
        guard made == 0 else {
            service.logger.warning(
                "cannot hand a TLS client to the proxy: socketpair failed; closed",
                metadata: ["service": "\(service.name)", "error": "\(String(cString: strerror(errno)))"])
            tls.free()
            Glibc.close(tls.fd)
            return
        }
        let bridge = TLSBridge(loop: loop, tls: tls, peerFD: ends[0])
        guard loop.watch(tls.fd, bridge, tag: .bridge), loop.watch(ends[0], bridge, tag: .bridge) else {
            tls.free()
            Glibc.close(tls.fd)
            Glibc.close(ends[0])
            Glibc.close(ends[1])
            return
        }
        loop.track(bridge)
        loop.handOff(ends[1], service, bytes, remote, true)
        bridge.pump()
    }

    /// Moves what either side has until neither can take or give more (the sockets are edge-triggered).
    func pump() {
        var moved = true
        while moved && !self.closed {
            moved = false
            if self.upSent == self.upCount && !self.clientEnded {
                switch self.tls.read(into: self.up, count: Self.bufferSize) {
                case .bytes(let n):
                    (self.upCount, self.upSent, moved) = (n, 0, true)
                case .closed:
                    self.clientEnded = true
                    shutdown(self.peerFD, Int32(SHUT_WR))
                case .wouldBlock:
                    break
                case .failed:
                    return self.close()
                }
            }
            if self.upSent < self.upCount {
                let n = send(self.peerFD, self.up + self.upSent, self.upCount - self.upSent, Int32(MSG_NOSIGNAL))
                if n > 0 {
                    self.upSent += n
                    moved = true
                } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    return self.close()
                }
            }
            if self.downSent == self.downCount && !self.peerEnded {
                let n = recv(self.peerFD, self.down, Self.bufferSize, 0)
                if n > 0 {
                    (self.downCount, self.downSent, moved) = (n, 0, true)
                } else if n == 0 {
                    self.peerEnded = true
                } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    return self.close()
                }
            }
            if self.downSent < self.downCount {
                switch self.tls.write(self.down + self.downSent, count: self.downCount - self.downSent) {
                case .bytes(let n):
                    self.downSent += n
                    moved = true
                case .wouldBlock:
                    break
                case .closed, .failed:
                    return self.close()
                }
            }
        }
        // The proxy closed the connection and all it said is out: so does the client's.
        if self.peerEnded && self.downSent == self.downCount { self.close() }
    }

    /// The NIO proxy times the connection (idle, header, body); when it closes its end, this closes.
    func checkTimeout(now: UInt64) {}

    func close() {
        guard !self.closed else { return }
        self.closed = true
        self.tls.free()
        Glibc.close(self.tls.fd)
        Glibc.close(self.peerFD)
        self.loop.forget(self)
    }
}
