/// One 188-byte MPEG-TS packet's header fields (ISO/IEC 13818-1 §2.4.3.2), read in place.
public struct TSPacketHeader: Sendable, Equatable {
    public static let size = 188
    public static let syncByte: UInt8 = 0x47

    public var pid: Int
    /// payload_unit_start_indicator: a PES or PSI section starts in this packet.
    public var unitStart: Bool
    public var hasAdaptation: Bool
    public var hasPayload: Bool
    public var continuityCounter: Int
    /// Adaptation field flags; false when there is no adaptation field.
    public var discontinuity: Bool
    public var randomAccess: Bool
    /// program_clock_reference in 27 MHz units, when the packet carries one.
    public var pcr: Int64?
    /// Where the payload starts in the packet (4 plus the adaptation field).
    public var payloadOffset: Int

    /// Parses the packet at `bytes[start..<start+188]`; nil when the sync byte is wrong or the adaptation field
    /// claims more bytes than the packet has.
    public init?(_ bytes: UnsafeRawBufferPointer, at start: Int = 0) {
        guard start + Self.size <= bytes.count, bytes[start] == Self.syncByte else { return nil }
        let b1 = bytes[start + 1], b2 = bytes[start + 2], b3 = bytes[start + 3]
        self.pid = Int(b1 & 0x1F) << 8 | Int(b2)
        self.unitStart = b1 & 0x40 != 0
        let control = (b3 >> 4) & 0x3
        self.hasAdaptation = control & 0x2 != 0
        self.hasPayload = control & 0x1 != 0
        self.continuityCounter = Int(b3 & 0x0F)
        self.discontinuity = false
        self.randomAccess = false
        self.pcr = nil
        self.payloadOffset = 4
        if self.hasAdaptation {
            let length = Int(bytes[start + 4])
            guard 5 + length <= Self.size else { return nil }
            self.payloadOffset = 5 + length
            if length > 0 {
                let flags = bytes[start + 5]
                self.discontinuity = flags & 0x80 != 0
                self.randomAccess = flags & 0x40 != 0
                if flags & 0x10 != 0, length >= 7 {
                    let p = start + 6
                    let base =
                        Int64(bytes[p]) << 25 | Int64(bytes[p + 1]) << 17 | Int64(bytes[p + 2]) << 9
                        | Int64(bytes[p + 3]) << 1 | Int64(bytes[p + 4] >> 7)
                    let ext = Int64(bytes[p + 4] & 0x01) << 8 | Int64(bytes[p + 5])
                    self.pcr = base * 300 + ext
                }
            }
        }
    }
}

/// 33-bit presentation timestamps (90 kHz) as carried in PES headers.
public enum TSTimestamp {
    public static let modulus: Int64 = 1 << 33
    public static let clock: Int64 = 90_000

    /// Reads the 5-byte PTS/DTS field at `p`; nil when its marker bits are wrong.
    public static func read(_ bytes: UnsafeRawBufferPointer, at p: Int) -> Int64? {
        guard p + 5 <= bytes.count, bytes[p] & 0x01 == 1, bytes[p + 2] & 0x01 == 1, bytes[p + 4] & 0x01 == 1 else {
            return nil
        }
        return Int64(bytes[p] >> 1 & 0x07) << 30 | Int64(bytes[p + 1]) << 22 | Int64(bytes[p + 2] >> 1) << 15
            | Int64(bytes[p + 3]) << 7 | Int64(bytes[p + 4] >> 1)
    }

    /// Writes `value` (mod 2^33) into the 5-byte field at `p`, keeping the field's 4-bit prefix.
    public static func write(_ value: Int64, into bytes: UnsafeMutableRawBufferPointer, at p: Int) {
        let v = ((value % Self.modulus) + Self.modulus) % Self.modulus
        bytes[p] = (bytes[p] & 0xF0) | UInt8((v >> 29) & 0x0E) | 0x01
        bytes[p + 1] = UInt8((v >> 22) & 0xFF)
        bytes[p + 2] = UInt8((v >> 14) & 0xFE) | 0x01
        bytes[p + 3] = UInt8((v >> 7) & 0xFF)
        bytes[p + 4] = UInt8((v << 1) & 0xFE) | 0x01
    }

    /// Writes a 27 MHz PCR (mod 2^33 × 300) into the 6-byte field at `p`.
    public static func writePCR(_ pcr: Int64, into bytes: UnsafeMutableRawBufferPointer, at p: Int) {
        let wrapped = ((pcr % (Self.modulus * 300)) + Self.modulus * 300) % (Self.modulus * 300)
        let base = wrapped / 300, ext = wrapped % 300
        bytes[p] = UInt8((base >> 25) & 0xFF)
        bytes[p + 1] = UInt8((base >> 17) & 0xFF)
        bytes[p + 2] = UInt8((base >> 9) & 0xFF)
        bytes[p + 3] = UInt8((base >> 1) & 0xFF)
        bytes[p + 4] = UInt8((base & 0x01) << 7) | 0x7E | UInt8((ext >> 8) & 0x01)
        bytes[p + 5] = UInt8(ext & 0xFF)
    }

    /// Where the PTS and DTS fields of a PES header starting at `p` are; nil when the packet does not start a PES.
    public static func pesTimestampOffsets(
        _ bytes: UnsafeRawBufferPointer, pes p: Int, end: Int
    ) -> (pts: Int?, dts: Int?) {
        guard p + 9 <= end, bytes[p] == 0, bytes[p + 1] == 0, bytes[p + 2] == 1 else { return (nil, nil) }
        let streamID = bytes[p + 3]
        // Streams without the optional PES header (padding, private_stream_2, ECM/EMM, DSMCC ...).
        if [0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF].contains(streamID) { return (nil, nil) }
        let flags = bytes[p + 7] >> 6
        let pts = flags & 0x2 != 0 && p + 14 <= end ? p + 9 : nil
        let dts = flags == 0x3 && p + 19 <= end ? p + 14 : nil
        return (pts, dts)
    }
}
