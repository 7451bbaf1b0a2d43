/// The server side of an HTTP/2 connection (RFC 9113), without sockets or clocks: the client's bytes go in
/// (`receive`), with the time; what the driver must do comes out as `Event`s, and the frames to write collect in
/// `output`. The driver answers each request stream with `sendHeaders` and `sendData`, which keep to the client's
/// flow-control windows and frame size.
///
/// Held here, once: the preface, SETTINGS and their ACKs, PING, GOAWAY both ways, stream states (idle, open,
/// half-closed, closed) and the errors RFC 9113 names for frames that break them, HPACK decoding, both directions'
/// flow control, the concurrency and header-list limits, CONTINUATION floods, and rapid reset (CVE-2023-44487: more
/// than `resetLimit` RST_STREAMs within `resetWindowNanos` is ENHANCE_YOUR_CALM).
public struct HTTP2Connection: Sendable {
    public struct Settings: Sendable {
        /// SETTINGS_MAX_CONCURRENT_STREAMS: more open streams are refused (REFUSED_STREAM).
        public var maxConcurrentStreams = 128
        /// SETTINGS_MAX_HEADER_LIST_SIZE: a larger request head is answered 431.
        public var maxHeaderListSize = 65_536
        /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may have in flight.
        public var initialWindowSize = 256 * 1024
        /// The connection's receive window, raised from 65 535 with the first WINDOW_UPDATE.
        public var connectionWindow = 16 << 20
        public var resetLimit = 200
        public var resetWindowNanos: UInt64 = 30_000_000_000

        public init() {}
    }

    /// RFC 9113 §7.
    public enum ErrorCode: UInt32, Sendable {
        case noError = 0x0, protocolError = 0x1, internalError = 0x2, flowControlError = 0x3
        case streamClosed = 0x5, frameSizeError = 0x6, refusedStream = 0x7, cancel = 0x8
        case compressionError = 0x9, enhanceYourCalm = 0xB
    }

    public enum Event: Sendable, Equatable {
        /// A new request.
        case request(stream: UInt32, HTTP2RequestHead)
        /// Request body bytes; `endStream` with the last (possibly none).
        case data(stream: UInt32, [UInt8], endStream: Bool)
        /// The stream is over without its response: the client reset it, or an error of its own did.
        case reset(stream: UInt32)
        /// Window space came back: streams held by flow control may send again.
        case windowOpened
        /// The driver answers this stream itself, with this status (431: the header list is over the limit; 501:
        /// CONNECT).
        case respond(stream: UInt32, status: Int)
        /// The connection is over (a GOAWAY with this code is in `output`): write what is there, then close.
        case close(ErrorCode)
    }

    struct Stream {
        var sendWindow: Int
        var receiveWindow: Int
        /// Body bytes the driver has used and not yet given back in a WINDOW_UPDATE.
        var unacknowledged = 0
        var remoteClosed: Bool
        var localClosed = false
        var contentLength: Int?
        var received = 0
    }

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    public static let maxFrameSize = 16_384
    static let defaultWindow = 65_535
    static let maxWindow = Int(Int32.max)

    public let settings: Settings
    /// Frames to write to the client, in order; the driver takes them from the front.
    public var output: [UInt8] = []
    public private(set) var failed: ErrorCode?
    /// The client sent GOAWAY, or the director is draining: once no stream is open, the connection closes.
    public private(set) var goingAway = false

    private var prefaceDone = false
    private var decoder = HPACKDecoder()
    private var headers = HeaderList()
    private var block: [UInt8] = []
    private var continuing: (stream: UInt32, endStream: Bool)?
    private var streams: [UInt32: Stream] = [:]
    private var highestStream: UInt32 = 0
    /// Streams this end reset lately: frames already on their way for them are ignored (§5.4.2).
    private var recentlyReset: [UInt32] = []
    private var recentlyResetNext = 0
    private var sendWindow = HTTP2Connection.defaultWindow
    private var receiveUnacknowledged = 0
    private var peerInitialWindow = HTTP2Connection.defaultWindow
    private var peerMaxFrame = HTTP2Connection.maxFrameSize
    private var resets: [UInt64] = []
    private var sentGoAway = false

    /// Nothing is left to do on the connection.
    public var finished: Bool { self.failed != nil || (self.goingAway && self.streams.isEmpty) }

    public init(settings: Settings = Settings()) {
        self.settings = settings
        // §3.4: the server's preface is a SETTINGS frame; then the connection window goes up.
        var payload: [UInt8] = []
        for (id, value) in [
            (3, settings.maxConcurrentStreams), (4, settings.initialWindowSize), (6, settings.maxHeaderListSize),
        ] {
            payload += [0, UInt8(id)] + Self.be32(UInt32(value))
        }
        self.frame(4, flags: 0, stream: 0, payload: payload)
        if settings.connectionWindow > Self.defaultWindow {
            self.windowUpdate(0, settings.connectionWindow - Self.defaultWindow)
        }
    }

    // MARK: the client's bytes

    /// Takes the whole frames at the front of `input` (the rest waits for more bytes): how many bytes were used.
    /// After a connection error everything is used and nothing more is read.
    public mutating func receive(_ input: UnsafeRawBufferPointer, now: UInt64, events: inout [Event]) -> Int {
        guard self.failed == nil else { return input.count }
        var at = 0
        if !self.prefaceDone {
            let n = min(input.count, Self.preface.count)
            guard Self.preface.withUnsafeBytes({ memcmp($0.baseAddress!, input.baseAddress!, n) }) == 0 else {
                self.fail(.protocolError, &events)
                return input.count
            }
            guard n == Self.preface.count else { return 0 }
            self.prefaceDone = true
            at = n
        }
        var opened = false
        while input.count - at >= 9 && self.failed == nil {
            let length = Int(input[at]) << 16 | Int(input[at + 1]) << 8 | Int(input[at + 2])
            let type = input[at + 3]
            let flags = input[at + 4]
            let stream =
                (UInt32(input[at + 5]) << 24 | UInt32(input[at + 6]) << 16 | UInt32(input[at + 7]) << 8
                    | UInt32(input[at + 8])) & 0x7FFF_FFFF
            guard length <= Self.maxFrameSize else {
                self.fail(.frameSizeError, &events)
                break
            }
            guard input.count - at - 9 >= length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: input[(at + 9)..<(at + 9 + length)])
            at += 9 + length
            if let continuing = self.continuing, type != 9 || stream != continuing.stream {
                self.fail(.protocolError, &events)  // §6.10: nothing may come between a header block's frames
                break
            }
            switch type {
            case 0: self.data(stream, flags, payload, &events)
            case 1: self.headersFrame(stream, flags, payload, &events)
            case 2: self.priority(stream, payload, &events)
            case 3: self.rstStream(stream, payload, now: now, &events)
            case 4: opened = self.settingsFrame(stream, flags, payload, &events) || opened
            case 5: self.fail(.protocolError, &events)  // PUSH_PROMISE from a client
            case 6: self.ping(stream, flags, payload, &events)
            case 7: self.goAwayFrame(stream, payload, &events)
            case 8: opened = self.windowUpdateFrame(stream, payload, &events) || opened
            case 9: self.continuation(stream, flags, payload, &events)
            default: break  // §5.5: unknown frame types are ignored
            }
        }
        if opened && self.failed == nil { events.append(.windowOpened) }
        return self.failed == nil ? at : input.count
    }

    private mutating func data(
        _ id: UInt32, _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) {
        guard id != 0 else { return self.fail(.protocolError, &events) }
        guard let body = self.unpadded(flags, payload, &events) else { return }
        // The whole frame counts against the connection's window; it is given back at once (each stream's window
        // bounds what the driver holds).
        self.receiveUnacknowledged += payload.count
        if self.receiveUnacknowledged >= self.settings.connectionWindow / 2 {
            self.windowUpdate(0, self.receiveUnacknowledged)
            self.receiveUnacknowledged = 0
        }
        guard var stream = self.streams[id] else {
            if id > self.highestStream { return self.fail(.protocolError, &events) }  // idle
            if self.recentlyReset.contains(id) { return }
            return self.fail(.streamClosed, &events)
        }
        guard !stream.remoteClosed else { return self.resetStream(id, .streamClosed, &events) }
        stream.receiveWindow -= payload.count
        guard stream.receiveWindow >= 0 else { return self.resetStream(id, .flowControlError, &events) }
        stream.received += body.count
        // Padding is used up as it arrives.
        stream.unacknowledged += payload.count - body.count
        let end = flags & 0x1 != 0
        if let expected = stream.contentLength, stream.received > expected || (end && stream.received != expected) {
            return self.resetStream(id, .protocolError, &events)  // §8.1.1: content-length disagrees
        }
        if end { stream.remoteClosed = true }
        self.streams[id] = stream
        events.append(.data(stream: id, Array(body), endStream: end))
    }

    private mutating func headersFrame(
        _ id: UInt32, _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) {
        guard id != 0 else { return self.fail(.protocolError, &events) }
        guard var fragment = self.unpadded(flags, payload, &events) else { return }
        if flags & 0x20 != 0 {
            // PRIORITY: 5 bytes, deprecated (§5.3.2), skipped.
            guard fragment.count >= 5 else { return self.fail(.protocolError, &events) }
            fragment = UnsafeRawBufferPointer(rebasing: fragment[5...])
        }
        let endStream = flags & 0x1 != 0
        if flags & 0x4 != 0 {
            self.headerBlock(id, fragment, endStream: endStream, &events)
        } else {
            self.block.removeAll(keepingCapacity: true)
            self.block.append(contentsOf: fragment)
            self.continuing = (id, endStream)
        }
    }

    private mutating func continuation(
        _ id: UInt32, _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) {
        guard let continuing = self.continuing else { return self.fail(.protocolError, &events) }
        self.block.append(contentsOf: payload)
        // A CONTINUATION flood (CVE-2024-27316): a header block far over the limit is not worth reading.
        guard self.block.count <= self.settings.maxHeaderListSize + 2 * Self.maxFrameSize else {
            return self.fail(.enhanceYourCalm, &events)
        }
        guard flags & 0x4 != 0 else { return }
        self.continuing = nil
        let block = self.block
        block.withUnsafeBytes { self.headerBlock(id, $0, endStream: continuing.endStream, &events) }
    }

    private mutating func headerBlock(
        _ id: UInt32, _ block: UnsafeRawBufferPointer, endStream: Bool, _ events: inout [Event]
    ) {
        // Decoded whatever becomes of the stream: the HPACK table is the connection's.
        self.headers.removeAll()
        do {
            try self.decoder.decode(block, into: &self.headers)
        } catch {
            return self.fail(.compressionError, &events)
        }
        if var stream = self.streams[id] {
            // Trailers: they end the stream; their fields are not passed on.
            guard !stream.remoteClosed else { return self.resetStream(id, .streamClosed, &events) }
            guard endStream else { return self.resetStream(id, .protocolError, &events) }
            if let expected = stream.contentLength, stream.received != expected {
                return self.resetStream(id, .protocolError, &events)
            }
            stream.remoteClosed = true
            self.streams[id] = stream
            events.append(.data(stream: id, [], endStream: true))
            return
        }
        guard id > self.highestStream else {
            if self.recentlyReset.contains(id) { return }
            return self.fail(id & 1 == 0 ? .protocolError : .streamClosed, &events)
        }
        guard id & 1 == 1 else { return self.fail(.protocolError, &events) }  // client streams are odd
        self.highestStream = id
        // Past the limit, or after our GOAWAY: refused, which tells the client it may send the request again
        // elsewhere (§8.7: nothing of it was processed).
        guard self.streams.count < self.settings.maxConcurrentStreams, !self.sentGoAway else {
            return self.resetStream(id, .refusedStream, &events)
        }
        var stream = Stream(
            sendWindow: self.peerInitialWindow, receiveWindow: self.settings.initialWindowSize,
            remoteClosed: endStream)
        if self.headers.size > self.settings.maxHeaderListSize {
            self.streams[id] = stream
            events.append(.respond(stream: id, status: 431))
            return
        }
        switch HTTP2RequestHead.make(self.headers, endStream: endStream) {
        case .malformed:
            self.resetStream(id, .protocolError, &events)
        case .connect:
            self.streams[id] = stream
            events.append(.respond(stream: id, status: 501))
        case .head(let head):
            stream.contentLength = head.contentLength
            if endStream, let length = head.contentLength, length != 0 {
                return self.resetStream(id, .protocolError, &events)
            }
            self.streams[id] = stream
            events.append(.request(stream: id, head))
        }
    }

    private mutating func priority(_ id: UInt32, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]) {
        guard id != 0 else { return self.fail(.protocolError, &events) }
        guard payload.count == 5 else { return self.resetStream(id, .frameSizeError, &events) }
    }

    private mutating func rstStream(
        _ id: UInt32, _ payload: UnsafeRawBufferPointer, now: UInt64, _ events: inout [Event]
    ) {
        guard id != 0 else { return self.fail(.protocolError, &events) }
        guard payload.count == 4 else { return self.fail(.frameSizeError, &events) }
        guard id <= self.highestStream else { return self.fail(.protocolError, &events) }
        self.resets.append(now)
        if self.resets.count > self.settings.resetLimit {
            let since = now &- self.settings.resetWindowNanos
            self.resets.removeAll { now > self.settings.resetWindowNanos && $0 < since }
            if self.resets.count > self.settings.resetLimit { return self.fail(.enhanceYourCalm, &events) }
        }
        if self.streams.removeValue(forKey: id) != nil {
            self.rememberReset(id)
            events.append(.reset(stream: id))
        }
    }

    /// True when the client's initial window grew (streams may send more).
    private mutating func settingsFrame(
        _ id: UInt32, _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) -> Bool {
        guard id == 0 else {
            self.fail(.protocolError, &events)
            return false
        }
        if flags & 0x1 != 0 {
            if payload.count != 0 { self.fail(.frameSizeError, &events) }
            return false
        }
        guard payload.count % 6 == 0 else {
            self.fail(.frameSizeError, &events)
            return false
        }
        var grew = false
        for at in stride(from: 0, to: payload.count, by: 6) {
            let key = Int(payload[at]) << 8 | Int(payload[at + 1])
            let value =
                Int(payload[at + 2]) << 24 | Int(payload[at + 3]) << 16 | Int(payload[at + 4]) << 8
                | Int(payload[at + 5])
            switch key {
            case 2 where value > 1:
                self.fail(.protocolError, &events)
                return false
            case 4:
                guard value <= Self.maxWindow else {
                    self.fail(.flowControlError, &events)
                    return false
                }
                let delta = value - self.peerInitialWindow
                self.peerInitialWindow = value
                for id in self.streams.keys {
                    self.streams[id]!.sendWindow += delta
                    if self.streams[id]!.sendWindow > Self.maxWindow {
                        self.fail(.flowControlError, &events)
                        return false
                    }
                }
                grew = grew || delta > 0
            case 5:
                guard value >= Self.maxFrameSize && value <= 16_777_215 else {
                    self.fail(.protocolError, &events)
                    return false
                }
                self.peerMaxFrame = value
            default:
                break
            }
        }
        self.frame(4, flags: 0x1, stream: 0, payload: [])
        return grew
    }

    private mutating func ping(
        _ id: UInt32, _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) {
        guard id == 0 else { return self.fail(.protocolError, &events) }
        guard payload.count == 8 else { return self.fail(.frameSizeError, &events) }
        if flags & 0x1 == 0 { self.frame(6, flags: 0x1, stream: 0, payload: Array(payload)) }
    }

    private mutating func goAwayFrame(_ id: UInt32, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]) {
        guard id == 0 else { return self.fail(.protocolError, &events) }
        guard payload.count >= 8 else { return self.fail(.frameSizeError, &events) }
        self.goingAway = true
    }

    /// True when a window grew.
    private mutating func windowUpdateFrame(
        _ id: UInt32, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) -> Bool {
        guard payload.count == 4 else {
            self.fail(.frameSizeError, &events)
            return false
        }
        let increment =
            (Int(payload[0]) << 24 | Int(payload[1]) << 16 | Int(payload[2]) << 8 | Int(payload[3])) & 0x7FFF_FFFF
        if id == 0 {
            guard increment > 0 else {
                self.fail(.protocolError, &events)
                return false
            }
            self.sendWindow += increment
            guard self.sendWindow <= Self.maxWindow else {
                self.fail(.flowControlError, &events)
                return false
            }
            return true
        }
        guard var stream = self.streams[id] else {
            if id > self.highestStream { self.fail(.protocolError, &events) }
            return false  // closed: a WINDOW_UPDATE may still be on its way (§5.1)
        }
        guard increment > 0 else {
            self.resetStream(id, .protocolError, &events)
            return false
        }
        stream.sendWindow += increment
        guard stream.sendWindow <= Self.maxWindow else {
            self.resetStream(id, .flowControlError, &events)
            return false
        }
        self.streams[id] = stream
        return true
    }

    /// A DATA or HEADERS payload less its padding (§6.1); nil after a PROTOCOL_ERROR.
    private mutating func unpadded(
        _ flags: UInt8, _ payload: UnsafeRawBufferPointer, _ events: inout [Event]
    ) -> UnsafeRawBufferPointer? {
        guard flags & 0x8 != 0 else { return payload }
        guard payload.count >= 1, Int(payload[0]) < payload.count else {
            self.fail(.protocolError, &events)
            return nil
        }
        return UnsafeRawBufferPointer(rebasing: payload[1..<(payload.count - Int(payload[0]))])
    }

    // MARK: errors

    /// A connection error: GOAWAY with the code, then the close.
    private mutating func fail(_ code: ErrorCode, _ events: inout [Event]) {
        guard self.failed == nil else { return }
        self.failed = code
        self.frame(7, flags: 0, stream: 0, payload: Self.be32(self.highestStream) + Self.be32(code.rawValue))
        events.append(.close(code))
    }

    /// A stream error: RST_STREAM with the code; the driver drops the stream if it knew it.
    private mutating func resetStream(_ id: UInt32, _ code: ErrorCode, _ events: inout [Event]) {
        self.frame(3, flags: 0, stream: id, payload: Self.be32(code.rawValue))
        self.rememberReset(id)
        if self.streams.removeValue(forKey: id) != nil { events.append(.reset(stream: id)) }
    }

    private mutating func rememberReset(_ id: UInt32) {
        if self.recentlyReset.count < 64 {
            self.recentlyReset.append(id)
        } else {
            self.recentlyReset[self.recentlyResetNext] = id
            self.recentlyResetNext = (self.recentlyResetNext + 1) % 64
        }
    }

    // MARK: the driver's side

    /// Whether the stream is still open for a response.
    public func isOpen(_ id: UInt32) -> Bool { self.streams[id] != nil }

    /// Starts a response's HEADERS in place: the caller appends its HPACK block to `output`, then calls
    /// `endHeaders` with what this returns (nil: the stream is gone, encode nothing).
    public mutating func beginHeaders(_ id: UInt32) -> Int? {
        guard self.streams[id] != nil, self.failed == nil else { return nil }
        self.frameHeader(length: 0, type: 1, flags: 0, stream: id)
        return self.output.count
    }

    public mutating func endHeaders(_ id: UInt32, at start: Int, endStream: Bool) {
        let length = self.output.count - start
        guard length <= self.peerMaxFrame else {
            // Over the client's frame size: framed again, in CONTINUATIONs.
            let block = Array(self.output[start...])
            self.output.removeSubrange((start - 9)...)
            return self.sendHeaders(id, block: block, endStream: endStream)
        }
        self.output[start - 9] = UInt8(length >> 16 & 0xFF)
        self.output[start - 8] = UInt8(length >> 8 & 0xFF)
        self.output[start - 7] = UInt8(length & 0xFF)
        self.output[start - 5] = 0x4 | (endStream ? 0x1 : 0)
        if endStream { self.localEnd(id) }
    }

    /// A response's HEADERS (an HPACK block), in CONTINUATIONs if over the client's frame size.
    public mutating func sendHeaders(_ id: UInt32, block: [UInt8], endStream: Bool) {
        guard self.streams[id] != nil, self.failed == nil else { return }
        var at = 0
        var type: UInt8 = 1
        repeat {
            let n = min(self.peerMaxFrame, block.count - at)
            let last = at + n == block.count
            let flags: UInt8 = (last ? 0x4 : 0) | (type == 1 && endStream ? 0x1 : 0)
            self.frameHeader(length: n, type: type, flags: flags, stream: id)
            self.output.append(contentsOf: block[at..<(at + n)])
            at += n
            type = 9
        } while at < block.count
        if endStream { self.localEnd(id) }
    }

    /// Body bytes of a response, as far as the windows let them go: how many were taken. `endStream` ends the
    /// stream when all were.
    public mutating func sendData(_ id: UInt32, _ bytes: UnsafeRawBufferPointer, endStream: Bool) -> Int {
        guard var stream = self.streams[id], self.failed == nil else { return bytes.count }
        let n = max(0, min(bytes.count, self.sendWindow, stream.sendWindow))
        var at = 0
        while at < n {
            let piece = min(self.peerMaxFrame, n - at)
            let end = endStream && at + piece == bytes.count
            self.frameHeader(length: piece, type: 0, flags: end ? 0x1 : 0, stream: id)
            self.output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + piece)]))
            at += piece
        }
        self.sendWindow -= n
        stream.sendWindow -= n
        self.streams[id] = stream
        if endStream && n == bytes.count {
            if bytes.isEmpty { self.frameHeader(length: 0, type: 0, flags: 0x1, stream: id) }
            self.localEnd(id)
        }
        return n
    }

    /// The driver has used `count` body bytes of the stream: its window opens again in WINDOW_UPDATEs of half.
    public mutating func consumed(_ id: UInt32, _ count: Int) {
        guard var stream = self.streams[id] else { return }
        stream.unacknowledged += count
        if stream.unacknowledged >= self.settings.initialWindowSize / 2 && !stream.remoteClosed {
            self.windowUpdate(id, stream.unacknowledged)
            stream.receiveWindow += stream.unacknowledged
            stream.unacknowledged = 0
        }
        self.streams[id] = stream
    }

    /// The stream is given up on (its real server failed mid-response): RST_STREAM.
    public mutating func reset(_ id: UInt32, _ code: ErrorCode) {
        guard self.streams.removeValue(forKey: id) != nil, self.failed == nil else { return }
        self.frame(3, flags: 0, stream: id, payload: Self.be32(code.rawValue))
        self.rememberReset(id)
    }

    /// §6.8's graceful close: GOAWAY (NO_ERROR) with the highest stream id, so the client opens no new stream
    /// here; the open ones finish, a new one is refused (REFUSED_STREAM: safe to retry), then the connection closes.
    public mutating func goAway() {
        guard !self.sentGoAway, self.failed == nil else { return }
        self.goingAway = true
        self.sentGoAway = true
        self.frame(7, flags: 0, stream: 0, payload: Self.be32(0x7FFF_FFFF) + Self.be32(0))
    }

    /// Our END_STREAM went out: the stream closes if the client's side had; else the client is told to stop
    /// sending (RST_STREAM NO_ERROR, §8.1).
    private mutating func localEnd(_ id: UInt32) {
        guard let stream = self.streams.removeValue(forKey: id) else { return }
        if !stream.remoteClosed {
            self.frame(3, flags: 0, stream: id, payload: Self.be32(0))
            self.rememberReset(id)
        }
    }

    // MARK: frames out

    private mutating func windowUpdate(_ id: UInt32, _ increment: Int) {
        self.frame(8, flags: 0, stream: id, payload: Self.be32(UInt32(increment)))
    }

    private mutating func frame(_ type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) {
        self.frameHeader(length: payload.count, type: type, flags: flags, stream: stream)
        self.output.append(contentsOf: payload)
    }

    @inline(__always)
    private mutating func frameHeader(length: Int, type: UInt8, flags: UInt8, stream: UInt32) {
        self.output.append(UInt8(length >> 16 & 0xFF))
        self.output.append(UInt8(length >> 8 & 0xFF))
        self.output.append(UInt8(length & 0xFF))
        self.output.append(type)
        self.output.append(flags)
        self.output.append(UInt8(stream >> 24 & 0x7F))
        self.output.append(UInt8(stream >> 16 & 0xFF))
        self.output.append(UInt8(stream >> 8 & 0xFF))
        self.output.append(UInt8(stream & 0xFF))
    }

    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}

#if canImport(Glibc)
import Glibc
#endif
