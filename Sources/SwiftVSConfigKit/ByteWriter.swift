/// Bytes written straight into memory reserved for them, with no intermediate strings and no capacity check per
/// byte: the access log's lines (one per request, on the event loop's thread). Appended to an array by
/// `[UInt8].append(upTo:_:)`, which reserves the room and keeps what was written. Writing past the room reserved
/// stops writing (the line comes out short), it never writes beyond it.
public struct ByteWriter: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    @usableFromInline let capacity: Int
    @usableFromInline var written = 0
    /// Bytes written so far.
    public var count: Int { self.written }

    @inlinable init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inlinable public mutating func byte(_ value: UInt8) {
        guard self.count < self.capacity else { return }
        self.base[self.count] = value
        self.written &+= 1
    }

    @inlinable public mutating func bytes(_ raw: UnsafeRawBufferPointer) {
        let n = min(raw.count, self.capacity - self.count)
        guard n > 0, let source = raw.baseAddress else { return }
        (self.base + self.count).update(from: source.assumingMemoryBound(to: UInt8.self), count: n)
        self.written &+= n
    }

    /// A literal's bytes (`" service="`).
    @inlinable public mutating func literal(_ literal: StaticString) {
        self.bytes(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// A string's UTF-8.
    @inlinable public mutating func bytes(_ text: String) {
        var text = text
        text.withUTF8 { self.bytes(UnsafeRawBufferPointer($0)) }
    }

    @inlinable public mutating func bytes(_ array: [UInt8]) {
        array.withUnsafeBytes { self.bytes($0) }
    }

    /// `value` in decimal (negative as 0), zero-padded to `width`.
    @inlinable public mutating func decimal(_ value: Int, width: Int = 1) {
        var v = UInt(max(0, value))
        var digits = 1
        var limit: UInt = 10
        while v >= limit && digits < 20 {
            digits += 1
            if limit > UInt.max / 10 { break }
            limit *= 10
        }
        let total = max(digits, width)
        guard self.count + total <= self.capacity else { return }
        var at = self.count + total
        for _ in 0..<total {
            at -= 1
            self.base[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
        }
        self.written += total
    }
}

extension Array where Element == UInt8 {
    /// Appends what `body` writes, at most `maxCount` bytes.
    @inlinable public mutating func append(upTo maxCount: Int, _ body: (inout ByteWriter) -> Void) {
        let start = self.count
        self.append(contentsOf: repeatElement(0, count: maxCount))
        let written = self.withUnsafeMutableBufferPointer { buffer in
            var writer = ByteWriter(base: buffer.baseAddress! + start, capacity: maxCount)
            body(&writer)
            return writer.count
        }
        self.removeLast(maxCount - written)
    }
}
