import SwiftVSTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Response: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var text: String { String(decoding: self.body, as: UTF8.self) }
}

/// A deliberately plain HTTP/1.1 client on a blocking socket: keep-alive, Content-Length and chunked bodies,
/// raw bytes for malformed requests, a chosen source address. Use it from a thread (`onThread`).
final class BlockingClient {
    let port: Int
    let source: String?
    let timeout: Double
    /// 127.0.0.1 or ::1.
    let host: String
    private(set) var fd: Int32 = -1
    private var buffer: [UInt8] = []
    /// Times this client had to open a new connection.
    private(set) var connects = 0

    init(port: Int, source: String? = nil, timeout: Double = 10, host: String = "127.0.0.1") {
        self.port = port
        self.source = source
        self.timeout = timeout
        self.host = host
    }

    deinit {
        self.close()
        self.scratch.deallocate()
    }

    func connect() throws {
        self.close()
        let v6 = self.host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(errno)") }
        var tv = timeval(
            tv_sec: Int(self.timeout), tv_usec: Int((self.timeout.truncatingRemainder(dividingBy: 1)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let source = self.source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else { Glibc.close(fd); throw ClientError("bind \(source): \(errno)") }
        }
        let rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(self.port).bigEndian)
            inet_pton(AF_INET6, self.host, &addr.sin6_addr)
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(self.port).bigEndian)
            inet_pton(AF_INET, self.host, &addr.sin_addr)
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard rc == 0 else { Glibc.close(fd); throw ClientError("connect to \(self.port): errno \(errno)") }
        self.fd = fd
        self.buffer.removeAll()
        self.connects += 1
    }

    func close() {
        if self.fd >= 0 { Glibc.close(self.fd) }
        self.fd = -1
    }

    var isOpen: Bool { self.fd >= 0 }

    func send(_ bytes: [UInt8]) throws {
        if self.fd < 0 { try self.connect() }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw ClientError("send: errno \(errno)") }
            offset += n
        }
    }

    func send(_ text: String) throws { try self.send(Array(text.utf8)) }

    /// Whether bytes (or an EOF) wait to be read, without waiting.
    func hasBytes() -> Bool {
        guard self.buffer.isEmpty else { return true }
        var entry = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 8)

    /// Reads once into the scratch buffer; returns the byte count (0 on EOF).
    private func receive() throws -> Int {
        let n = recv(self.fd, self.scratch.baseAddress, self.scratch.count, 0)
        guard n >= 0 else { throw ClientError(errno == EAGAIN ? "read timed out" : "recv: errno \(errno)") }
        return n
    }

    /// Reads more bytes into the buffer; false on EOF.
    @discardableResult
    func fill() throws -> Bool {
        let n = try self.receive()
        if n == 0 { return false }
        self.buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: self.scratch[0..<n]))
        return true
    }

    /// True when the peer closed (EOF or reset) within the timeout.
    func waitForClose() -> Bool {
        while true {
            do {
                if try !self.fill() { return true }
            } catch let error as ClientError {
                return !error.description.contains("timed out")
            } catch {
                return true
            }
        }
    }

    /// The next response's status line, left in the buffer for `readResponse`.
    func peekStatusLine() throws -> String {
        while true {
            if let index = self.buffer.firstIndex(of: 0x0A) {
                return String(decoding: self.buffer[..<index].filter { $0 != 0x0D }, as: UTF8.self)
            }
            guard try self.fill() else { throw ClientError("connection closed") }
        }
    }

    private func line() throws -> String {
        while true {
            if let index = self.buffer.firstIndex(of: 0x0A) {
                let line = self.buffer[..<index]
                self.buffer.removeFirst(index + 1)
                return String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
            }
            guard try self.fill() else { throw ClientError("connection closed") }
        }
    }

    func bytes(_ count: Int) throws -> [UInt8] {
        while self.buffer.count < count {
            guard try self.fill() else { throw ClientError("connection closed mid-body") }
        }
        let out = Array(self.buffer[0..<count])
        self.buffer.removeFirst(count)
        return out
    }

    /// Reads one response. `discardBody` counts a large body without keeping it (returns its size in `status`…
    /// no: in `body.count` via `bodyLength`).
    func readResponse(head: Bool = false, bodySink: ((UnsafeRawBufferPointer) -> Void)? = nil) throws -> Response {
        let statusLine = try self.line()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ClientError("bad status line '\(statusLine)'") }
        var headers: [(String, String)] = []
        while true {
            let line = try self.line()
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                headers.append(
                    (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        var response = Response(status: status, headers: headers, body: [])
        if status == 101 || (100..<200).contains(status) || status == 204 || status == 304 || head { return response }
        func deliver(_ chunk: [UInt8]) {
            if let sink = bodySink {
                chunk.withUnsafeBytes { sink($0) }
            } else {
                response.body.append(contentsOf: chunk)
            }
        }
        if let length = response.header("content-length").flatMap(Int.init) {
            var left = length
            let n = min(left, self.buffer.count)
            deliver(Array(self.buffer[0..<n]))
            self.buffer.removeFirst(n)
            left -= n
            while left > 0 {
                // Straight from the socket into the sink: large bodies are not copied around.
                let got = try self.receive()
                if got == 0 { throw ClientError("closed with \(left) bytes left") }
                let used = min(got, left)
                let chunk = UnsafeRawBufferPointer(rebasing: self.scratch[0..<used])
                if let sink = bodySink { sink(chunk) } else { response.body.append(contentsOf: chunk) }
                if got > used {
                    self.buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: self.scratch[used..<got]))
                }
                left -= used
            }
        } else if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try self.line()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw ClientError("bad chunk size '\(sizeLine)'")
                }
                if size == 0 {
                    while try !self.line().isEmpty {}
                    break
                }
                deliver(try self.bytes(size))
                _ = try self.line()
            }
        } else {
            while try self.fill() {}
            deliver(self.buffer)
            self.buffer.removeAll()
        }
        if response.header("connection")?.lowercased() == "close" { self.close() }
        return response
    }

    /// Sends a request and reads its response, reconnecting first if the last response closed the connection.
    func request(
        _ method: String = "GET", _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        bodySink: ((UnsafeRawBufferPointer) -> Void)? = nil
    ) throws -> Response {
        if self.fd < 0 { try self.connect() }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: test\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        try self.send(Array(text.utf8) + (body ?? []))
        return try self.readResponse(head: method == "HEAD", bodySink: bodySink)
    }

    // MARK: WebSocket (RFC 6455), enough for tests

    func webSocketHandshake(_ path: String) throws -> Response {
        try self.connect()
        try self.send(
            "GET \(path) HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        return try self.readResponse()
    }

    func sendText(_ text: String) throws {
        let payload = Array(text.utf8)
        precondition(payload.count < 126)
        let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i % 4]) }
        try self.send(frame)
    }

    func readText() throws -> String {
        let header = try self.bytes(2)
        var length = Int(header[1] & 0x7F)
        if length == 126 {
            let ext = try self.bytes(2)
            length = Int(ext[0]) << 8 | Int(ext[1])
        }
        return String(decoding: try self.bytes(length), as: UTF8.self)
    }
}
