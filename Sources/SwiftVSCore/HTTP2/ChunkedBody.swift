/// An HTTP/1.1 chunked body (RFC 9112 §7.1) walked once: where it ends (`HTTPResponseScanner`, for the exchange's
/// framing) and, for whoever wants it, the data of its chunks (`HTTP2Response`, whose DATA frames carry the data
/// alone); sizes, extensions and trailers are dropped. As the relay has always read chunked bodies: a bare LF ends a
/// size line, a trailer line or chunk data as CRLF does.
public struct ChunkedBody: Sendable, Equatable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        /// The last chunk and its trailers ended after `consumed` bytes of the input.
        case done(consumed: Int)
        case invalid(String)
    }

    enum Phase: Equatable {
        case size(value: Int, digits: Int, inExtension: Bool, sawCR: Bool)
        case data(remaining: Int)
        case dataEnd(sawCR: Bool)
        /// A trailer line (or the final empty line) and how long it is so far.
        case trailer(lineLength: Int)
    }

    var phase = Phase.size(value: 0, digits: 0, inExtension: false, sawCR: false)

    public init() {}

    /// Walks `input`, handing each run of chunk data to `data`.
    @inline(__always)
    public mutating func feed(_ input: UnsafeRawBufferPointer, data: (UnsafeRawBufferPointer) -> Void) -> Outcome {
        var i = 0
        let count = input.count
        while i < count {
            switch self.phase {
            case .data(let remaining):
                let take = min(remaining, count - i)
                data(UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                i += take
                self.phase = remaining == take ? .dataEnd(sawCR: false) : .data(remaining: remaining - take)
            case .dataEnd(let sawCR):
                let b = input[i]
                i += 1
                if b == 0x0D && !sawCR {
                    self.phase = .dataEnd(sawCR: true)
                } else if b == 0x0A {
                    self.phase = .size(value: 0, digits: 0, inExtension: false, sawCR: false)
                } else {
                    return .invalid("chunk data not followed by CRLF")
                }
            case .size(var value, var digits, var inExtension, var sawCR):
                while i < count {
                    let b = input[i]
                    i += 1
                    if b == 0x0A {
                        guard digits > 0 else { return .invalid("empty chunk size") }
                        self.phase = value == 0 ? .trailer(lineLength: 0) : .data(remaining: value)
                        break
                    }
                    if b == 0x0D {
                        sawCR = true
                        continue
                    }
                    if sawCR { return .invalid("bad chunk size line") }
                    if inExtension { continue }
                    if b == 0x3B || b == 0x20 || b == 0x09 {
                        inExtension = true
                        continue
                    }
                    guard let d = Self.hex(b) else { return .invalid("bad chunk size digit") }
                    guard digits < 15 else { return .invalid("chunk size too large") }
                    value = value * 16 + d
                    digits += 1
                }
                if case .size = self.phase {
                    self.phase = .size(value: value, digits: digits, inExtension: inExtension, sawCR: sawCR)
                }
            case .trailer(var lineLength):
                while i < count {
                    let b = input[i]
                    i += 1
                    if b == 0x0A {
                        if lineLength == 0 { return .done(consumed: i) }
                        lineLength = 0
                    } else if b != 0x0D {
                        lineLength += 1
                    }
                }
                self.phase = .trailer(lineLength: lineLength)
            }
        }
        return .needMore
    }

    @inline(__always)
    static func hex(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: return Int(byte - 0x30)
        case 0x41...0x46: return Int(byte - 0x41 + 10)
        case 0x61...0x66: return Int(byte - 0x61 + 10)
        default: return nil
        }
    }
}
