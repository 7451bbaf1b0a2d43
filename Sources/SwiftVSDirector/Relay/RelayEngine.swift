import SwiftVSConfigKit
import CSwiftVSLinux
import Foundation
import Glibc
import Logging
import NIOCore
import SwiftVSCore

/// The director's data plane: `threads` epoll loops of its own, each accepting from every listener. A `tcp`
/// connection is relayed with one `recv` and one `send` per chunk each way, as HAProxy and nginx do; an `http` one
/// is served here while its requests are plain (`HTTPRelaySession`) and handed to the NIO proxy when one is not.
///
/// SwiftNIO's channel pipeline costs about 1 µs of CPU per read or write (reference counting, pipeline hops,
/// promises): three times HAProxy's whole userland cost per relayed request. The relay engine spends about a
/// tenth of that, and leaves NIO the requests that need its HTTP parser.
final class RelayEngine: Sendable {
    let loops: [RelayLoop]

    init(threads: Int, logger: Logger, handOff: @escaping RelayLoop.HandOff) throws {
        self.loops = try (0..<max(1, threads)).map { try RelayLoop(id: $0, logger: logger, handOff: handOff) }
    }

    func start() {
        for loop in self.loops {
            let thread = Thread { loop.run() }
            thread.name = "swiftvs-relay-\(loop.id)"
            thread.start()
        }
    }

    /// Binds and listens on `endpoint` for `service`; every loop takes the listener in.
    func listen(_ service: VirtualService, at endpoint: Endpoint) throws -> RelayListener {
        let address = try SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
        let family: Int32
        switch address {
        case .v6: family = AF_INET6
        default: family = AF_INET
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RelayError.system("socket", errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard bound == 0, Glibc.listen(fd, 4096) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw RelayError.bind(endpoint.description, error)
        }
        let listener = RelayListener(
            fd: fd, service: service, localAddress: Self.localAddress(of: fd),
            holders: self.loops.count)
        for loop in self.loops { loop.post(.add(listener)) }
        return listener
    }

    /// Stops accepting on `listener`; its open connections go on.
    func close(_ listener: RelayListener) async {
        for loop in self.loops { loop.post(.remove(listener)) }
        await Self.wait { listener.isClosed.load(ordering: .acquiring) }
    }

    /// Shutting down: http connections finish their request in flight and close; idle ones close now.
    func drain() {
        for loop in self.loops { loop.post(.drain) }
    }

    /// Closes every listener and connection and ends the threads.
    func stop() async {
        for loop in self.loops { loop.post(.stop) }
        await Self.wait { self.loops.allSatisfy { $0.exited.load(ordering: .acquiring) } }
    }

    private static func wait(until done: @Sendable () -> Bool) async {
        for _ in 0..<400 where !done() {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private static func localAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return RelayLoop.address(storage)
    }
}

extension RelayError {
    static func bind(_ endpoint: String, _ error: Int32) -> RelayError { .listen(endpoint, error) }
}

/// First in the pipeline of a connection the relay engine handed over: passes on the bytes the engine had read,
/// once the channel is active, then leaves.
final class ReplayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        context.fireChannelRead(self.wrapInboundOut(context.channel.allocator.buffer(bytes: self.bytes)))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
