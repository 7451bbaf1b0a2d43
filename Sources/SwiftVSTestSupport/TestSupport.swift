import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Helpers shared by the test targets (a library so that each test target need not copy them).

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The repository's root (where Package.swift is), for the files tests read (examples, scripts, browser checks).
public let repositoryRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url
}()

/// The `swiftvs` executable built beside the test bundle.
public var swiftvsBinary: URL {
    if let path = ProcessInfo.processInfo.environment["SWIFTVS_BIN"] { return URL(fileURLWithPath: path) }
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent("swiftvs")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    return bundle.appendingPathComponent("swiftvs")
}

/// A free loopback port (bound and released), for child processes that need a fixed one. Taken below the kernel's
/// ephemeral range, as `freePortBlock` does: a port the kernel handed out (bind to 0) was free only until the next
/// outgoing connection of a test running beside, which the kernel may give that same port as its source before
/// the child binds it ("address in use", seen in CI).
public func freePort() throws -> Int {
    try freePortBlock(1)
}

/// The first of `count` consecutive loopback ports that are all free, for a program that listens on a port and the
/// ones after it (`swiftvs demo`). Taken below the kernel's ephemeral range (32768 and up), where no outgoing
/// connection of a parallel test can be sitting on one of the neighbours.
public func freePortBlock(_ count: Int) throws -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20_000..<(32_000 - count))
        if (try? (0..<count).map { try bindableLoopbackPort(base + $0) }) != nil { return base }
    }
    throw TestSupportError("no \(count) consecutive free ports below 32000")
}

/// Binds 127.0.0.1:`port` (0: any) and returns the port bound; throws if it cannot be bound.
private func bindableLoopbackPort(_ port: Int) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw TestSupportError("bind for a free port: errno \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Waits until `condition` holds, checking every 20 ms, for up to `seconds`; throws naming `what` if it never does.
/// Tests wait on conditions this way, never on a fixed sleep.
public func waitUntil(_ what: String, seconds: Double = 10, _ condition: @Sendable () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try condition() { return }
    throw TestSupportError("waited \(seconds) s, and still not: \(what)")
}

/// The same, blocking the calling thread, for synchronous tests.
public func waitUntilBlocking(_ what: String, seconds: Double = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    if try condition() { return }
    throw TestSupportError("waited \(seconds) s, and still not: \(what)")
}

/// Runs blocking work on its own thread so that the test's async context (and the cooperative pool, two threads on
/// a two-core machine, which in-process servers need) stay free.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 1 << 22
        thread.start()
    }
}

/// `waitUntil` for a condition that awaits (a request to a server in this same process must not block the pool).
public func waitUntilAsync(
    _ what: String, seconds: Double = 10, _ condition: @Sendable () async throws -> Bool
)
    async throws
{
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    throw TestSupportError("waited \(seconds) s, and still not: \(what)")
}
