import Foundation
import NIOWebSocket
import HummingbirdWSClient
import Logging
import Synchronization

/// A conference signaling client over WebSocket (`swiftvs bench conference` and the tests): JSON text frames out,
/// a mailbox of frames in, read with a deadline. Talks to the signal service, or the director in front of it, over
/// the network only.
public final class SignalClient: Sendable {
    enum Command: Sendable {
        case text(String)
        case close
    }

    struct Mailbox {
        var frames: [String] = []
        var head = 0
        /// A reader waiting, with the timer that ends its wait (cancelled when a frame or the close comes first, so
        /// that no sleeping task outlives its read: a busy client reads thousands of frames a minute).
        var waiter: (id: Int, continuation: CheckedContinuation<String?, Never>, timer: Task<Void, Never>)?
        var nextWaiter = 0
        var closed = false
        var closeCode: Int?
        /// Set by `consume`: frames go straight to it, on the connection's reading task.
        var handler: (@Sendable (String) -> Void)?
    }

    let mailbox = Mutex(Mailbox())
    let commands: AsyncStream<Command>.Continuation
    let commandStream: AsyncStream<Command>
    public let url: String

    init(url: String) {
        self.url = url
        (self.commandStream, self.commands) = AsyncStream<Command>.makeStream()
    }

    /// Connects (the upgrade done) within `timeout` seconds, or throws why not.
    public static func connect(
        url: String, timeout: Double = 5, logger: Logger = Logger(label: "swiftvs.signal-client")
    )
        async throws -> SignalClient
    {
        let client = SignalClient(url: url)
        let opened = OpenedSignal()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            opened.waiter.withLock { $0 = continuation }
            Task {
                do {
                    var configuration = WebSocketClientConfiguration()
                    configuration.maxFrameSize = 1 << 20
                    let close = try await WebSocketClient.connect(
                        url: url, configuration: configuration, logger: logger
                    ) {
                        inbound, outbound, _ in
                        opened.waiter.withLock {
                            $0?.resume(); $0 = nil
                        }
                        await withTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for await command in client.commandStream {
                                    switch command {
                                    case .text(let text):
                                        do { try await outbound.write(.text(text)) } catch { return }
                                    case .close:
                                        try? await outbound.close(.normalClosure, reason: nil)
                                        return
                                    }
                                }
                            }
                            group.addTask {
                                do {
                                    for try await message in inbound.messages(maxSize: 1 << 20) {
                                        if case .text(let text) = message { client.deliver(text) }
                                    }
                                } catch {}
                            }
                            await group.next()
                            group.cancelAll()
                        }
                    }
                    client.finish(code: close.map { Int(UInt16(webSocketErrorCode: $0.closeCode)) })
                } catch {
                    client.finish(code: nil)
                    opened.waiter.withLock {
                        $0?.resume(throwing: error); $0 = nil
                    }
                }
            }
            Task {
                try? await Task.sleep(for: .seconds(timeout))
                opened.waiter.withLock {
                    $0?.resume(throwing: SignalClientError(description: "no WebSocket upgrade within \(timeout) s"))
                    $0 = nil
                }
            }
        }
        return client
    }

    func deliver(_ text: String) {
        var handler: (@Sendable (String) -> Void)?
        let waiter = self.mailbox.withLock { box -> CheckedContinuation<String?, Never>? in
            if let consumer = box.handler {
                handler = consumer
                return nil
            }
            if let waiter = box.waiter {
                box.waiter = nil
                waiter.timer.cancel()
                return waiter.continuation
            }
            box.frames.append(text)
            return nil
        }
        waiter?.resume(returning: text)
        handler?(text)
    }

    /// From now on every frame goes to `handler` as it arrives (those already waiting first), with no task hop or
    /// timer per frame: how the bench reads thousands of frames a second. `nextText` then sees nothing more.
    public func consume(_ handler: @escaping @Sendable (String) -> Void) {
        let queued = self.mailbox.withLock { box -> ArraySlice<String> in
            box.handler = handler
            defer {
                box.frames.removeAll()
                box.head = 0
            }
            return box.frames[box.head...]
        }
        for frame in queued { handler(frame) }
    }

    func finish(code: Int?) {
        self.commands.finish()
        let waiter = self.mailbox.withLock { box -> CheckedContinuation<String?, Never>? in
            box.closed = true
            box.closeCode = code
            defer { box.waiter = nil }
            box.waiter?.timer.cancel()
            return box.waiter?.continuation
        }
        waiter?.resume(returning: nil)
    }

    /// Whether the connection has ended, and the close code the server gave.
    public var isClosed: Bool { self.mailbox.withLock { $0.closed } }
    public var closeCode: Int? { self.mailbox.withLock { $0.closeCode } }

    public func send(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object) else { return }
        self.commands.yield(.text(String(decoding: data, as: UTF8.self)))
    }

    /// A raw text frame (the fuzz and hostile tests).
    public func sendText(_ text: String) { self.commands.yield(.text(text)) }

    public func close() { self.commands.yield(.close) }

    /// The next frame's text, or nil when the connection ended or `timeout` seconds passed.
    public func nextText(timeout: Double) async -> String? {
        let immediate = self.mailbox.withLock { box -> String?? in
            if box.head < box.frames.count {
                let frame = box.frames[box.head]
                box.head += 1
                if box.head > 1024 {
                    box.frames.removeFirst(box.head)
                    box.head = 0
                }
                return .some(frame)
            }
            return box.closed ? .some(nil) : nil
        }
        if let immediate { return immediate }
        return await withCheckedContinuation { continuation in
            self.mailbox.withLock { box in
                if box.head < box.frames.count {
                    let frame = box.frames[box.head]
                    box.head += 1
                    continuation.resume(returning: frame)
                    return
                }
                if box.closed {
                    continuation.resume(returning: nil)
                    return
                }
                box.nextWaiter += 1
                let id = box.nextWaiter
                let timer = Task { [weak self] in
                    try? await Task.sleep(for: .seconds(timeout))
                    guard !Task.isCancelled else { return }
                    self?.expire(waiter: id)
                }
                box.waiter = (id, continuation, timer)
            }
        }
    }

    func expire(waiter id: Int) {
        let expired = self.mailbox.withLock { box -> CheckedContinuation<String?, Never>? in
            guard let waiter = box.waiter, waiter.id == id else { return nil }
            box.waiter = nil
            return waiter.continuation
        }
        expired?.resume(returning: nil)
    }

    /// The next message as a JSON object.
    public func next(timeout: Double) async -> [String: Any]? {
        guard let text = await self.nextText(timeout: timeout) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    /// Reads until a message of `type` (for which `matching` holds) arrives; others are skipped. Nil on timeout or
    /// close.
    public func waitFor(
        _ type: String, timeout: Double, matching: ([String: Any]) -> Bool = { _ in true }
    ) async -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let message = await self.next(timeout: left) else { return nil }
            if message["type"] as? String == type && matching(message) { return message }
        }
    }
}

final class OpenedSignal: Sendable {
    let waiter = Mutex<CheckedContinuation<Void, any Error>?>(nil)
}

public struct SignalClientError: Error, CustomStringConvertible {
    public var description: String
}
