import SwiftVSMedia
import Foundation
import Logging
import NIOCore
import Synchronization
import SwiftVSCore

/// A channel's catch-up archive on disk: `<path>/<channel>/<number>.ts` plus `index.tsv`, one line per segment
/// (number, duration, program date time, discontinuity, previous number, bytes, discontinuity sequence).
/// Bounded by a time window and a size; the oldest segments are deleted first. Reloaded at start, so the archive
/// survives restarts. Writes happen on a queue of their own, never on an event loop.
final class DVRStore: Sendable {
    let directory: URL
    let config: DVRConfig
    private let logger: Logger
    private let queue: DispatchQueue
    private let index: Mutex<(infos: [SegmentInfo], bytes: Int64, removedSinceCompaction: Int)>

    init(config: DVRConfig, channel: String, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.directory = URL(fileURLWithPath: config.path).appendingPathComponent(channel)
        self.queue = DispatchQueue(label: "swiftvs.dvr.\(channel)")
        do {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        } catch {
            throw IPTVError.config("dvr.path: cannot create \(self.directory.path): \(error.localizedDescription)")
        }
        var infos: [SegmentInfo] = []
        var total: Int64 = 0
        if let text = try? String(contentsOf: self.directory.appendingPathComponent("index.tsv"), encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard f.count == 7, let number = Int64(f[0]), let duration = Double(f[1]), let pdt = Double(f[2]),
                    let bytes = Int(f[5]), let dsn = Int(f[6])
                else { continue }
                guard FileManager.default.fileExists(atPath: self.directory.appendingPathComponent("\(number).ts").path)
                else { continue }
                if let last = infos.last, number <= last.number { continue }
                infos.append(
                    SegmentInfo(
                        number: number, duration: duration, programDateTime: pdt,
                        discontinuity: f[3] == "1", follows: Int64(f[4]), byteCount: bytes,
                        discontinuitySequence: dsn))
                total += Int64(bytes)
            }
        }
        self.index = Mutex((infos, total, 0))
        if !infos.isEmpty {
            logger.info("archive loaded", metadata: ["channel": "\(channel)", "segments": "\(infos.count)"])
        }
    }

    /// Returns once the writes queued before it are done.
    func flush() { self.queue.sync {} }

    func path(_ number: Int64) -> String { self.directory.appendingPathComponent("\(number).ts").path }

    var lastInfo: SegmentInfo? { self.index.withLock { $0.infos.last } }

    func infos() -> [SegmentInfo] { self.index.withLock { $0.infos } }

    func usage() -> (Int, Int64) { self.index.withLock { ($0.infos.count, $0.bytes) } }

    func file(_ number: Int64) -> (path: String, size: Int)? {
        let size: Int? = self.index.withLock { s in
            var lo = 0, hi = s.infos.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if s.infos[mid].number < number { lo = mid + 1 } else { hi = mid }
            }
            return lo < s.infos.count && s.infos[lo].number == number ? s.infos[lo].byteCount : nil
        }
        return size.map { (self.path(number), $0) }
    }

    func store(_ info: SegmentInfo, _ bytes: ByteBuffer) {
        self.queue.async {
            let data = Data(bytes.readableBytesView)
            do {
                try data.write(to: URL(fileURLWithPath: self.path(info.number)))
                try self.append(Self.line(info))
            } catch {
                self.logger.error(
                    "archive write failed", metadata: ["path": "\(self.path(info.number))", "error": "\(error)"])
                return
            }
            let removed: [Int64] = self.index.withLock { s in
                if let last = s.infos.last, info.number <= last.number { return [] }
                s.infos.append(info)
                s.bytes += Int64(info.byteCount)
                var gone: [Int64] = []
                let horizon = info.programDateTime - self.config.window
                while let first = s.infos.first, s.infos.count > 1,
                    first.programDateTime < horizon || s.bytes > self.config.maxBytes
                {
                    gone.append(first.number)
                    s.bytes -= Int64(first.byteCount)
                    s.infos.removeFirst()
                }
                s.removedSinceCompaction += gone.count
                return gone
            }
            for number in removed { try? FileManager.default.removeItem(atPath: self.path(number)) }
            self.compactIfNeeded()
        }
    }

    static func line(_ info: SegmentInfo) -> String {
        [
            String(info.number), String(info.duration), String(info.programDateTime), info.discontinuity ? "1" : "0",
            info.follows.map(String.init) ?? "", String(info.byteCount), String(info.discontinuitySequence),
        ]
        .joined(separator: "\t") + "\n"
    }

    private func append(_ line: String) throws {
        let url = self.directory.appendingPathComponent("index.tsv")
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
    }

    /// Rewrites the index once many entries were pruned, so it does not grow without bound.
    private func compactIfNeeded() {
        let snapshot: [SegmentInfo]? = self.index.withLock { s in
            guard s.removedSinceCompaction >= 200 else { return nil }
            s.removedSinceCompaction = 0
            return s.infos
        }
        guard let snapshot else { return }
        let text = snapshot.map(Self.line).joined()
        try? Data(text.utf8).write(to: self.directory.appendingPathComponent("index.tsv"), options: .atomic)
    }
}

public enum IPTVError: Error, CustomStringConvertible {
    case config(String)
    case source(String)

    public var description: String {
        switch self {
        case .config(let text), .source(let text): return text
        }
    }
}
