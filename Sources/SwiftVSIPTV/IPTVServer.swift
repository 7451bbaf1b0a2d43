import SwiftVSSystem
import SwiftVSMedia
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwiftVSCore

/// `swiftvs iptv`: the HTTP server plus one ingest service per channel, ready for a `ServiceGroup`.
public struct IPTVServer: Sendable {
    public let site: IPTVSite
    public let services: [any Service]

    /// Builds channels and their ingest; fails with a message naming the config key at fault.
    /// - Parameter onListening: called once the HTTP listener is bound (the command prints its banner then, so a
    ///   port in use is said instead of a banner).
    public init(config: IPTVConfig, logger: Logger, onListening: @escaping @Sendable () -> Void = {}) throws {
        let channels = try config.channels.map { try Channel(config: $0, settings: config, logger: logger) }
        if let vod = config.vod {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: vod, isDirectory: &isDir), isDir.boolValue else {
                throw IPTVError.config("vod: '\(vod)' is not a folder")
            }
        }
        if let epg = config.epg, !FileManager.default.isReadableFile(atPath: epg) {
            throw IPTVError.config("epg: cannot read '\(epg)' (an XMLTV file)")
        }
        self.site = IPTVSite(config: config, channels: channels)
        var services: [any Service] = [HTTPService(site: self.site, logger: logger, onListening: onListening)]
        for (index, channel) in channels.enumerated() {
            switch channel.config.source {
            case .builtin:
                services.append(try LoopIngest(channel: channel, file: try Self.builtinClip(), logger: logger))
            case .file(let path):
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw IPTVError.config("channels[\(index)].source: cannot read '\(path)'")
                }
                services.append(try LoopIngest(channel: channel, file: [UInt8](data), logger: logger))
            case .udp(let bind, let group):
                services.append(UDPIngest(channel: channel, bind: bind, group: group, logger: logger))
            case .push:
                break  // POST /ingest/<id> on the HTTP server
            }
        }
        self.services = services
        if config.ingestToken == nil, !config.listen.isLoopback, config.channels.contains(where: { $0.source == .push })
        {
            logger.warning(
                "push channels accept TS from anyone who can reach /ingest/ID: set ingest_token (or --ingest-token)",
                metadata: ["listen": "\(config.listen)"])
        }
    }

    /// Waits until every archive write queued so far is on disk (at shutdown).
    public func flushArchives() {
        for channel in self.site.channels { channel.dvr?.flush() }
    }

    /// The sample clip shipped with the binary (scripts/make-sample-clip.sh made it).
    public static func builtinClip() throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: "sample", withExtension: "ts"),
            let data = FileManager.default.contents(atPath: url.path)
        else {
            throw IPTVError.source(
                "the built-in clip (sample.ts) is missing from the resources next to the binary; "
                    + "use a channel with source: file:PATH")
        }
        return [UInt8](data)
    }
}

/// The HTTP listener as a Service: binds, serves until graceful shutdown, then closes.
struct HTTPService: Service {
    let site: IPTVSite
    let logger: Logger
    let onListening: @Sendable () -> Void

    func run() async throws {
        let site = self.site
        let listen = site.config.listen
        let group =
            site.config.threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
            ?? MultiThreadedEventLoopGroup.singleton
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Connections idle for 2 minutes are closed (a push sends data all the time, viewers every few s).
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(120)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(IPTVHTTPHandler(site: site))
                }
            }
        let server: NIOCore.Channel
        do {
            server = try await bootstrap.bind(host: listen.host, port: listen.port).get()
        } catch {
            throw IPTVError.config(
                "listen: "
                    + ListenFailure.describe("\(listen)", errno: (error as? IOError)?.errnoCode, fallback: "\(error)"))
        }
        self.logger.info("serving", metadata: ["listen": "\(listen)", "channels": "\(site.channels.count)"])
        self.onListening()
        await withGracefulShutdownHandler {
            try? await server.closeFuture.get()
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
        if site.config.threads != nil { try? await group.shutdownGracefully() }
    }
}
