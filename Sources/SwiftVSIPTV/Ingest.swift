import SwiftVSMedia
import SwiftVSConfigKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftVSCore

/// Seconds since 1970 (CLOCK_REALTIME).
@inline(__always) func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Plays a TS file as a live channel, paced by its PCR and aligned to the wall clock (see `TSLoop`). At start it
/// replays the last few segments' worth at once, so a replica that just started already has the same full live
/// window as one that has run for hours.
struct LoopIngest: Service {
    let channel: Channel
    let loop: TSLoop
    let logger: Logger

    init(channel: Channel, file: [UInt8], logger: Logger) throws {
        self.channel = channel
        self.logger = logger
        do { self.loop = try TSLoop(file: file) } catch {
            throw IPTVError.source("channel '\(channel.config.id)': source \(channel.config.source): \(error)")
        }
    }

    func run() async throws {
        self.logger.info(
            "looping",
            metadata: [
                "channel": "\(self.channel.config.id)",
                "loop": "\(Double(self.loop.duration) / 90_000)s",
            ])
        await cancelWhenGracefulShutdown { await self.play() }
    }

    private func play() async {
        let settings = self.channel.settings
        let primeTicks = Int64(Double(settings.window + 2) * settings.segmentDuration * 90_000)
        var (l, i) = self.loop.position(at: Int64(wallClock() * 90_000) - primeTicks)
        var batch: [UInt8] = []
        batch.reserveCapacity(188 * 512)
        do {
            while !Task.isCancelled {
                let first = self.loop.due(loop: l, index: i)
                let now = Int64(wallClock() * 90_000)
                if first > now {
                    try await Task.sleep(for: .microseconds((first - now) * 1_000_000 / 90_000))
                }
                // Every packet due by now (a catch-up after a late wake-up, or the prime), at most ~1 MB at a time.
                let horizon = max(first, Int64(wallClock() * 90_000))
                batch.removeAll(keepingCapacity: true)
                var lastDue = first
                while batch.count < 188 * 5000 {
                    let due = self.loop.due(loop: l, index: i)
                    guard due <= horizon else { break }
                    if due != lastDue, !batch.isEmpty {
                        // Feed each PCR interval with its own time, so the archive's clock is the stream's.
                        batch.withUnsafeBytes { self.channel.ingest($0, wallClock: Double(lastDue) / 90_000) }
                        batch.removeAll(keepingCapacity: true)
                    }
                    lastDue = due
                    self.loop.packet(loop: l, index: i, into: &batch)
                    i += 1
                    if i == self.loop.packetCount { i = 0; l += 1 }
                }
                if !batch.isEmpty {
                    batch.withUnsafeBytes { self.channel.ingest($0, wallClock: Double(lastDue) / 90_000) }
                }
            }
        } catch {
            return  // cancelled
        }
    }
}

/// Receives TS over UDP, unicast or from a multicast group it joins. Each datagram carries whole 188-byte packets
/// (1 to 7 of them).
struct UDPIngest: Service {
    let channel: Channel
    let bind: Endpoint
    let group: String?
    let logger: Logger

    func run() async throws {
        let target = self.channel
        let bootstrap = DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.maxMessagesPerRead, value: 32)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(UDPIngestHandler(channel: target))
                }
            }
        let udp: NIOCore.Channel
        do {
            // A multicast receiver binds the group address (so it gets that group only, whichever other sockets
            // share the port) and joins on the interface; `bind.host` is then the interface's address.
            udp = try await bootstrap.bind(host: self.group ?? self.bind.host, port: self.bind.port).get()
        } catch {
            throw IPTVError.source("channel '\(target.config.id)': cannot bind UDP \(self.bind): \(error)")
        }
        if let group = self.group {
            do {
                let address = try SocketAddress(ipAddress: group, port: self.bind.port)
                let local = self.bind.host == "0.0.0.0" ? nil : try NIONetworkDevice.device(forAddress: self.bind.host)
                try await (udp as! MulticastChannel).joinGroup(address, device: local).get()
            } catch {
                try? await udp.close()
                throw IPTVError.source("channel '\(target.config.id)': cannot join multicast \(group): \(error)")
            }
        }
        self.logger.info(
            "listening for TS over UDP",
            metadata: [
                "channel": "\(target.config.id)",
                "source": "\(target.config.source)",
            ])
        await withGracefulShutdownHandler {
            try? await udp.closeFuture.get()
        } onGracefulShutdown: {
            udp.close(promise: nil)
        }
    }
}

extension NIONetworkDevice {
    static func device(forAddress host: String) throws -> NIONetworkDevice? {
        try System.enumerateDevices().first { $0.address?.ipAddress == host }
    }
}

final class UDPIngestHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let channel: Channel

    init(channel: Channel) { self.channel = channel }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        self.channel.ingest(envelope.data, wallClock: wallClock())
    }
}
