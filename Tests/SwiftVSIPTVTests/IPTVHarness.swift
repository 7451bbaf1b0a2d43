import Foundation
import SwiftVSTestSupport
#if canImport(Glibc)
import Glibc
#endif

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
