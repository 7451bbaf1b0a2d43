/// An HTTP/1.1 chunked body (RFC 9112 §7.1) taken apart: the data of its chunks out, sizes, extensions and
/// trailers dropped. For an HTTP/2 stream, whose DATA frames carry the data alone.
public struct ChunkedBody: Sendable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        /// The last chunk and its trailers ended after `consumed` bytes of the input.
        case done(consumed: Int)
        case invalid(String)
    }

    enum Phase: Equatable {
        case size(value: Int, digits: Int, inExtension: Bool)
        case sizeLF(value: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// A trailer line (or the final empty line) and how long it is so far.
        case trailer(length: Int)
        case trailerLF(length: Int)
    }

    var phase = Phase.size(value: 0, digits: 0, inExtension: false)

    public init() {}

    /// Walks `input`, handing each run of chunk data to `data`.
    public mutating func feed(
        _ input: UnsafeRawBufferPointer, data: (UnsafeRawBufferPointer) -> Void
    ) -> Outcome {
        var i = 0
        let count = input.count
        while i < count {
            switch self.phase {
            case .data(let remaining):
                let take = min(remaining, count - i)
                data(UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                i += take
                self.phase = remaining == take ? .dataCR : .data(remaining: remaining - take)
                continue
            default:
                break
            }
            let byte = input[i]
            i += 1
            switch self.phase {
            case .size(let value, let digits, let inExtension):
                if byte == 0x0D {
                    guard digits > 0 else { return .invalid("chunk size missing") }
                    self.phase = .sizeLF(value: value)
                } else if inExtension {
                    continue
                } else if byte == 0x3B || byte == 0x20 || byte == 0x09 {
                    self.phase = .size(value: value, digits: digits, inExtension: true)
                } else if let digit = Self.hex(byte) {
                    guard digits < 15 else { return .invalid("chunk size too large") }
                    self.phase = .size(value: value << 4 | digit, digits: digits + 1, inExtension: false)
                } else {
                    return .invalid("bad chunk size")
                }
            case .sizeLF(let value):
                guard byte == 0x0A else { return .invalid("bad chunk size line") }
                self.phase = value == 0 ? .trailer(length: 0) : .data(remaining: value)
            case .dataCR:
                guard byte == 0x0D else { return .invalid("chunk data overran its size") }
                self.phase = .dataLF
            case .dataLF:
                guard byte == 0x0A else { return .invalid("chunk data overran its size") }
                self.phase = .size(value: 0, digits: 0, inExtension: false)
            case .trailer(let length):
                self.phase = byte == 0x0D ? .trailerLF(length: length) : .trailer(length: length + 1)
            case .trailerLF(let length):
                guard byte == 0x0A else { return .invalid("bad trailer line") }
                if length == 0 { return .done(consumed: i) }
                self.phase = .trailer(length: 0)
            case .data:
                break
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
