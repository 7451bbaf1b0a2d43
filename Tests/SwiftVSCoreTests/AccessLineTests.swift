import Foundation
import SwiftVSConfigKit
import SwiftVSCore
import Testing

@Suite("Access log lines")
struct AccessLineTests {
    static let record = AccessRecord(
        time: 1_796_121_180.123, client: "127.0.0.1:40000", service: "web", server: "10.0.0.1:8080", method: "GET",
        target: "/a?b=1", status: 200, bytesIn: 0, bytesOut: 12, retries: 1, head: 0.0001, connect: 0.0012,
        firstByte: 0.0034, total: 0.0045)

    @Test("text: Common Log Format's fields first, then key=value")
    func text() {
        #expect(
            AccessLine.text(Self.record)
                == "127.0.0.1:40000 - - [01/Dec/2026:10:33:00.123 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 service=web"
                + " server=10.0.0.1:8080 in=0 retries=1 head=0.000 connect=0.001 ttfb=0.003 total=0.005\n")
        var cut = Self.record
        cut.status = nil
        cut.server = nil
        cut.firstByte = nil
        cut.target = "/\"quoted\"\n"
        #expect(
            AccessLine.text(cut).contains(
                "\"GET /\\x22quoted\\x22\\x0A HTTP/1.1\" - 12 service=web server=- in=0 retries=1 head=0.000"
                    + " connect=0.001 ttfb=- "))
        var tcp = AccessRecord(time: 0, client: "[::1]:5", service: "db", server: "10.0.0.2:5432", proto: "TCP")
        tcp.bytesIn = 7
        #expect(
            AccessLine.text(tcp).hasPrefix("[::1]:5 - - [01/Jan/1970:00:00:00.000 +0000] \"- - TCP\" - 0 service=db"))
    }

    @Test("json: one object per line, every field, nulls for what did not happen")
    func json() throws {
        var record = Self.record
        record.firstByte = nil
        record.target = "/\"x\"\u{1}"
        let line = AccessLine.json(record)
        #expect(line.hasSuffix("}\n") && !line.dropLast().contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-12-01T10:33:00.123Z")
        #expect(object["path"] as? String == "/\"x\"\u{1}")
        #expect(object["status"] as? Int == 200 && object["retries"] as? Int == 1)
        #expect(object["ttfb_ms"] is NSNull && object["total_ms"] as? Double == 4.5)
        #expect(object["bytes_out"] as? Int == 12 && object["server"] as? String == "10.0.0.1:8080")
    }

    @Test("JSON strings: escaped as JSON needs, UTF-8 through as it is, and they parse back")
    func jsonStrings() throws {
        for text in ["plain", "q\"b\\s", "\n\r\t\u{1}\u{1f}", "é漢字🙂", "", "\u{7f}"] {
            let quoted = JSONText.quoted(text)
            let back = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
            #expect(back == [text], "\(quoted)")
        }
        #expect(JSONText.quoted("a\u{1}\"") == "\"a\\u0001\\\"\"")
    }

    @Test("a byte writer writes within the room it was given, and a number that does not fit is left out whole")
    func writerRoom() {
        var bytes: [UInt8] = [1]
        bytes.append(upTo: 5) { out in
            out.bytes("abc")
            out.decimal(12345)
            out.literal("xy")
            out.byte(0)
        }
        #expect(bytes == [1] + Array("abcxy".utf8))
        var padded: [UInt8] = []
        padded.append(upTo: 40) { out in
            out.decimal(7, width: 3)
            out.decimal(-5)
            out.decimal(Int.max)
        }
        #expect(String(decoding: padded, as: UTF8.self) == "0070\(Int.max)")
    }

    @Test("civil dates across leap years and centuries agree with Foundation")
    func dates() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for time in [0.0, 951_782_400.5, 1_709_164_800.999, 4_107_542_400.25, 1_796_121_180.123] {
            let ours = AccessLine.json(AccessRecord(time: time, client: "-", service: "s"))
            #expect(ours.contains(formatter.string(from: Date(timeIntervalSince1970: time))), "\(time)")
        }
    }

    @Test("what sampling never leaves out: 5xx, a request cut without an answer, a tcp connection no server took")
    func alwaysLogged() {
        var r = Self.record
        #expect(!r.alwaysLogged)
        r.status = 502
        #expect(r.alwaysLogged)
        r.status = nil
        #expect(r.alwaysLogged)
        #expect(AccessRecord(time: 0, client: "-", service: "t", proto: "TCP").alwaysLogged)
        #expect(!AccessRecord(time: 0, client: "-", service: "t", server: "a:1", proto: "TCP").alwaysLogged)
    }
}
