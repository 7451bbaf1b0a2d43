import Glibc
import SwiftVSConfigKit
/// How a virtual service checks its real servers (keepalived's `TCP_CHECK`, `HTTP_GET`, `MISC_CHECK`).
public struct HealthCheckConfig: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A TCP connect to the real server (or `port`) within `timeout`.
        case tcp
        /// An HTTP/1.1 GET of `path`; passes on a status in `expect_status` (and `digest`/`regex` when set).
        case http
        /// A command; exit status 0 within `timeout` passes. It gets the server in `SWIFTVS_SERVER_HOST`,
        /// `SWIFTVS_SERVER_PORT` and `SWIFTVS_SERVICE`.
        case exec
    }

    public var kind: Kind
    /// Seconds between checks of one server. Default 2.
    public var interval: Double = 2
    /// Seconds one check may take. Default 1; never more than `interval`.
    public var timeout: Double = 1
    /// Passed checks in a row that bring a down server back. Default 2.
    public var rise: Int = 2
    /// Failed checks in a row that take an up server out. Default 3.
    public var fall: Int = 3
    /// Each wait between checks is `interval` ± this share of it, so checks of many servers spread out. Default 0.1.
    public var jitter: Double = 0.1
    /// Start servers down until `rise` checks pass (keepalived `alpha`). Default false: start up.
    public var alpha: Bool = false
    /// Port to check instead of the server's own (tcp and http). Default: the server's port.
    public var port: Int?
    /// http: the path to GET. Default `/`.
    public var path: String = "/"
    /// http: the Host header. Default: the server's address.
    public var host: String?
    /// http: statuses that pass. Default 200-399.
    public var expectStatus: [StatusRange] = [StatusRange(200, 399)]
    /// http: the body's MD5 as 32 hex digits (keepalived `digest`, made with `genhash` or `md5sum`).
    public var digest: String?
    /// http: a regular expression the body must match.
    public var regex: String?
    /// exec: the command, run by `/bin/sh -c`.
    public var command: String?

    public init(kind: Kind) {
        self.kind = kind
    }
}

/// Inclusive range of HTTP statuses: `200`, `200-299`.
public struct StatusRange: Sendable, Equatable, CustomStringConvertible {
    public var low: Int
    public var high: Int

    public init(_ low: Int, _ high: Int) {
        self.low = low
        self.high = high
    }

    public func contains(_ status: Int) -> Bool { status >= self.low && status <= self.high }

    public var description: String { self.low == self.high ? "\(self.low)" : "\(self.low)-\(self.high)" }

    /// `200` or `200-299`; nil if it is neither or outside 100...599.
    public init?(parsing text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
            let low = Int(parts[0].trimmingSpaces()), let high = Int(parts[parts.count - 1].trimmingSpaces()),
            (100...599).contains(low), (100...599).contains(high), low <= high
        else { return nil }
        self.init(low, high)
    }
}

/// Passive ejection (http): a real server that fails `consecutive_failures` requests in a row (connect failure,
/// reset before a response, or a 5xx) leaves rotation at once, before the active checks notice. It returns
/// through the active checks (`rise` passes), so ejection needs `health`.
public struct EjectionConfig: Sendable, Equatable {
    /// Failures in a row that eject. Default 5.
    public var consecutiveFailures: Int = 5
    /// Most of the pool, in percent, that may be out of rotation (for any reason) for an ejection to happen.
    /// Default 50.
    public var maxPercent: Int = 50
    /// Count 5xx responses as failures, not just connect failures and resets. Default true.
    public var count5xx: Bool = true

    public init() {}
}

/// The admin API: runtime control (`swiftvs adm`) and Prometheus `/metrics`.
public struct AdminConfig: Sendable, Equatable {
    /// TCP address of the admin HTTP API. Default 127.0.0.1:9100; `listen: off` leaves only the socket. It serves
    /// reads (status, `/metrics`) to whoever can connect, and writes only with `token`. `admin: off` turns the
    /// whole API off.
    public var listen: Endpoint? = .loopback(port: 9100)
    /// When set, every TCP request needs `Authorization: Bearer TOKEN`, and writes over TCP are allowed.
    public var token: String?
    /// The Unix socket, the local control channel (`swiftvs adm` uses it): whoever may open the file may drive the
    /// director. Default: `AdminConfig.standardSocket` (`/run/swiftvs/admin.sock` for root); nil: no socket.
    public var socket: String? = AdminConfig.standardSocket
    /// The socket file's permissions. Default 0600: its owner only (0660 lets its group in).
    public var socketMode: Int = 0o600
    /// Host names, besides IP addresses and `localhost`, that TCP requests may carry (DNS-rebinding guard).
    public var names: [String] = []

    public init(
        listen: Endpoint? = .loopback(port: 9100), token: String? = nil, socket: String? = AdminConfig.standardSocket,
        socketMode: Int = 0o600, names: [String] = []
    ) {
        self.listen = listen
        self.token = token
        self.socket = socket
        self.socketMode = socketMode
        self.names = names
    }

    /// Where the admin socket is unless the config says: `/run/swiftvs/admin.sock` for root,
    /// `$XDG_RUNTIME_DIR/swiftvs/admin.sock` for other users, or `/tmp/swiftvs-UID/admin.sock` without it. The
    /// director and `swiftvs adm` work it out alike.
    public static var standardSocket: String {
        let uid = getuid()
        if uid == 0 { return "/run/swiftvs/admin.sock" }
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !runtime.isEmpty {
            return "\(runtime)/swiftvs/admin.sock"
        }
        return "/tmp/swiftvs-\(uid)/admin.sock"
    }
}
