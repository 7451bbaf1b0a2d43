import Foundation
import SwiftVSCore
import SwiftVSSystem

#if canImport(Glibc)
import Glibc
#endif

/// Adds and removes the virtual IPs (with `ip addr`) and announces them with gratuitous ARP.
enum VirtualAddresses {
    @discardableResult
    static func run(_ argv: [String]) -> Int32 { Spawn.run(argv) }

    static func add(_ vip: VirtualIP, interface: String) -> Bool {
        self.run(["ip", "addr", "replace", vip.description, "dev", interface]) == 0
    }

    static func remove(_ vip: VirtualIP, interface: String) {
        self.run(["ip", "addr", "del", vip.description, "dev", interface])
        // Left on the loopback by a handover of a director that then crashed.
        self.run(["ip", "addr", "del", "\(vip.address.map(String.init).joined(separator: "."))/32", "dev", "lo"])
    }

    /// Moves the address from the interface to the loopback (as a /32), after making the interface answer ARP only
    /// for its own addresses: the address leaves the wire but stays local. Returns the interface's previous
    /// `arp_ignore`, to restore later.
    static func handOver(_ vip: VirtualIP, interface: String) -> String? {
        let path = "/proc/sys/net/ipv4/conf/\(interface)/arp_ignore"
        let previous = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        try? "1".write(toFile: path, atomically: false, encoding: .utf8)
        self.run(["ip", "addr", "replace", "\(vip.address.map(String.init).joined(separator: "."))/32", "dev", "lo"])
        self.run(["ip", "addr", "del", vip.description, "dev", interface])
        return previous
    }

    /// The end of a handover: the address leaves the loopback and the interface's ARP setting is restored.
    static func finishHandOver(_ vip: VirtualIP, interface: String, arpIgnore: String?) {
        self.run(["ip", "addr", "del", "\(vip.address.map(String.init).joined(separator: "."))/32", "dev", "lo"])
        if let arpIgnore {
            try? arpIgnore.write(
                toFile: "/proc/sys/net/ipv4/conf/\(interface)/arp_ignore", atomically: false, encoding: .utf8)
        }
    }

    /// One gratuitous ARP (an ARP request with sender = target = the VIP, to broadcast), as keepalived sends.
    static func gratuitousARP(_ vip: VirtualIP, interface: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/sys/class/net/\(interface)/address") else { return false }
        let mac = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").compactMap {
            UInt8($0, radix: 16)
        }
        guard mac.count == 6 else { return false }
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x0806).bigEndian))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        var frame = broadcast + mac + [0x08, 0x06]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01] + mac + vip.address + broadcast + vip.address
        // struct sockaddr_ll (linux/if_packet.h, not in Glibc's module): family u16, protocol be16, ifindex i32,
        // hatype u16, pkttype u8, halen u8, addr[8]: 20 bytes.
        var address = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { address.replaceSubrange(0..<2, with: $0) }
        address[2] = 0x08
        address[3] = 0x06
        withUnsafeBytes(of: Int32(if_nametoindex(interface))) { address.replaceSubrange(4..<8, with: $0) }
        address[11] = 6
        address.replaceSubrange(12..<18, with: broadcast)
        let sent = frame.withUnsafeBytes { bytes in
            address.withUnsafeBytes { raw in
                sendto(
                    fd, bytes.baseAddress, bytes.count, 0, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), 20)
            }
        }
        return sent == frame.count
    }
}
