import Glibc

/// Why a listener could not bind, said for a person: which address, and what to do about it. Every listener of
/// SwiftVS (the director's services and admin API, IPTV, the demo's and `realserver`'s servers) reports with it.
public enum ListenFailure {
    /// `cannot listen on ADDRESS: WHY`; `code` is bind's errno when known, else `fallback` says what failed.
    public static func describe(_ address: String, errno code: Int32?, fallback: String) -> String {
        let why: String
        switch code {
        case EADDRINUSE?:
            why = "the address is in use: another process listens there (ss -ltnp shows which)"
        case EACCES?:
            why = "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE"
        case EADDRNOTAVAIL?:
            why = "no interface here has that address (a virtual IP needs net.ipv4.ip_nonlocal_bind=1)"
        case let code?:
            why = String(cString: strerror(code))
        case nil:
            why = fallback
        }
        return "cannot listen on \(address): \(why)"
    }

    /// Whether a TCP listener could bind `host:port` now (a socket bound and closed at once, SO_REUSEADDR as the
    /// listeners set it): nil if so, else bind's errno. For saying so before anything else starts.
    public static func probe(host: String, port: Int) -> Int32? {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        func bindTo<Address>(_ address: inout Address) -> Int32 {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<Address>.size))
                }
            }
        }
        let rc: Int32
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return EADDRNOTAVAIL }
            rc = bindTo(&address)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return EADDRNOTAVAIL }
            rc = bindTo(&address)
        }
        return rc == 0 ? nil : errno
    }
}
