import SwiftVSConfigKit
import SwiftVSTestSupport
import Foundation
import SwiftVSCore
@testable import SwiftVSDirector
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A cheap order-sensitive checksum over 8-byte words.
struct Checksum {
    var value: UInt64 = 0x9E37_79B9_7F4A_7C15
    var pending: [UInt8] = []

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        if !self.pending.isEmpty {
            while self.pending.count < 8 && offset < bytes.count {
                self.pending.append(bytes[offset])
                offset += 1
            }
            if self.pending.count == 8 {
                self.mix(self.pending.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                self.pending.removeAll()
            }
        }
        while offset + 8 <= bytes.count {
            self.mix(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        while offset < bytes.count {
            self.pending.append(bytes[offset])
            offset += 1
        }
    }

    private mutating func mix(_ word: UInt64) {
        self.value = (self.value ^ word) &* 0x1000_0000_01B3
        self.value = (self.value << 13) | (self.value >> 51)
    }
}

/// Sends `total` pseudo-random bytes through `port` and reads the echo to EOF (after a half-close); returns the
/// checksums of what went out and what came back, and how many bytes came back.
func echoTransfer(port: Int, total: Int) throws -> (sent: UInt64, received: UInt64, count: Int) {
    let client = BlockingClient(port: port, timeout: 30)
    try client.connect()
    let fd = client.fd
    // One random block; each chunk differs by its sequence number in the first 8 bytes, so loss or reordering
    // changes the checksum.
    var state: UInt64 = 12345
    var block = [UInt8](repeating: 0, count: 65536)
    for i in 0..<block.count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        block[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    let template = block
    let sender = Thread {
        var chunk = template
        var sequence: UInt64 = 0
        var left = total
        var checksum = Checksum()
        while left > 0 {
            let n = min(left, chunk.count)
            sequence += 1
            withUnsafeBytes(of: sequence) { word in
                for j in 0..<8 { chunk[j] = word[j] }
            }
            chunk.withUnsafeBytes { checksum.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            var offset = 0
            while offset < n {
                let written = chunk[offset..<n].withUnsafeBytes {
                    send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if written <= 0 { return }
                offset += written
            }
            left -= n
        }
        shutdown(fd, Int32(SHUT_WR))
        sentChecksum.withLock { $0 = checksum.value }
    }
    sentChecksum.withLock { $0 = 0 }
    sender.start()
    var received = Checksum()
    var count = 0
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        buffer.withUnsafeBytes { received.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        count += n
    }
    while sentChecksum.withLock({ $0 }) == 0 && count == total { usleep(1000) }
    client.close()
    return (sentChecksum.withLock { $0 }, received.value, count)
}

import Synchronization
let sentChecksum = Mutex<UInt64>(0)

extension IntegrationTests {
    @Suite("TCP virtual service", .serialized, .timeLimit(.minutes(3)))
    struct TCPProxyTests {
        @Test(
            "100 MB through a tcp echo service arrives intact, half-close passes through, director RSS stays under 64 MB"
        )
        func bigEchoBoundedMemory() async throws {
            try await withBackends(1, kind: .echo) { backends in
                let port = try freePort()
                let yaml = """
                    threads: 1
                    admin: off
                    services:
                      - name: echo
                        listen: 127.0.0.1:\(port)
                        protocol: tcp
                        servers: [\(backends[0].address)]
                    """
                let director = try DirectorProcess(yaml: yaml)
                defer { director.stop() }
                try director.waitForPort(port)
                let total = 100 * 1024 * 1024
                let result = try await onThread { try echoTransfer(port: port, total: total) }
                #expect(result.count == total)
                #expect(result.sent == result.received)
                let rss = director.peakRSSKiB
                #expect(rss > 0 && rss < 64 * 1024, "director peak RSS \(rss) KiB")
            }
        }

        @Test("a 1 GiB HTTP response streams through the director with its RSS under 64 MB")
        func gigabyteResponse() async throws {
            try await withBackends(1) { backends in
                let (director, port) = try DirectorProcess.inFront(of: backends[0])
                defer { director.stop() }
                let received = try await onThread { () -> Int in
                    var count = 0
                    let response = try BlockingClient(port: port, timeout: 30).request("GET", "/bytes/\(1 << 30)") {
                        count += $0.count
                    }
                    guard response.status == 200 else { throw ClientError("status \(response.status)") }
                    return count
                }
                #expect(received == 1 << 30)
                let rss = director.peakRSSKiB
                #expect(rss > 0 && rss < 64 * 1024, "director peak RSS \(rss) KiB")
            }
        }

        @Test("weight 0 on a tcp real server: its open connection keeps working, new connections go elsewhere")
        func quiesce() async throws {
            try await withBackends(2, kind: .echo) { backends in
                try await withDirector(serviceYAML(proto: "tcp", scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let first = BlockingClient(port: port)
                    try first.connect()
                    try first.send("ping")
                    try await waitUntil("the first connection reaches rs0") { backends[0].openConnections == 1 }
                    try director.service.setWeight(try Endpoint(parsing: backends[0].address), 0)
                    let others = (0..<10).map { _ in BlockingClient(port: port) }
                    for client in others { try client.connect(); try client.send("x") }
                    try await waitUntil("10 new connections reach a real server") {
                        backends[0].openConnections + backends[1].openConnections == 11
                    }
                    #expect(backends[0].openConnections == 1)
                    #expect(backends[1].openConnections == 10)
                    // The quiesced server's connection still carries bytes both ways.
                    try first.send("pong")
                    #expect(String(decoding: try first.bytes(8), as: UTF8.self) == "pingpong")
                    for client in others { client.close() }
                    first.close()
                }
            }
        }

        @Test("a tcp connection whose real server refuses is retried on another")
        func retryOnRefused() async throws {
            try await withBackends(2, kind: .echo) { backends in
                await backends[0].kill()
                try await withDirector(serviceYAML(proto: "tcp", scheduler: "rr", backends: backends)) { director in
                    let port = director.port
                    let result = try await onThread { try echoTransfer(port: port, total: 10000) }
                    #expect(result.count == 10000 && result.sent == result.received)
                }
            }
        }
    }
}
