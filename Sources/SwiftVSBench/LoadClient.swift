import SwiftVSSystem
import NIOCore
import NIOPosix
import SwiftVSCore

#if canImport(Glibc)
import Glibc
#endif

/// One connection's worth of a load run: connects, sends a request, reads the response with
/// `ResponseReader` (the bench's own), and reports to its `LoopDriver`. Reconnects when the server (or the run, without
/// keep-alive) closes. Confined to the driver's event loop.
final class LoadClient: @unchecked Sendable {
    enum State {
        case idle
        /// Connecting, then sending; times in monotonic ns.
        case connecting(sentAt: UInt64, intended: UInt64)
        case waiting(sentAt: UInt64, intended: UInt64)
    }

    unowned let driver: LoopDriver
    var state: State = .idle
    var channel: Channel?
    /// Which address the open channel is connected to.
    var connectedAddress = -1
    var target = 0
    var scanner = ResponseReader()
    /// Bumped whenever the current connection is given up, so its late events are ignored.
    var generation = 0

    init(driver: LoopDriver) {
        self.driver = driver
    }

    var isBusy: Bool {
        if case .idle = self.state { return false }
        return true
    }

    func send(target: Int, address: Int, intended: UInt64) {
        let now = Monotonic.nanoseconds()
        self.target = target
        self.scanner.reset(headRequest: self.driver.isHead)
        if let channel = self.channel, self.connectedAddress == address, channel.isActive {
            self.state = .waiting(sentAt: now, intended: intended)
            self.write(channel)
            return
        }
        self.dropConnection()
        self.state = .connecting(sentAt: now, intended: intended)
        self.connect(address: address)
    }

    private func write(_ channel: Channel) {
        let request = self.driver.requests[self.target]
        self.driver.countBytes(out: request.readableBytes)
        channel.writeAndFlush(request, promise: nil)
    }

    private func connect(address: Int) {
        let generation = self.generation
        let timeout = TimeAmount.nanoseconds(Int64(self.driver.spec.connectTimeout * 1e9))
        ClientBootstrap(group: self.driver.loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        LoadClientHandler(client: self, generation: generation))
                }
            }
            .connect(to: self.driver.addresses[address])
            .whenComplete { result in
                guard generation == self.generation, case .connecting(let sentAt, let intended) = self.state else {
                    if case .success(let channel) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let channel):
                    self.channel = channel
                    self.connectedAddress = address
                    self.driver.countConnection()
                    self.state = .waiting(sentAt: sentAt, intended: intended)
                    self.write(channel)
                case .failure(let error):
                    self.state = .idle
                    self.generation += 1
                    self.driver.failed(self, cause: Self.connectCause(error))
                }
            }
    }

    // MARK: events from the handler

    func received(_ buffer: ByteBuffer, generation: Int) {
        guard generation == self.generation else { return }
        self.driver.countBytes(in: buffer.readableBytes)
        guard case .waiting(let sentAt, let intended) = self.state else {
            // Bytes nobody asked for: the connection is out of step, so do not trust it again.
            self.dropConnection()
            return
        }
        let outcome = buffer.withUnsafeReadableBytes { self.scanner.feed($0) }
        switch outcome {
        case .needMore:
            return
        case .complete(let status, let keepAlive, _):
            self.finishResponse(status: status, keepAlive: keepAlive, sentAt: sentAt, intended: intended)
        case .invalid:
            self.state = .idle
            self.dropConnection()
            self.driver.failed(self, cause: .badResponse)
        }
    }

    func closed(error: Error?, generation: Int) {
        guard generation == self.generation else { return }
        self.channel = nil
        self.generation += 1
        switch self.state {
        case .idle:
            return  // an idle keep-alive connection closed by the server: reconnect on the next request
        case .connecting:
            return  // the connect future reports
        case .waiting(let sentAt, let intended):
            if error == nil, let outcome = self.scanner.endOfStream(),
                case .complete(let status, _, _) = outcome
            {
                self.finishResponse(status: status, keepAlive: false, sentAt: sentAt, intended: intended)
                return
            }
            self.state = .idle
            self.driver.failed(self, cause: .reset)
        }
    }

    private func finishResponse(status: Int, keepAlive: Bool, sentAt: UInt64, intended: UInt64) {
        let now = Monotonic.nanoseconds()
        // Closed loop: time from sending. Open loop: from when the request was due, so time spent waiting for a
        // free connection counts (the coordinated-omission correction of wrk2 and HdrHistogram).
        let start = self.driver.period == nil ? sentAt : min(sentAt, intended)
        self.state = .idle
        if !(keepAlive && self.driver.spec.keepAlive) { self.dropConnection() }
        self.driver.completed(self, status: status, latencyNs: now > start ? now - start : 0)
    }

    func checkTimeout(now: UInt64, timeout: UInt64) {
        switch self.state {
        case .idle, .connecting:
            return  // connects have their own timeout
        case .waiting(let sentAt, _):
            guard now > sentAt, now - sentAt > timeout else { return }
            self.state = .idle
            self.dropConnection()
            self.driver.failed(self, cause: .responseTimeout)
        }
    }

    func closeIfIdle() {
        if case .idle = self.state { self.dropConnection() }
    }

    /// The run is over: forget the request in flight and close.
    func abandon() {
        self.state = .idle
        self.dropConnection()
    }

    func dropConnection() {
        self.generation += 1
        if let channel = self.channel {
            self.channel = nil
            channel.close(promise: nil)
        }
        self.connectedAddress = -1
    }

    static func connectCause(_ error: Error) -> LossCause {
        if let error = error as? ChannelError, case .connectTimeout = error { return .connectTimeout }
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return Self.connectCause(first.error) }
            return .connectError
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return .connectRefused
            case ETIMEDOUT: return .connectTimeout
            case ECONNRESET: return .connectRefused
            default: return .connectError
            }
        }
        return .connectError
    }
}

/// Passes a connection's events to its `LoadClient`.
final class LoadClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let client: LoadClient
    let generation: Int
    var reported = false

    init(client: LoadClient, generation: Int) {
        self.client = client
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.client.received(self.unwrapInboundIn(data), generation: self.generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.report(nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.report(error)
        context.close(promise: nil)
    }

    private func report(_ error: Error?) {
        guard !self.reported else { return }
        self.reported = true
        self.client.closed(error: error, generation: self.generation)
    }
}
