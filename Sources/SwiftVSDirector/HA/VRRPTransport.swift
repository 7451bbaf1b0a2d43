import SwiftVSConfigKit
import SwiftVSCore

#if canImport(Glibc)
import Glibc
#endif

/// Sends and receives VRRP messages for one instance. `fd` is polled by the HA loop.
protocol VRRPTransport: AnyObject {
    var fd: Int32 { get }
    /// The address the adverts come from (the pseudo-header's source).
    var sourceAddress: [UInt8] { get }
    func send(_ advert: VRRPAdvert) throws
    /// One received message, decoded and checked; nil if nothing was waiting.
    func receive() -> Result<(advert: VRRPAdvert, source: [UInt8]), VRRPAdvert.DecodeError>?
    func close()
}

struct HAError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    static func errno(_ what: String) -> HAError {
        let code = Glibc.errno
        var text = "\(what): \(String(cString: strerror(code)))"
        if code == EPERM || code == EACCES {
            text +=
                " (the raw VRRP transport needs root or CAP_NET_RAW and CAP_NET_ADMIN; to try HA without them use "
                + "ha.transport: udp)"
        }
        return HAError(text)
    }
}

/// The IPv4 address of an interface.
func interfaceAddress(_ name: String) -> [UInt8]? {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return nil }
    defer { freeifaddrs(list) }
    var cursor: UnsafeMutablePointer<ifaddrs>? = first
    while let entry = cursor {
        defer { cursor = entry.pointee.ifa_next }
        guard String(cString: entry.pointee.ifa_name) == name, let addr = entry.pointee.ifa_addr,
            addr.pointee.sa_family == sa_family_t(AF_INET)
        else { continue }
        let value = addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
        return withUnsafeBytes(of: value) { Array($0) }
    }
    return nil
}

func socketAddress(_ address: [UInt8], port: Int = 0) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = in_port_t(UInt16(port).bigEndian)
    withUnsafeMutableBytes(of: &sa.sin_addr.s_addr) { $0.copyBytes(from: address) }
    return sa
}

func setOption<T>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T) -> Bool {
    var v = value
    return setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<T>.size)) == 0
}

/// IP protocol 112 on an interface, as keepalived: TTL 255, TOS 0xc0, to 224.0.0.18 (joined on the interface) or
/// to unicast peers.
final class RawVRRPTransport: VRRPTransport {
    let fd: Int32
    let sourceAddress: [UInt8]
    let destinations: [[UInt8]]

    init(interface: String, unicastPeers: [[UInt8]]) throws {
        guard let address = interfaceAddress(interface) else {
            throw HAError("interface \(interface) has no IPv4 address (ha.instances[].interface)")
        }
        self.sourceAddress = address
        self.destinations = unicastPeers.isEmpty ? [VRRPAdvert.multicastGroup] : unicastPeers
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(VRRPAdvert.ipProtocol))
        guard fd >= 0 else { throw HAError.errno("socket(AF_INET, SOCK_RAW, 112)") }
        self.fd = fd
        var ok =
            setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, UInt8(255))
            && setOption(fd, Int32(IPPROTO_IP), IP_TTL, Int32(255))
            && setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, UInt8(0))
            && setOption(fd, Int32(IPPROTO_IP), IP_TOS, Int32(0xC0))
        var interfaceAddr = in_addr()
        withUnsafeMutableBytes(of: &interfaceAddr.s_addr) { $0.copyBytes(from: address) }
        ok = ok && setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, interfaceAddr)
        ok =
            ok
            && interface.withCString { name in
                setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1)) == 0
            }
        var group = ip_mreq()
        withUnsafeMutableBytes(of: &group.imr_multiaddr.s_addr) { $0.copyBytes(from: VRRPAdvert.multicastGroup) }
        group.imr_interface = interfaceAddr
        ok = ok && setOption(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, group)
        guard ok else {
            let error = HAError.errno("setting up the VRRP socket on \(interface)")
            Glibc.close(fd)
            throw error
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    func send(_ advert: VRRPAdvert) throws {
        for destination in self.destinations {
            let message = advert.encode(source: self.sourceAddress, destination: destination)
            var to = socketAddress(destination)
            let sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(
                            self.fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            if sent < 0 { throw HAError.errno("sending a VRRP advert to \(VRRPStateMachine.format(destination))") }
        }
    }

    func receive() -> Result<(advert: VRRPAdvert, source: [UInt8]), VRRPAdvert.DecodeError>? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, 2048, 0) }
        guard n > 0 else { return nil }
        return VRRPAdvert.decode(ipPacket: Array(buffer[0..<n]))
    }

    func close() { Glibc.close(self.fd) }
}

/// VRRP messages in UDP datagrams between SwiftVS directors: no privileges needed. The pseudo-header uses the
/// sender's address and 224.0.0.18, so the same checksum code serves.
final class UDPVRRPTransport: VRRPTransport {
    let fd: Int32
    let sourceAddress: [UInt8]
    let peers: [Endpoint]

    init(listen: Endpoint, peers: [Endpoint]) throws {
        guard !listen.isIPv6, peers.allSatisfy({ !$0.isIPv6 }) else { throw HAError("the udp transport is IPv4 only") }
        self.sourceAddress = listen.addressBytes
        self.peers = peers
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw HAError.errno("socket(AF_INET, SOCK_DGRAM)") }
        self.fd = fd
        _ = setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1))
        var sa = socketAddress(listen.addressBytes, port: listen.port)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let error = HAError.errno("binding the VRRP udp transport to \(listen) (ha.instances[].udp.listen)")
            Glibc.close(fd)
            throw error
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    func send(_ advert: VRRPAdvert) throws {
        let message = advert.encode(source: self.sourceAddress, destination: VRRPAdvert.multicastGroup)
        for peer in self.peers {
            var to = socketAddress(peer.addressBytes, port: peer.port)
            _ = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(
                            self.fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
    }

    func receive() -> Result<(advert: VRRPAdvert, source: [UInt8]), VRRPAdvert.DecodeError>? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buffer.withUnsafeMutableBytes { bytes in
            withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(self.fd, bytes.baseAddress, 2048, 0, $0, &length)
                }
            }
        }
        guard n > 0 else { return nil }
        let source = withUnsafeBytes(of: from.sin_addr.s_addr) { Array($0) }
        return VRRPAdvert.decode(message: Array(buffer[0..<n]), source: source, destination: VRRPAdvert.multicastGroup)
            .map { ($0, source) }
    }

    func close() { Glibc.close(self.fd) }
}
