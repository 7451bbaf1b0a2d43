/// A decoded header list: every name and value in one byte array, each field a pair of ranges into it. Kept and
/// cleared per header block, so that decoding allocates nothing once it has grown.
public struct HeaderList: Sendable {
    public var bytes: [UInt8] = []
    public var fields: [(name: Range<Int>, value: Range<Int>)] = []
    /// RFC 9113 §6.5.2's size: each field's name and value plus 32.
    public var size = 0

    public init() {}

    public mutating func removeAll() {
        self.bytes.removeAll(keepingCapacity: true)
        self.fields.removeAll(keepingCapacity: true)
        self.size = 0
    }

    mutating func append(name: some Collection<UInt8>, value: some Collection<UInt8>) {
        let nameStart = self.bytes.count
        self.bytes.append(contentsOf: name)
        let valueStart = self.bytes.count
        self.bytes.append(contentsOf: value)
        self.fields.append((nameStart..<valueStart, valueStart..<self.bytes.count))
        self.size += self.bytes.count - nameStart + 32
    }

    public func name(_ index: Int) -> ArraySlice<UInt8> { self.bytes[self.fields[index].name] }
    public func value(_ index: Int) -> ArraySlice<UInt8> { self.bytes[self.fields[index].value] }
}

/// An HPACK (RFC 7541) decoding failure: a COMPRESSION_ERROR for the connection.
public struct HPACKError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// RFC 7541's decoder: the static table, a dynamic table bounded by what this end said
/// (SETTINGS_HEADER_TABLE_SIZE, 4096 by default), integers and Huffman-coded strings.
public struct HPACKDecoder: Sendable {
    /// The dynamic table, oldest first (index 62 is its last element).
    private var table: [(name: [UInt8], value: [UInt8])] = []
    private var tableSize = 0
    private var maxTableSize: Int
    private let limit: Int

    public init(limit: Int = 4096) {
        self.limit = limit
        self.maxTableSize = limit
    }

    /// Decodes one header block into `headers` (appending).
    public mutating func decode(_ block: UnsafeRawBufferPointer, into headers: inout HeaderList) throws(HPACKError) {
        var at = 0
        var fieldSeen = false
        while at < block.count {
            let byte = block[at]
            if byte & 0x80 != 0 {
                // §6.1 indexed field.
                let index = try Self.integer(block, &at, prefix: 7)
                try self.withEntry(index) { headers.append(name: $0, value: $1) }
                fieldSeen = true
            } else if byte & 0xC0 == 0x40 {
                // §6.2.1 literal with incremental indexing: into the list, then a copy into the table.
                let index = try Self.integer(block, &at, prefix: 6)
                try self.literal(block, &at, nameIndex: index, into: &headers)
                let field = headers.fields[headers.fields.count - 1]
                self.insert(name: Array(headers.bytes[field.name]), value: Array(headers.bytes[field.value]))
                fieldSeen = true
            } else if byte & 0xE0 == 0x20 {
                // §6.3 dynamic table size update: only before the block's first field.
                guard !fieldSeen else { throw HPACKError("table size update after a field") }
                let size = try Self.integer(block, &at, prefix: 5)
                guard size <= self.limit else { throw HPACKError("table size \(size) over \(self.limit)") }
                self.maxTableSize = size
                self.evict(to: size)
            } else {
                // §6.2.2 without indexing, §6.2.3 never indexed: both 4-bit prefixes.
                let index = try Self.integer(block, &at, prefix: 4)
                try self.literal(block, &at, nameIndex: index, into: &headers)
                fieldSeen = true
            }
        }
    }

    private func withEntry(
        _ index: Int, _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void
    ) throws(HPACKError) {
        if index >= 1 && index < HPACKStatic.count {
            let entry = HPACKStatic.entries[index]
            return body(entry.name[...], entry.value[...])
        }
        let dynamic = index - HPACKStatic.count
        guard index != 0, dynamic < self.table.count else { throw HPACKError("no table entry \(index)") }
        let entry = self.table[self.table.count - 1 - dynamic]
        body(entry.name[...], entry.value[...])
    }

    /// A literal field, its name from a table or the block, decoded straight into the list.
    private func literal(
        _ block: UnsafeRawBufferPointer, _ at: inout Int, nameIndex: Int, into headers: inout HeaderList
    ) throws(HPACKError) {
        let nameStart = headers.bytes.count
        if nameIndex == 0 {
            try Self.string(block, &at, into: &headers.bytes)
        } else {
            try self.withEntry(nameIndex) { entryName, _ in headers.bytes.append(contentsOf: entryName) }
        }
        let valueStart = headers.bytes.count
        try Self.string(block, &at, into: &headers.bytes)
        headers.fields.append((nameStart..<valueStart, valueStart..<headers.bytes.count))
        headers.size += headers.bytes.count - nameStart + 32
    }

    private mutating func insert(name: [UInt8], value: [UInt8]) {
        let size = name.count + value.count + 32
        // §4.4: an entry larger than the table empties it and is not added.
        self.evict(to: self.maxTableSize - size)
        guard size <= self.maxTableSize else { return }
        self.table.append((name, value))
        self.tableSize += size
    }

    private mutating func evict(to size: Int) {
        var drop = 0
        while self.tableSize > max(0, size) && drop < self.table.count {
            self.tableSize -= self.table[drop].name.count + self.table[drop].value.count + 32
            drop += 1
        }
        if drop > 0 { self.table.removeFirst(drop) }
    }

    /// §5.1: an integer with an N-bit prefix.
    static func integer(_ block: UnsafeRawBufferPointer, _ at: inout Int, prefix: Int) throws(HPACKError) -> Int {
        let mask = (1 << prefix) - 1
        var value = Int(block[at]) & mask
        at += 1
        guard value == mask else { return value }
        var shift = 0
        while true {
            guard at < block.count else { throw HPACKError("truncated integer") }
            let byte = Int(block[at])
            at += 1
            value += (byte & 0x7F) << shift
            shift += 7
            guard shift <= 28 else { throw HPACKError("integer too large") }
            if byte & 0x80 == 0 { return value }
        }
    }

    /// §5.2: a string literal, Huffman-coded or not, appended to `out`.
    static func string(_ block: UnsafeRawBufferPointer, _ at: inout Int, into out: inout [UInt8]) throws(HPACKError) {
        guard at < block.count else { throw HPACKError("truncated string") }
        let huffman = block[at] & 0x80 != 0
        let length = try Self.integer(block, &at, prefix: 7)
        guard length <= block.count - at else { throw HPACKError("string past the block's end") }
        let bytes = UnsafeRawBufferPointer(rebasing: block[at..<(at + length)])
        at += length
        if huffman {
            try Huffman.decode(bytes, into: &out)
        } else {
            out.append(contentsOf: bytes)
        }
    }
}

/// RFC 7541 §5.2's Huffman decoding, a bit at a time through a tree built once from `HuffmanCode`.
enum Huffman {
    /// Node `i` has children `tree[2i]` (bit 0) and `tree[2i+1]` (bit 1): another node's index, or a symbol as
    /// `-(symbol + 1)`, or 0 for no code.
    static let tree: [Int32] = {
        var tree = [Int32](repeating: 0, count: 2)
        var nodes = 1
        for symbol in 0..<257 {
            let code = HuffmanCode.codes[symbol]
            let length = Int(HuffmanCode.lengths[symbol])
            var node = 0
            for bit in stride(from: length - 1, through: 0, by: -1) {
                let slot = 2 * node + Int(code >> UInt32(bit) & 1)
                if bit == 0 {
                    tree[slot] = -Int32(symbol + 1)
                } else {
                    if tree[slot] == 0 {
                        tree[slot] = Int32(nodes)
                        nodes += 1
                        tree.append(contentsOf: [0, 0])
                    }
                    node = Int(tree[slot])
                }
            }
        }
        return tree
    }()

    static func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(HPACKError) {
        let tree = Self.tree
        var node = 0
        // Bits since the last symbol, and whether all were 1 (padding is EOS's prefix, §5.2).
        var pending = 0
        var allOnes = true
        for byte in bytes {
            for bit in stride(from: 7, through: 0, by: -1) {
                let one = Int(byte >> UInt8(bit) & 1)
                let next = tree[2 * node + one]
                pending += 1
                allOnes = allOnes && one == 1
                if next < 0 {
                    let symbol = Int(-next - 1)
                    guard symbol != 256 else { throw HPACKError("EOS in a Huffman string") }
                    out.append(UInt8(symbol))
                    node = 0
                    pending = 0
                    allOnes = true
                } else if next == 0 {
                    throw HPACKError("bad Huffman code")
                } else {
                    node = Int(next)
                }
            }
        }
        guard pending < 8, allOnes else { throw HPACKError("bad Huffman padding") }
    }
}

/// RFC 7541 Appendix A, indexed from 1.
enum HPACKStatic {
    static let count = 62
    static let entries: [(name: [UInt8], value: [UInt8])] = [
        ("", ""), (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
        (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
        (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"), (":status", "404"),
        (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"), ("accept-language", ""),
        ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
        ("authorization", ""), ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""),
        ("content-language", ""), ("content-length", ""), ("content-location", ""), ("content-range", ""),
        ("content-type", ""), ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""),
        ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""),
        ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
        ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""),
        ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""), ("set-cookie", ""),
        ("strict-transport-security", ""), ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""),
        ("via", ""), ("www-authenticate", ""),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }
}

/// The encoding side, as a response needs it: `:status` indexed when the static table has it, every other field a
/// literal without indexing (§6.2.2), its name from the static table when there. No dynamic table, so the peer's
/// SETTINGS_HEADER_TABLE_SIZE never matters; no Huffman coding (loopback and LAN bytes are cheaper than the CPU).
public enum HPACKEncoder {
    /// `:status`.
    public static func status(_ code: Int, into out: inout [UInt8]) {
        switch code {
        case 200: out.append(0x88)
        case 204: out.append(0x89)
        case 206: out.append(0x8A)
        case 304: out.append(0x8B)
        case 400: out.append(0x8C)
        case 404: out.append(0x8D)
        case 500: out.append(0x8E)
        default:
            out.append(0x08)  // without indexing, name :status (8)
            out.append(3)
            out.append(UInt8(48 + code / 100 % 10))
            out.append(UInt8(48 + code / 10 % 10))
            out.append(UInt8(48 + code % 10))
        }
    }

    /// A field; its name goes out in lowercase (§8.2.1), as HTTP/1.1 may have had it in any case.
    public static func field(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if let index = Self.staticName(name) {
            Self.integer(index, prefix: 4, first: 0x00, into: &out)
        } else {
            out.append(0x00)
            Self.integer(name.count, prefix: 7, first: 0x00, into: &out)
            for byte in name { out.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
        }
        Self.integer(value.count, prefix: 7, first: 0x00, into: &out)
        out.append(contentsOf: value)
    }

    static func integer(_ value: Int, prefix: Int, first: UInt8, into out: inout [UInt8]) {
        let mask = (1 << prefix) - 1
        if value < mask {
            out.append(first | UInt8(value))
            return
        }
        out.append(first | UInt8(mask))
        var rest = value - mask
        while rest >= 128 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    /// The static table's index of the names real servers send most (in any case).
    static func staticName(_ name: UnsafeRawBufferPointer) -> Int? {
        func eq(_ s: StaticString) -> Bool { HTTP2Response.equalsLower(name, s) }
        switch name.count {
        case 3: return eq("age") ? 21 : eq("via") ? 60 : nil
        case 4: return eq("date") ? 33 : eq("etag") ? 34 : eq("vary") ? 59 : eq("link") ? 45 : nil
        case 6: return eq("server") ? 54 : nil
        case 7: return eq("expires") ? 36 : nil
        case 8: return eq("location") ? 46 : nil
        case 10: return eq("set-cookie") ? 55 : nil
        case 12: return eq("content-type") ? 31 : nil
        case 13:
            return eq("cache-control")
                ? 24
                : eq("last-modified")
                    ? 44
                    : eq("accept-ranges")
                        ? 18
                        : eq("content-range") ? 30 : nil
        case 14: return eq("content-length") ? 28 : nil
        case 16: return eq("content-encoding") ? 26 : nil
        default: return nil
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
