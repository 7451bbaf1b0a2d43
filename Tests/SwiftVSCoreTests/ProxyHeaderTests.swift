import SwiftVSConfigKit
import SwiftVSCore
import Testing

@Suite("PROXY protocol headers")
struct ProxyHeaderTests {
    static let v4 = ProxyHeader(
        source: [192, 168, 1, 10], sourcePort: 51000, destination: [10, 0, 0, 1], destinationPort: 443)
    static let v6 = ProxyHeader(
        source: Endpoint.parseIP("2001:db8::7")!, sourcePort: 1, destination: Endpoint.parseIP("::1")!,
        destinationPort: 65535)

    @Test("v1 is the spec's text line")
    func v1Text() {
        #expect(
            String(decoding: Self.v4.encode(.v1), as: UTF8.self) == "PROXY TCP4 192.168.1.10 10.0.0.1 51000 443\r\n")
        #expect(String(decoding: Self.v6.encode(.v1), as: UTF8.self) == "PROXY TCP6 2001:db8::7 ::1 1 65535\r\n")
    }

    @Test("v2 is the signature, 0x21, the family, the length, the addresses and ports")
    func v2Bytes() {
        let bytes = Self.v4.encode(.v2)
        #expect(Array(bytes[0..<12]) == ProxyHeader.signature)
        #expect(Array(bytes[12..<16]) == [0x21, 0x11, 0, 12])
        #expect(Array(bytes[16...]) == [192, 168, 1, 10, 10, 0, 0, 1, 0xC7, 0x38, 0x01, 0xBB])
        #expect(Self.v6.encode(.v2)[13] == 0x21 && Self.v6.encode(.v2).count == 16 + 36)
    }

    @Test("what is encoded parses back, whole; every shorter prefix asks for more")
    func roundTrip() {
        for header in [Self.v4, Self.v6] {
            for version in ProxyHeader.Version.allCases {
                let bytes = header.encode(version)
                #expect(ProxyHeader.parse(bytes + [0x47, 0x45]) == .header(header, length: bytes.count))
                for cut in 1..<bytes.count {
                    #expect(ProxyHeader.parse(Array(bytes[0..<cut])) == .needMore, "\(version) cut at \(cut)")
                }
            }
        }
    }

    static let bad: [(String, [UInt8])] = [
        ("an HTTP request", Array("GET / HTTP/1.1\r\n".utf8)),
        ("v1 with LF only", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".utf8)),
        ("v1 with a port past 65535", Array("PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n".utf8)),
        ("v1 with a leading zero port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n".utf8)),
        ("v1 with a negative port (the fuzzer found it)", Array("PROXY TCP6 8::7 6::0 1 -34\r\n".utf8)),
        ("v1 with a signed port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".utf8)),
        ("v1 TCP4 with an IPv6 address", Array("PROXY TCP4 ::1 5.6.7.8 1 2\r\n".utf8)),
        ("v1 with a field missing", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".utf8)),
        ("v1 past 107 bytes", Array(("PROXY TCP6 " + String(repeating: "1", count: 100)).utf8)),
        ("v2 version 1", ProxyHeader.signature + [0x11, 0x11, 0, 12] + [UInt8](repeating: 0, count: 12)),
        ("v2 command 2", ProxyHeader.signature + [0x22, 0x11, 0, 12] + [UInt8](repeating: 0, count: 12)),
        ("v2 too short for IPv4", ProxyHeader.signature + [0x21, 0x11, 0, 8] + [UInt8](repeating: 0, count: 8)),
    ]

    @Test("broken headers are refused, by table", arguments: Self.bad.indices)
    func refused(_ index: Int) {
        guard case .invalid = ProxyHeader.parse(Self.bad[index].1) else {
            Issue.record("\(Self.bad[index].0) was not refused")
            return
        }
    }

    @Test("LOCAL (v2) and UNKNOWN (v1) carry no address; TLVs after the addresses are skipped")
    func noAddress() {
        #expect(ProxyHeader.parse(Array("PROXY UNKNOWN\r\nGET".utf8)) == .header(nil, length: 15))
        #expect(ProxyHeader.parse(ProxyHeader.signature + [0x20, 0x00, 0, 0]) == .header(nil, length: 16))
        let tlv = Self.v4.encode(.v2) + [0x04, 0, 1, 0x55]
        var withTLV = tlv
        withTLV[15] = 16
        #expect(ProxyHeader.parse(withTLV) == .header(Self.v4, length: 32))
    }

    @Test("networks: a prefix covers its addresses and no others, IPv4 and IPv6 apart")
    func networks() throws {
        let ten = try #require(IPNetwork("10.0.0.0/8"))
        #expect(ten.contains([10, 200, 3, 4]) && !ten.contains([11, 0, 0, 1]))
        let host = try #require(IPNetwork("127.0.0.1"))
        #expect(host.contains([127, 0, 0, 1]) && !host.contains([127, 0, 0, 2]))
        let six = try #require(IPNetwork("2001:db8::/32"))
        #expect(six.contains(Endpoint.parseIP("2001:db8:1::9")!) && !six.contains([10, 0, 0, 1]))
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("ten") == nil && IPNetwork("::/129") == nil)
        #expect(IPNetwork("0.0.0.0/0")!.contains([8, 8, 8, 8]))
    }
}
