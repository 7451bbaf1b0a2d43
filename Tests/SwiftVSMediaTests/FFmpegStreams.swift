import Foundation

/// MPEG-TS streams made with ffmpeg's test sources, cached per process. CI installs ffmpeg (scripts/test.sh).
enum FFmpegStreams {
    struct Failure: Error, CustomStringConvertible { var description: String }

    private static let cache = Cache()
    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var streams: [String: [UInt8]] = [:]
    }

    /// `seconds` of 640x360 25 fps video (keyframe every `gop` frames) plus AAC, as TS. `extra` goes before the
    /// output (for example `-output_ts_offset 95438`).
    static func make(
        seconds: Int = 12, gop: Int = 50, codec: String = "libx264", audio: Bool = true,
        extra: [String] = []
    ) throws -> [UInt8] {
        let key = "\(seconds)-\(gop)-\(codec)-\(audio)-\(extra)"
        cache.lock.lock()
        if let hit = cache.streams[key] { cache.lock.unlock(); return hit }
        cache.lock.unlock()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftvs-ts-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let out = dir.appendingPathComponent("\(UUID().uuidString).ts")
        defer { try? FileManager.default.removeItem(at: out) }
        var args = ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"]
        if audio { args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] }
        args += [
            "-t", "\(seconds)", "-c:v", codec, "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", "\(gop)", "-keyint_min", "\(gop)", "-sc_threshold", "0", "-b:v", "300k",
        ]
        if codec == "libx265" {
            args += ["-x265-params", "keyint=\(gop):min-keyint=\(gop):scenecut=0:log-level=error"]
        }
        if audio { args += ["-c:a", "aac", "-b:a", "64k"] }
        args += extra + ["-f", "mpegts", out.path]
        try run("ffmpeg", args)
        let bytes = [UInt8](try Data(contentsOf: out))
        cache.lock.lock()
        cache.streams[key] = bytes
        cache.lock.unlock()
        return bytes
    }

    static func run(_ tool: String, _ args: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + args
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw Failure(description: "cannot run \(tool) (scripts/test.sh installs it): \(error)")
        }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "\(tool) \(args.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
        }
    }

    /// ffprobe's `codec_name` list for a TS held in memory (written to a temp file).
    static func probeCodecs(_ bytes: [UInt8]) throws -> [String] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "swiftvs-probe-\(UUID().uuidString).ts")
        try Data(bytes).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path.path,
        ]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }
}
