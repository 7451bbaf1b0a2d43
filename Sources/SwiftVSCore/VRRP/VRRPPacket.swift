/// A VRRP version 3 advertisement for IPv4 (RFC 5798 §5), as keepalived 2.2 (`vrrp_version 3`) sends it:
///
///     0                   1                   2                   3
///     |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
///     |(rsvd) |     Max Adver Int     |          Checksum             |
///     |                       IPv4 Address(es)                        |
///
/// The checksum covers an IPv4 pseudo-header (source, destination, zero, protocol 112, VRRP length) and the message.
public struct VRRPAdvert: Sendable, Equatable {
    public static let ipProtocol: UInt8 = 112
    /// 224.0.0.18, the VRRP multicast group.
    public static let multicastGroup: [UInt8] = [224, 0, 0, 18]

    public var vrid: UInt8
    public var priority: UInt8
    /// Centiseconds, 1...4095.
    public var maxAdvertInterval: UInt16
    /// IPv4 addresses, 4 bytes each.
    public var addresses: [[UInt8]]

    public init(vrid: UInt8, priority: UInt8, maxAdvertInterval: UInt16, addresses: [[UInt8]]) {
        self.vrid = vrid
        self.priority = priority
        self.maxAdvertInterval = maxAdvertInterval
        self.addresses = addresses
    }

    /// The message with its checksum, for a packet from `source` to `destination` (both IPv4, 4 bytes).
    public func encode(source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [
            0x31, self.vrid, self.priority, UInt8(self.addresses.count),
            UInt8((self.maxAdvertInterval >> 8) & 0x0F), UInt8(self.maxAdvertInterval & 0xFF), 0, 0,
        ]
        for address in self.addresses { out += address }
        let sum = Self.checksum(pseudoHeader(source: source, destination: destination, length: out.count) + out)
        out[6] = UInt8(sum >> 8)
        out[7] = UInt8(sum & 0xFF)
        return out
    }

    func pseudoHeader(source: [UInt8], destination: [UInt8], length: Int) -> [UInt8] {
        source + destination + [0, Self.ipProtocol, UInt8(length >> 8), UInt8(length & 0xFF)]
    }

    /// The Internet checksum (RFC 1071).
    public static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum & 0xFFFF)
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case tooShort(Int)
        case notIPv4
        case wrongProtocol(UInt8)
        case ttl(UInt8)
        case version(UInt8)
        case type(UInt8)
        case length(expected: Int, got: Int)
        case checksum
        case interval

        public var description: String {
            switch self {
            case .tooShort(let n): return "packet too short (\(n) bytes)"
            case .notIPv4: return "not IPv4"
            case .wrongProtocol(let p): return "IP protocol \(p), not 112"
            case .ttl(let ttl): return "TTL \(ttl), not 255 (RFC 5798 §7.1: it did not come from this link)"
            case .version(let v):
                return "VRRP version \(v); this instance speaks version 3 (keepalived: vrrp_version 3)"
            case .type(let t): return "VRRP type \(t), not 1 (advertisement)"
            case .length(let expected, let got): return "length \(got) does not match \(expected) for its address count"
            case .checksum: return "bad checksum (VRRPv3 sums an IPv4 pseudo-header first)"
            case .interval: return "advertisement interval 0"
            }
        }
    }

    /// Decodes a packet as a raw IP socket delivers it: the IPv4 header, then VRRP. Checks TTL 255, version 3,
    /// type 1, the length and the pseudo-header checksum. Returns the advert and the sender's address.
    public static func decode(ipPacket bytes: [UInt8]) -> Result<(advert: VRRPAdvert, source: [UInt8]), DecodeError> {
        guard bytes.count >= 20 else { return .failure(.tooShort(bytes.count)) }
        guard bytes[0] >> 4 == 4 else { return .failure(.notIPv4) }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard bytes.count >= headerLength + 8 else { return .failure(.tooShort(bytes.count)) }
        guard bytes[9] == Self.ipProtocol else { return .failure(.wrongProtocol(bytes[9])) }
        guard bytes[8] == 255 else { return .failure(.ttl(bytes[8])) }
        let source = Array(bytes[12..<16])
        let destination = Array(bytes[16..<20])
        let message = Array(bytes[headerLength...])
        return self.decode(message: message, source: source, destination: destination).map { ($0, source) }
    }

    /// Decodes the VRRP message alone (the UDP transport carries no IP header; its sender is the pseudo-header's).
    public static func decode(
        message: [UInt8], source: [UInt8], destination: [UInt8]
    ) -> Result<VRRPAdvert, DecodeError> {
        guard message.count >= 8 else { return .failure(.tooShort(message.count)) }
        guard message[0] >> 4 == 3 else { return .failure(.version(message[0] >> 4)) }
        guard message[0] & 0x0F == 1 else { return .failure(.type(message[0] & 0x0F)) }
        let count = Int(message[3])
        guard message.count == 8 + 4 * count else {
            return .failure(.length(expected: 8 + 4 * count, got: message.count))
        }
        let pseudo =
            source + destination + [0, Self.ipProtocol, UInt8(message.count >> 8), UInt8(message.count & 0xFF)]
        guard Self.checksum(pseudo + message) == 0 else { return .failure(.checksum) }
        let interval = UInt16(message[4] & 0x0F) << 8 | UInt16(message[5])
        guard interval > 0 else { return .failure(.interval) }
        let addresses = (0..<count).map { Array(message[8 + 4 * $0..<12 + 4 * $0]) }
        return .success(
            VRRPAdvert(vrid: message[1], priority: message[2], maxAdvertInterval: interval, addresses: addresses))
    }
}
