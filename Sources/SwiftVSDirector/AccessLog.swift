import Foundation
import Logging
import ServiceLifecycle
import SwiftVSCore
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The access log's writer. Event-loop threads render their line and append it to one buffer under a short lock;
/// a thread of its own writes the buffer out (every 100 ms, or sooner once 64 KiB wait), so a slow disk never
/// stalls a request. If the disk falls 4 MiB behind, lines are dropped and counted, not queued without bound.
/// SIGUSR1 (`AccessLogService`) reopens the file, for logrotate's `mv` then signal.
public final class AccessLog: Sendable {
    public let config: AccessLogConfig
    /// The file as opened (relative paths from the config file's directory).
    public let path: String

    struct Pending {
        var bytes: [UInt8] = []
        var lines = 0
        var reopen = false
        var stopping = false
        var dropped = 0
    }

    private let pending = Mutex(Pending())
    private let wake = NIOConditionVariable()
    private let sequence = Atomic<Int>(0)
    private let every: Int
    /// Lines written, and lines dropped because the disk fell behind (both for `/metrics`).
    let written = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    private let fd = Atomic<Int32>(-1)
    private let logger: Logger
    private let finished = Atomic<Bool>(false)

    static let flushBytes = 64 << 10
    static let maxPendingBytes = 4 << 20

    /// Opens the file (or takes stdout); throws with the path and the reason if it cannot be opened.
    public init(_ config: AccessLogConfig, configPath: String?, logger: Logger) throws {
        self.config = config
        self.logger = logger
        if config.path == "stdout" || config.path.hasPrefix("/") {
            self.path = config.path
        } else {
            let base = configPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "."
            self.path = "\(base)/\(config.path)"
        }
        self.every = max(1, Int((1 / config.sample).rounded()))
        self.fd.store(try Self.open(self.path), ordering: .relaxed)
        Thread.detachNewThread { [self] in
            Thread.current.name = "swiftvs-access-log"
            self.run()
            self.finished.store(true, ordering: .releasing)
        }
    }

    static func open(_ path: String) throws -> Int32 {
        if path == "stdout" { return STDOUT_FILENO }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw DirectorError(
                code: .config, message: "access_log: cannot open \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Logs `record` (unless sampling leaves it out).
    func record(_ record: AccessRecord) {
        if self.every > 1 && !record.alwaysLogged {
            guard self.sequence.wrappingAdd(1, ordering: .relaxed).oldValue % self.every == 0 else { return }
        }
        var signal = false
        let format = self.config.format
        self.pending.withLock { pending in
            guard pending.bytes.count < Self.maxPendingBytes else {
                pending.dropped += 1
                return
            }
            let before = pending.bytes.count
            // Rendered straight into the buffer, under the lock the writer takes only to swap it.
            AccessLine.render(record, format, into: &pending.bytes)
            pending.lines += 1
            // Wake the writer once, as the buffer crosses the mark: a wake per line would cost a futex call and a
            // context switch per request (it did: 20% of the director's time under load).
            signal = before < Self.flushBytes && pending.bytes.count >= Self.flushBytes
        }
        if signal { self.wake.signal() }
    }

    /// Closes and opens the file again at its path (after logrotate moved it).
    public func reopen() {
        self.pending.withLock { $0.reopen = true }
        self.wake.signal()
    }

    /// Writes what waits and stops the writer.
    public func stop() {
        self.pending.withLock { $0.stopping = true }
        self.wake.signal()
        while !self.finished.load(ordering: .acquiring) { usleep(1000) }
    }

    private func run() {
        // Two buffers taking turns: the loops fill one while this thread writes the other, and neither is copied.
        var spare: [UInt8] = []
        spare.reserveCapacity(Self.flushBytes * 2)
        while true {
            self.wake.wait(seconds: 0.1)
            let (lines, reopen, stopping, dropped) = self.pending.withLock { pending in
                swap(&pending.bytes, &spare)
                defer {
                    pending.lines = 0
                    pending.reopen = false
                    pending.dropped = 0
                }
                return (pending.lines, pending.reopen, pending.stopping, pending.dropped)
            }
            if self.write(spare) { self.written.wrappingAdd(lines, ordering: .relaxed) }
            spare.removeAll(keepingCapacity: true)
            if dropped > 0 {
                self.dropped.wrappingAdd(dropped, ordering: .relaxed)
                self.logger.warning(
                    "access log: the disk fell behind; lines dropped", metadata: ["dropped": "\(dropped)"])
            }
            if reopen { self.reopenFile() }
            if stopping {
                let fd = self.fd.load(ordering: .relaxed)
                if fd != STDOUT_FILENO { close(fd) }
                return
            }
        }
    }

    /// Writes `bytes` out; false if the write failed (said in the log).
    private func write(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        let fd = self.fd.load(ordering: .relaxed)
        var offset = 0
        return bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    self.logger.warning(
                        "access log: write failed", metadata: ["path": "\(self.path)", "error": "\(errno)"])
                    return false
                }
                offset += n
            }
            return true
        }
    }

    private func reopenFile() {
        guard self.path != "stdout" else { return }
        do {
            let fresh = try Self.open(self.path)
            let old = self.fd.exchange(fresh, ordering: .relaxed)
            close(old)
            self.logger.notice("access log reopened", metadata: ["path": "\(self.path)"])
        } catch {
            self.logger.error("access log: cannot reopen; still writing the old file", metadata: ["error": "\(error)"])
        }
    }
}

/// A condition variable the writer thread sleeps on.
final class NIOConditionVariable: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var signalled = false

    init() {
        pthread_mutex_init(&self.mutex, nil)
        pthread_cond_init(&self.condition, nil)
    }

    deinit {
        pthread_cond_destroy(&self.condition)
        pthread_mutex_destroy(&self.mutex)
    }

    func signal() {
        pthread_mutex_lock(&self.mutex)
        self.signalled = true
        pthread_cond_signal(&self.condition)
        pthread_mutex_unlock(&self.mutex)
    }

    /// Until signalled, or `seconds` pass.
    func wait(seconds: Double) {
        pthread_mutex_lock(&self.mutex)
        if !self.signalled {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let nanos = Int(now.tv_nsec) + Int(seconds * 1e9)
            var deadline = timespec(tv_sec: now.tv_sec + nanos / 1_000_000_000, tv_nsec: nanos % 1_000_000_000)
            pthread_cond_timedwait(&self.condition, &self.mutex, &deadline)
        }
        self.signalled = false
        pthread_mutex_unlock(&self.mutex)
    }
}

/// SIGUSR1 reopens the access log (logrotate: `mv` the file, then `kill -USR1`); on shutdown the log is written
/// out and closed.
/// Goes in the service group before the director, so that it stops after the director has drained.
public struct AccessLogService: Service {
    public let log: AccessLog

    public init(log: AccessLog) {
        self.log = log
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigusr1)
        for await _ in signals.cancelOnGracefulShutdown() {
            self.log.reopen()
        }
        self.log.stop()
    }
}
