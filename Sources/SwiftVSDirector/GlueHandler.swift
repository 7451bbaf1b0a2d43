import NIOCore
import SwiftVSCore

/// Idle deadline shared by the two halves of a tunnel (an L4 connection or an upgraded HTTP one).
final class TunnelTimer: SweptConnection {
    var sweepIndex = -1
    let loop: LoopContext
    let idleNanos: UInt64
    var lastActivity: UInt64
    /// Closes both halves.
    var onExpiry: (() -> Void)?

    init(loop: LoopContext, idle: Double) {
        self.loop = loop
        self.idleNanos = UInt64(idle * 1e9)
        self.lastActivity = loop.now
    }

    @inline(__always) func touch() { self.lastActivity = self.loop.now }

    func checkTimeout(now: UInt64) {
        if now &- self.lastActivity > self.idleNanos {
            self.loop.unregister(self)
            let expiry = self.onExpiry
            self.onExpiry = nil
            expiry?()
        }
    }
}

/// Sits first in a pipeline so that a tunnel's writes skip the HTTP handlers that are still being removed after an
/// upgrade (a response decoder observes writes, and would take raw bytes for an HTTP request).
final class PipelineHeadHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}

/// Passes bytes between two channels on one event loop: reads one side only while the other is writable (so a
/// slow receiver slows the sender instead of filling memory), passes half-close through, and closes the partner
/// on error or close.
final class GlueHandler {
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    private var failed = false
    let timer: TunnelTimer?
    /// Where this side's writes enter the pipeline: its head, when HTTP handlers may still sit in between.
    private let head: PipelineHeadHandler?
    /// The real server's counters and whether this side reads from the client (bytes in) or the server (bytes out).
    private let counters: ServerCounters?
    private let readsClient: Bool

    private init(timer: TunnelTimer?, head: PipelineHeadHandler?, counters: ServerCounters?, readsClient: Bool) {
        self.timer = timer
        self.head = head
        self.counters = counters
        self.readsClient = readsClient
    }

    private var writeContext: ChannelHandlerContext? { self.head?.context ?? self.context }

    /// The client's glue first, then the real server's; `counters` gets the bytes each way.
    static func matchedPair(
        timer: TunnelTimer?, heads: (PipelineHeadHandler, PipelineHeadHandler)? = nil, counters: ServerCounters? = nil
    ) -> (GlueHandler, GlueHandler) {
        let first = GlueHandler(timer: timer, head: heads?.0, counters: counters, readsClient: true)
        let second = GlueHandler(timer: timer, head: heads?.1, counters: counters, readsClient: false)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    private func partnerWrite(_ data: NIOAny) {
        self.writeContext?.write(data, promise: nil)
    }

    private func partnerFlush() {
        self.writeContext?.flush()
    }

    private func partnerWriteEOF() {
        guard let context = self.context, let writer = self.writeContext, !self.outputClosed else { return }
        self.outputClosed = true
        // Close only once every byte written before the EOF is out: a full close drops pending writes, and the
        // partner's last bytes are often still queued when its EOF arrives. Writes complete in order, so an empty
        // write's completion says the rest are done.
        let promise = context.eventLoop.makePromise(of: Void.self)
        writer.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in
            if self.inputClosed {
                context.close(promise: nil)
            } else {
                context.close(mode: .output, promise: nil)
            }
        }
    }

    private func partnerCloseFull() {
        self.context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if self.pendingRead {
            self.pendingRead = false
            self.context?.read()
        }
    }

    private var partnerWritable: Bool {
        self.context?.channel.isWritable ?? false
    }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.timer?.touch()
        if let counters = self.counters {
            let bytes = self.unwrapInboundIn(data).readableBytes
            if self.readsClient {
                counters.bytesIn.wrappingAdd(bytes, ordering: .relaxed)
            } else {
                counters.bytesOut.wrappingAdd(bytes, ordering: .relaxed)
            }
        }
        self.partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A clean end lets the partner drain its last bytes and close itself; only an abrupt one takes it down at
        // once. Clean: the EOF was seen, or our output was shut and the peer then closed without error (NIO closes
        // such a half-closed channel outright, without an inputClosed event).
        if self.inputClosed || (self.outputClosed && !self.failed) {
            self.partner?.partnerWriteEOF()
        } else {
            self.partner?.partnerCloseFull()
        }
        if let timer = self.timer {
            timer.loop.unregister(timer)
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.inputClosed = true
            self.partner?.partnerWriteEOF()
            if self.outputClosed {
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.failed = true
        self.partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerWritable {
            context.read()
        } else {
            self.pendingRead = true
        }
    }
}
