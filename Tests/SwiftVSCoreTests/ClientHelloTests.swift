import Foundation
import SwiftVSCore
import Testing

@Suite("The server name of a TLS ClientHello")
struct ClientHelloTests {
    /// A ClientHello as TLS 1.2/1.3 clients send it: a session id, suites, compression, then extensions (one of
    /// them server_name when `name` is given), in one record or split over several.
    static func hello(_ name: String?, records: Int = 1, padding: Int = 0, alpn: [String] = []) -> [UInt8] {
        var extensions: [UInt8] = []
        func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        extensions += u16(0x000A) + u16(4) + u16(2) + u16(0x001D)  // supported_groups: x25519
        if !alpn.isEmpty {
            let list = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            extensions += u16(16) + u16(list.count + 2) + u16(list.count) + list
        }
        if let name {
            let host = Array(name.utf8)
            let list = [0] + u16(host.count) + host
            extensions += u16(0) + u16(list.count + 2) + u16(list.count) + list
        }
        extensions += u16(0x0015) + u16(padding) + [UInt8](repeating: 0, count: padding)  // padding
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32)
        body += [32] + [UInt8](repeating: 9, count: 32)  // session id
        body += u16(4) + u16(0x1301) + u16(0xC02B)  // suites
        body += [1, 0]  // compression: null
        body += u16(extensions.count) + extensions
        let handshake: [UInt8] =
            [1, UInt8(body.count >> 16), UInt8(body.count >> 8 & 0xFF), UInt8(body.count & 0xFF)] + body
        var out: [UInt8] = []
        let size = (handshake.count + records - 1) / records
        var at = 0
        while at < handshake.count {
            let piece = handshake[at..<min(handshake.count, at + size)]
            out += [22, 3, 1] + u16(piece.count) + piece
            at += size
        }
        return out
    }

    @Test("the name, in one record or in several; every shorter prefix asks for more")
    func name() {
        for records in [1, 3] {
            let bytes = Self.hello("Room.Example.COM", records: records)
            #expect(ClientHello.read(bytes) == .hello(.init(serverName: "room.example.com")))
            for cut in [0, 1, 4, 5, 20, bytes.count - 1] {
                #expect(ClientHello.read(Array(bytes[0..<cut])) == .needMore, "\(records) records, cut \(cut)")
            }
        }
        #expect(ClientHello.read(Self.hello("big.test", padding: 3000)) == .hello(.init(serverName: "big.test")))
    }

    /// The first flight of Python's own TLS client (OpenSSL), made for the fuzz corpus by fuzz/make-seeds.py.
    @Test("a real ClientHello (OpenSSL's, TLS 1.3 with its many extensions) gives its name")
    func real() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/front/client-hello")
        let bytes = [UInt8](try Data(contentsOf: file))
        #expect(ClientHello.read(bytes) == .hello(.init(serverName: "conference.example.com")))
    }

    @Test("ALPN's list, in the client's order, before or without a name; a real client's")
    func protocols() throws {
        #expect(
            ClientHello.read(Self.hello("a.test", records: 2, alpn: ["h2", "http/1.1"]))
                == .hello(.init(serverName: "a.test", protocols: ["h2", "http/1.1"])))
        #expect(ClientHello.read(Self.hello(nil, alpn: ["http/1.1"])) == .hello(.init(protocols: ["http/1.1"])))
        #expect(ClientHello.read(Self.hello("a.test")) == .hello(.init(serverName: "a.test")))
        // A name with bytes no protocol id has is left out (the fuzzer's: they decoded to longer UTF-8).
        #expect(
            ClientHello.read(Self.hello(nil, alpn: ["h\u{ff}2", "http/1.1"])) == .hello(.init(protocols: ["http/1.1"])))
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/front/client-hello")
        guard case .hello(let real) = ClientHello.read([UInt8](try Data(contentsOf: file))) else {
            Issue.record("the real ClientHello did not read")
            return
        }
        #expect(real.serverName == "conference.example.com")
    }

    @Test("no server_name, not TLS, not a ClientHello, a name with bytes no host has")
    func others() {
        #expect(ClientHello.read(Self.hello(nil)) == .hello(.init()))
        #expect(ClientHello.read(Array("GET / HTTP/1.1\r\n\r\n".utf8)) == .notTLS)
        var serverHello = Self.hello("a.test")
        serverHello[5] = 2
        #expect(ClientHello.read(serverHello) == .notTLS)
        #expect(ClientHello.read(Self.hello("a b.test")) == .hello(.init()))
        #expect(ClientHello.read(Self.hello("")) == .hello(.init()), "an empty name (the fuzzer found it)")
    }
}
