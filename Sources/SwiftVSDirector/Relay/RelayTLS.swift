// BoringSSL as swift-nio-ssl builds and links it (NIOSSL's own C module, which the package graph already holds).
import CNIOBoringSSL
import CSwiftVSLinux
import Glibc
import SwiftVSCore

/// TLS termination in the relay engine: a service's certificates as BoringSSL server contexts, for HTTP/1.1
/// clients of `tls` services (the NIO proxy keeps HTTP/2, client certificates, and whatever a connection needs of
/// it later, through a `TLSBridge`). NIOSSL's pipeline costs a TLS request about 1.5× HAProxy's CPU; here a
/// request is one `recv` of records, BoringSSL's work in place, and one `send`, as HAProxy and nginx do it.
///
/// Built with the service's `TLSFront` (at start and every reload) from the same files, so a replaced
/// certificate reaches new connections after SIGHUP; open connections keep the context they started with (each
/// holds this object).
final class RelayTLSContext: @unchecked Sendable {
    /// One context per certificate: the first is the default, SNI switches a connection to another.
    private let contexts: [OpaquePointer]
    private let names: ServerNameTable
    private let rejectUnknown: Bool
    /// ALPN: h2 when the service offers it (`HTTP2RelaySession`), else http/1.1.
    private let selectsHTTP1: Bool
    let selectsH2: Bool

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(
        certificates: [(cert: String, key: String)], names: ServerNameTable, rejectUnknown: Bool,
        minVersion: TLSConfig.Version, ciphers: String, alpn: [String]
    ) throws(Failure) {
        var contexts: [OpaquePointer] = []
        for (cert, key) in certificates {
            guard let context = SSL_CTX_new(TLS_method()) else { break }
            contexts.append(context)
            let minimum = minVersion == .v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION
            guard SSL_CTX_set_min_proto_version(context, UInt16(minimum)) == 1,
                SSL_CTX_set_max_proto_version(context, UInt16(TLS1_3_VERSION)) == 1,
                SSL_CTX_set_strict_cipher_list(context, ciphers) == 1,
                SSL_CTX_use_certificate_chain_file(context, cert) == 1,
                SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1,
                SSL_CTX_check_private_key(context) == 1
            else {
                ERR_clear_error()
                contexts.forEach { SSL_CTX_free($0) }
                throw Failure(description: "BoringSSL refused \(cert) with \(key)")
            }
            // SSL_write may take part of a buffer, and a retry may pass the rest from another address.
            _ = SSL_CTX_set_mode(
                context, UInt32(SSL_MODE_ENABLE_PARTIAL_WRITE) | UInt32(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
            let preferences = alpn.contains("h2") ? (alpn.contains("http/1.1") ? h2First : h2Only) : http1Protocol
            SSL_CTX_set_alpn_select_cb(context, relayALPNSelect, preferences.baseAddress)
        }
        guard !contexts.isEmpty else { throw Failure(description: "no certificate") }
        self.contexts = contexts
        self.names = names
        self.rejectUnknown = rejectUnknown
        self.selectsHTTP1 = alpn.contains("http/1.1")
        self.selectsH2 = alpn.contains("h2")
        if contexts.count > 1 || rejectUnknown {
            let me = Unmanaged.passUnretained(self).toOpaque()
            for context in contexts {
                _ = SSL_CTX_set_tlsext_servername_callback(context, relayServerName)
                _ = SSL_CTX_set_tlsext_servername_arg(context, me)
            }
        }
        if !self.selectsHTTP1 && !self.selectsH2 {
            for context in contexts { SSL_CTX_set_alpn_select_cb(context, nil, nil) }
        }
    }

    deinit {
        for context in self.contexts { SSL_CTX_free(context) }
    }

    /// The certificate for `name`: switches `ssl` to its context; false to refuse (`unknown_name: reject`).
    fileprivate func choose(_ ssl: OpaquePointer, name: String?) -> Bool {
        guard let index = self.names.certificate(for: name) else { return !self.rejectUnknown }
        if index > 0 && index < self.contexts.count { _ = SSL_set_SSL_CTX(ssl, self.contexts[index]) }
        return true
    }

    /// A server-side connection on `fd` (not yet handshaken: the first read does it).
    func connection(fd: Int32, loop: RelayLoop) -> RelayTLSConnection? {
        guard let ssl = SSL_new(self.contexts[0]) else { return nil }
        return RelayTLSConnection(ssl: ssl, fd: fd, loop: loop, context: self)
    }
}

/// SNI: the context object rides in the callback's argument.
private func relayServerName(
    _ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let arg else { return SSL_TLSEXT_ERR_OK }
    let context = Unmanaged<RelayTLSContext>.fromOpaque(arg).takeUnretainedValue()
    let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0).lowercased() }
    if context.choose(ssl, name: name) { return SSL_TLSEXT_ERR_OK }
    alert?.pointee = SSL_AD_UNRECOGNIZED_NAME
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// The server's ALPN preferences in wire form, for `SSL_select_next_proto`: `http/1.1` alone, `h2` first, or `h2`
/// alone, as the service's `tls.alpn` lists them (the callback's argument says which).
nonisolated(unsafe) private let http1Protocol = alpnWire(["http/1.1"])
nonisolated(unsafe) private let h2First = alpnWire(["h2", "http/1.1"])
nonisolated(unsafe) private let h2Only = alpnWire(["h2"])

private func alpnWire(_ names: [String]) -> UnsafeMutableRawBufferPointer {
    let bytes = names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
    let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    pointer.copyBytes(from: bytes)
    return pointer
}

/// ALPN: h2 before http/1.1, of those the service lists (`tls.alpn`) and the client offers; otherwise no ALPN
/// (HTTP/1.1 is what a client without it speaks).
private func relayALPNSelect(
    _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?, _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    var chosen: UnsafeMutablePointer<UInt8>?
    var chosenLength: UInt8 = 0
    let server = arg == h2First.baseAddress ? h2First : arg == h2Only.baseAddress ? h2Only : http1Protocol
    let result = SSL_select_next_proto(
        &chosen, &chosenLength, server.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(server.count),
        offered, offeredLength)
    guard result == OPENSSL_NPN_NEGOTIATED, let chosen else { return SSL_TLSEXT_ERR_NOACK }
    out?.pointee = UnsafePointer(chosen)
    outLength?.pointee = chosenLength
    return SSL_TLSEXT_ERR_OK
}

/// One client's TLS in the relay: BoringSSL over the socket through a BIO of its own that reads the socket in
/// one `recv` per batch of records (BoringSSL's socket BIO reads a record's header and body separately) and
/// writes each flight with one `send`.
final class RelayTLSConnection {
    let ssl: OpaquePointer
    let fd: Int32
    unowned let loop: RelayLoop
    /// Keeps the certificates' contexts (and the SNI callback's argument) alive while the connection is open.
    let context: RelayTLSContext
    /// Records read from the socket and not yet taken by BoringSSL: `cipher[cipherStart..<cipherEnd]`.
    fileprivate var cipher: UnsafeMutableRawPointer?
    fileprivate var cipherStart = 0
    fileprivate var cipherEnd = 0
    /// The last `recv` took less than it asked for: the socket had nothing more then.
    fileprivate var drained = false
    fileprivate var eof = false
    private var freed = false

    fileprivate init(ssl: OpaquePointer, fd: Int32, loop: RelayLoop, context: RelayTLSContext) {
        self.ssl = ssl
        self.fd = fd
        self.loop = loop
        self.context = context
        let bio = BIO_new(RelaySocketBIO.method)
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)
        SSL_set_accept_state(ssl)
    }

    deinit {
        self.free()
    }

    enum IO {
        case bytes(Int)
        /// The client closed its side (close_notify or EOF).
        case closed
        /// Not now: `.read` wants the socket readable, `.write` writable (a handshake may need either).
        case wouldBlock(wantsWrite: Bool)
        case failed
    }

    /// Plaintext from the client into `buffer` (driving the handshake first, as needed).
    func read(into buffer: UnsafeMutableRawPointer, count: Int) -> IO {
        let n = SSL_read(self.ssl, buffer, Int32(min(count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        return self.failure(n)
    }

    /// Plaintext to the client, `count` bytes from `buffer` (some of them may be taken).
    func write(_ buffer: UnsafeRawPointer, count: Int) -> IO {
        let n = SSL_write(self.ssl, buffer, Int32(min(count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        return self.failure(n)
    }

    private func failure(_ n: Int32) -> IO {
        let error = SSL_get_error(self.ssl, n)
        ERR_clear_error()
        switch error {
        case SSL_ERROR_WANT_READ: return .wouldBlock(wantsWrite: false)
        case SSL_ERROR_WANT_WRITE: return .wouldBlock(wantsWrite: true)
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL where self.eof: return .closed
        default: return .failed
        }
    }

    /// The handshake is over (until then `timeouts.header_read` runs).
    var isHandshaken: Bool { !self.freed && SSL_is_init_finished(self.ssl) == 1 }

    /// Nothing more to read now: BoringSSL holds no plaintext, the BIO no records, and the last `recv` drained
    /// the socket (edge-triggered epoll says when more comes).
    var isDrained: Bool {
        self.drained && self.cipherEnd == self.cipherStart && SSL_pending(self.ssl) == 0
    }

    /// close_notify, best effort (once), then the connection's memory; the descriptor is the owner's to close.
    func free() {
        guard !self.freed else { return }
        self.freed = true
        if SSL_is_init_finished(self.ssl) == 1 { _ = SSL_shutdown(self.ssl) }
        ERR_clear_error()
        SSL_free(self.ssl)
        if let cipher = self.cipher {
            self.loop.recycle(cipher)
            self.cipher = nil
        }
    }

    /// The BIO's read: records already read, else one `recv` of as many as the loop's buffer holds.
    fileprivate func bioRead(_ out: UnsafeMutableRawPointer, _ wanted: Int) -> Int32 {
        if self.cipherEnd == self.cipherStart {
            if self.cipher == nil { self.cipher = self.loop.takeBuffer() }
            let room = RelayLoop.bufferSize
            let n = recv(self.fd, self.cipher!, room, 0)
            if n > 0 {
                self.cipherStart = 0
                self.cipherEnd = n
                self.drained = n < room
            } else {
                self.loop.recycle(self.cipher!)
                self.cipher = nil
                if n == 0 {
                    self.eof = true
                    return 0
                }
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { self.drained = true }
                return -1
            }
        }
        let count = min(wanted, self.cipherEnd - self.cipherStart)
        out.copyMemory(from: self.cipher! + self.cipherStart, byteCount: count)
        self.cipherStart += count
        if self.cipherStart == self.cipherEnd {
            self.loop.recycle(self.cipher!)
            self.cipher = nil
            self.cipherStart = 0
            self.cipherEnd = 0
        }
        return Int32(count)
    }
}

/// The BIO under every relay TLS connection: its data is the `RelayTLSConnection`.
private enum RelaySocketBIO {
    nonisolated(unsafe) static let method: OpaquePointer = {
        let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "swiftvs-relay")!
        _ = BIO_meth_set_read(method, bioRead)
        _ = BIO_meth_set_write(method, bioWrite)
        _ = BIO_meth_set_ctrl(method, bioControl)
        return method
    }()

    static func connection(_ bio: OpaquePointer?) -> RelayTLSConnection? {
        guard let bio, let data = BIO_get_data(bio) else { return nil }
        return Unmanaged<RelayTLSConnection>.fromOpaque(data).takeUnretainedValue()
    }
}

private func bioRead(_ bio: OpaquePointer?, _ out: UnsafeMutablePointer<CChar>?, _ length: Int32) -> Int32 {
    BIO_clear_retry_flags(bio)
    guard let out, length > 0, let connection = RelaySocketBIO.connection(bio) else { return 0 }
    let n = connection.bioRead(out, Int(length))
    if n < 0 && connection.drained { BIO_set_retry_read(bio) }
    return n
}

private func bioWrite(_ bio: OpaquePointer?, _ data: UnsafePointer<CChar>?, _ length: Int32) -> Int32 {
    BIO_clear_retry_flags(bio)
    guard let data, length > 0, let connection = RelaySocketBIO.connection(bio) else { return 0 }
    while true {
        let n = send(connection.fd, data, Int(length), Int32(MSG_NOSIGNAL))
        if n >= 0 { return Int32(n) }
        if errno == EINTR { continue }
        if errno == EAGAIN || errno == EWOULDBLOCK { BIO_set_retry_write(bio) }
        return -1
    }
}

private func bioControl(_ bio: OpaquePointer?, _ command: Int32, _ larg: Int, _ parg: UnsafeMutableRawPointer?) -> Int {
    command == BIO_CTRL_FLUSH ? 1 : 0
}
