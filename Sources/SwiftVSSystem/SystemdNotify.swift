#if canImport(Glibc)
import Glibc
#endif

/// systemd's readiness protocol (sd_notify(3)), for `Type=notify` units: a datagram to `$NOTIFY_SOCKET` (a path,
/// or `@name` in the abstract namespace). Without the variable (not under systemd) every call does nothing.
public enum SystemdNotify {
    /// The service is up: its listeners are bound.
    public static func ready(status: String? = nil) {
        self.send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// A reload begins (then `ready` when it ends); systemd wants the monotonic clock with it.
    public static func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let micros = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        self.send(["RELOADING=1", "MONOTONIC_USEC=\(micros)"])
    }

    /// The service is stopping (draining).
    public static func stopping(status: String? = nil) {
        self.send(["STOPPING=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    public static func status(_ text: String) {
        self.send(["STATUS=\(text)"])
    }

    /// Sends `lines`; false when there is no socket to send to or the send failed.
    @discardableResult
    public static func send(_ lines: [String]) -> Bool {
        guard let path = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !path.isEmpty else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // the abstract namespace
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let message = Array((lines.joined(separator: "\n") + "\n").utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), target, length) }
            }
        }
        return sent == message.count
    }
}
