import SwiftVSConfigKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SwiftVSCore

public struct SyncStatus: Codable, Sendable, Equatable {
    public var listen: String
    public var peers: [String]
    /// Templates sent to the peers and received from them.
    public var sent: Int
    public var received: Int
    /// Time from a template's creation on the peer to its arrival here, for the last one received (ms, wall clock).
    public var lastLagMs: Double?
    public var connectedPeers: Int
    /// Full resyncs sent: one each time a peer connection is made (every live template goes first).
    public var resyncs: Int
}

/// The IPVS sync daemon's job: every persistence template this director creates (client network → real server) is
/// streamed to the peer directors over TCP, and theirs are adopted here, so that a client keeps its real server when
/// the backup takes over. One line per template: `T <service> <key high> <key low> <v6> <ip:port> <sent ms>`. Each
/// time a connection to a peer is made (it started, restarted, or the network came back), every live template is
/// sent first: a full resync, as keepalived's conntrackd does. Templates that open connections hold (a room's, while
/// its WebSockets last) are re-sent every `refreshPeriod`, as IPVS's sync daemon refreshes long-lived entries, so the
/// peer's copies, which only their timeout keeps, live as long as the session here.
public final class PersistenceSync: Sendable {
    /// How often held templates are re-sent; templates with a shorter timeout may lapse on the peer mid-session.
    static let refreshPeriod: TimeAmount = .seconds(10)
    let config: SyncConfig
    let director: Director
    let logger: Logger
    private struct State {
        var pending: [String] = []
        var peers: [Int: Channel] = [:]
        var connecting: Set<Int> = []
        var listener: Channel?
        var flush: RepeatedTask?
        var refresh: RepeatedTask?
        var sent = 0
        var received = 0
        var resyncs = 0
        var lastLagMs: Double?
    }
    private let state = Mutex(State())

    public init(config: SyncConfig, director: Director, logger: Logger) {
        self.config = config
        self.director = director
        self.logger = logger
    }

    public var status: SyncStatus {
        self.state.withLock { s in
            SyncStatus(
                listen: self.config.listen.description, peers: self.config.peers.map(\.description), sent: s.sent,
                received: s.received, lastLagMs: s.lastLagMs, connectedPeers: s.peers.count, resyncs: s.resyncs)
        }
    }

    public func start() async throws {
        let sink: @Sendable (String, PersistenceKey, Endpoint) -> Void = { [weak self] service, key, server in
            self?.enqueue(service, key, server)
        }
        for service in self.director.services { service.templateSink.withLock { $0 = sink } }
        let address = try SocketAddress(ipAddress: self.config.listen.host, port: self.config.listen.port)
        let listener: Channel
        do {
            listener = try await ServerBootstrap(group: self.director.group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SyncReceiveHandler(sync: self))
                    }
                }
                .bind(to: address).get()
        } catch {
            throw DirectorError(code: .ha, message: "ha.sync.listen \(self.config.listen): \(error)")
        }
        let flush = self.director.group.next().scheduleRepeatedTask(
            initialDelay: .milliseconds(20), delay: .milliseconds(20)
        ) { _ in
            self.flush()
        }
        let refresh = self.director.group.next().scheduleRepeatedTask(
            initialDelay: Self.refreshPeriod, delay: Self.refreshPeriod
        ) { _ in
            for service in self.director.services {
                for (key, server) in service.heldTemplates() { self.enqueue(service.name, key, server) }
            }
        }
        self.state.withLock {
            $0.listener = listener
            $0.flush = flush
            $0.refresh = refresh
        }
        self.logger.info(
            "persistence sync listening",
            metadata: [
                "listen": "\(self.config.listen)",
                "peers": "\(self.config.peers.map(\.description))",
            ])
    }

    public func stop() async {
        let (listener, peers, flush, refresh) = self.state.withLock { s in
            defer { s.listener = nil; s.peers = [:]; s.flush = nil; s.refresh = nil }
            return (s.listener, Array(s.peers.values), s.flush, s.refresh)
        }
        flush?.cancel()
        refresh?.cancel()
        try? await listener?.close()
        for peer in peers { try? await peer.close() }
    }

    /// One template as the stream carries it.
    static func line(_ service: String, _ key: PersistenceKey, _ server: Endpoint) -> String {
        let ms = Int(Date().timeIntervalSince1970 * 1000)
        return "T\t\(service)\t\(key.high)\t\(key.low)\t\(key.isIPv6 ? 1 : 0)\t\(server)\t\(ms)\n"
    }

    func enqueue(_ service: String, _ key: PersistenceKey, _ server: Endpoint) {
        let line = Self.line(service, key, server)
        self.state.withLock { s in
            // A peer that is away gets the most recent 100 000; older ones would be stale by the time it is back.
            if s.pending.count < 100_000 { s.pending.append(line) }
        }
    }

    /// Sends what is pending to every connected peer; (re)connects the others.
    func flush() {
        let (lines, peers, missing) = self.state.withLock { s -> ([String], [Channel], [Int]) in
            let missing = self.config.peers.indices.filter { s.peers[$0] == nil && !s.connecting.contains($0) }
            for i in missing { s.connecting.insert(i) }
            guard !s.peers.isEmpty, !s.pending.isEmpty else { return ([], Array(s.peers.values), missing) }
            defer { s.pending.removeAll(keepingCapacity: true) }
            s.sent += s.pending.count
            return (s.pending, Array(s.peers.values), missing)
        }
        if !lines.isEmpty {
            let text = lines.joined()
            for peer in peers { peer.writeAndFlush(ByteBuffer(string: text), promise: nil) }
        }
        for i in missing { self.connect(i) }
    }

    func connect(_ index: Int) {
        let peer = self.config.peers[index]
        guard let address = try? SocketAddress(ipAddress: peer.host, port: peer.port) else { return }
        ClientBootstrap(group: self.director.group).connectTimeout(.seconds(1)).connect(to: address).whenComplete {
            result in
            switch result {
            case .success(let channel):
                // A peer that (re)connects gets every live template first (it may have restarted with none, or
                // missed some while away), then the stream of new ones.
                let snapshot = self.director.services.flatMap { service in
                    service.liveTemplates().map { Self.line(service.name, $0.client, $0.server) }
                }
                if !snapshot.isEmpty { channel.writeAndFlush(ByteBuffer(string: snapshot.joined()), promise: nil) }
                self.state.withLock {
                    $0.peers[index] = channel
                    $0.connecting.remove(index)
                    $0.sent += snapshot.count
                    $0.resyncs += 1
                }
                channel.closeFuture.whenComplete { _ in
                    self.state.withLock { s in
                        if s.peers[index] === channel { s.peers[index] = nil }
                    }
                }
            case .failure:
                // Try again a second later: the peer may not have started yet.
                self.director.group.next().scheduleTask(in: .seconds(1)) {
                    self.state.withLock { _ = $0.connecting.remove(index) }
                }
            }
        }
    }

    func receive(_ line: Substring) {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 7, fields[0] == "T", let high = UInt64(fields[2]), let low = UInt64(fields[3]),
            let server = try? Endpoint(parsing: String(fields[5])), let sent = Double(fields[6])
        else { return }
        let key = PersistenceKey(high: high, low: low, isIPv6: fields[4] == "1")
        self.director.service(named: String(fields[1]))?.adoptTemplate(key, server: server)
        let lag = Date().timeIntervalSince1970 * 1000 - sent
        self.state.withLock {
            $0.received += 1
            $0.lastLagMs = max(0, lag)
        }
    }
}

/// Splits the peer's stream into lines.
final class SyncReceiveHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let sync: PersistenceSync
    var partial = ""

    init(sync: PersistenceSync) {
        self.sync = sync
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.partial += buffer.readString(length: buffer.readableBytes) ?? ""
        guard let last = self.partial.lastIndex(of: "\n") else {
            if self.partial.utf8.count > 1 << 20 { context.close(promise: nil) }
            return
        }
        for line in self.partial[..<last].split(separator: "\n") { self.sync.receive(line) }
        self.partial = String(self.partial[self.partial.index(after: last)...])
    }
}
