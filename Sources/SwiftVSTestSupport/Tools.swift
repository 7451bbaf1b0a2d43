import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a tool to completion (bounded by `seconds`); its exit code and output.
@discardableResult
public func tool(
    _ name: String, _ args: [String], seconds: Double = 60
) throws -> (code: Int32, out: String, err: String) {
    // Through env, so PATH decides (python3 may be a pyenv shim with selenium installed).
    let child = try ChildProcess("/usr/bin/env", [name] + args)
    defer { child.removeOutput() }
    let code = child.wait(seconds: seconds)
    if code == 127 { throw TestSupportError("\(name) is not installed (scripts/test.sh installs it): \(child.stderr)") }
    return (code, child.stdout, child.stderr)
}

/// GET (or another curl request) through curl: status code and body.
public func curl(_ url: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
    let marker = "\n--status:"
    let r = try tool("curl", ["-s", "--max-time", "10", "-w", "\(marker)%{http_code}"] + extra + [url], seconds: 15)
    guard let range = r.out.range(of: marker, options: .backwards) else { return (0, r.out) }
    return (Int(r.out[range.upperBound...]) ?? 0, String(r.out[..<range.lowerBound]))
}

/// Response headers of a request, lower-cased names.
public func curlHeaders(
    _ url: String, _ extra: [String] = []
) throws -> (status: Int, headers: [String: String], bodyBytes: Int) {
    let r = try tool(
        "curl", ["-s", "--max-time", "10", "-D", "-", "-o", "/dev/null", "-w", "%{size_download}"] + extra + [url],
        seconds: 15)
    var headers: [String: String] = [:]
    var status = 0
    var size = 0
    for line in r.out.split(separator: "\r\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("HTTP/") { status = Int(line.split(separator: " ")[1]) ?? 0; continue }
        if let colon = line.firstIndex(of: ":") {
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingCharacters(
                in: .whitespaces)
        } else if let n = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) {
            size = n
        }
    }
    return (status, headers, size)
}

/// A new directory under the temporary directory, for one test's files.
public func temporaryDirectory(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "swiftvs-\(name)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// `curl`, `curlHeaders` and `tool` on a thread of their own, for async tests (above all those with a server in the
/// same process, which needs the cooperative pool these would block).
public func curlAsync(_ url: String, _ extra: [String] = []) async throws -> (status: Int, body: String) {
    try await onThread { try curl(url, extra) }
}

public func curlHeadersAsync(
    _ url: String, _ extra: [String] = []
) async throws
    -> (status: Int, headers: [String: String], bodyBytes: Int)
{
    try await onThread { try curlHeaders(url, extra) }
}

public func toolAsync(
    _ name: String, _ args: [String], seconds: Double = 60
) async throws
    -> (code: Int32, out: String, err: String)
{
    try await onThread { try tool(name, args, seconds: seconds) }
}
