import Foundation
import SwiftVSTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Runs a tool to completion (bounded by `seconds`); its exit code and output.
@discardableResult
func tool(_ name: String, _ args: [String], seconds: Double = 60) throws -> (code: Int32, out: String, err: String) {
    // Through env, so PATH decides (python3 may be a pyenv shim with selenium installed).
    let child = try ChildProcess("/usr/bin/env", [name] + args)
    defer { child.removeOutput() }
    let code = child.wait(seconds: seconds)
    if code == 127 { throw TestSupportError("\(name) is not installed (scripts/test.sh installs it): \(child.stderr)") }
    return (code, child.stdout, child.stderr)
}

/// GET (or another curl request) through curl: status code and body.
func curl(_ url: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
    let marker = "\n--status:"
    let r = try tool("curl", ["-s", "--max-time", "10", "-w", "\(marker)%{http_code}"] + extra + [url], seconds: 15)
    guard let range = r.out.range(of: marker, options: .backwards) else { return (0, r.out) }
    return (Int(r.out[range.upperBound...]) ?? 0, String(r.out[..<range.lowerBound]))
}

/// Response headers of a request, lower-cased names.
func curlHeaders(
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

/// A `swiftvs iptv` child process on a free port.
final class Replica {
    let port: Int
    let process: ChildProcess
    var base: String { "http://127.0.0.1:\(self.port)" }

    init(_ args: [String], port: Int? = nil) throws {
        self.port = try port ?? freePort()
        self.process = try ChildProcess(swiftvsBinary.path, ["iptv", "--listen", "127.0.0.1:\(self.port)"] + args)
    }

    /// Waits until it answers HTTP (channels need not be live yet).
    func waitServing(seconds: Double = 20) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? curl("\(self.base)/api/channels"))?.status == 200 { return }
            guard self.process.isRunning else { throw TestSupportError("swiftvs iptv exited: \(self.process.stderr)") }
            usleep(100_000)
        }
        throw TestSupportError("swiftvs iptv on \(self.port) does not answer: \(self.process.stderr)")
    }

    /// Waits until /healthz says every channel is live.
    func waitLive(seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard self.process.isRunning else {
                throw TestSupportError("swiftvs iptv exited: \(self.process.stderr)")
            }
            if (try? curl("\(self.base)/healthz"))?.status == 200 { return }
            usleep(200_000)
        }
        throw TestSupportError(
            "swiftvs iptv on \(self.port) not live after \(seconds)s: \((try? curl("\(self.base)/healthz"))?.body ?? "")\n\(self.process.stderr)"
        )
    }

    func stop() {
        self.process.stop()
        self.process.removeOutput()
    }
}

/// A playlist's media entries: (URI, EXTINF, program date time), with the media sequence.
func entries(_ playlist: String) -> [String: (extinf: String, pdt: String, discontinuity: Bool)] {
    var out: [String: (String, String, Bool)] = [:]
    var extinf = "", pdt = "", disc = false
    for line in playlist.split(separator: "\n") {
        if line.hasPrefix("#EXTINF:") {
            extinf = String(line)
        } else if line.hasPrefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = String(line)
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true
        } else if !line.hasPrefix("#") {
            out[String(line)] = (extinf, pdt, disc); disc = false
        }
    }
    return out
}

func temporaryDirectory(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "swiftvs-\(name)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// ffmpeg's test sources encoded live (-re) as H.264 + AAC TS with a 2 s GOP, for `seconds`, to `outputs`.
func liveEncoder(seconds: Int, outputs: [String], format: String = "tee") throws -> ChildProcess {
    let target: [String]
    if outputs.count == 1 {
        target = ["-f", "mpegts", outputs[0]]
    } else {
        target = ["-map", "0:v", "-map", "1:a", "-f", "tee", outputs.map { "[f=mpegts]\($0)" }.joined(separator: "|")]
    }
    return try ChildProcess(
        "/usr/bin/env",
        [
            "ffmpeg",
            "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "\(seconds)",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "800k", "-c:a", "aac", "-b:a", "96k",
        ] + target)
}
