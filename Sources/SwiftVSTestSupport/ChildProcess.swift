import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid: no Foundation `Process`, whose run loop based
/// waiting hung when one test stopped a child while the next started one.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let stdoutPath: String
    public let stderrPath: String
    private var status: Int32?

    /// Starts `executable` with `arguments`; stdout and stderr go to temporary files (or /dev/null).
    public init(_ executable: String, _ arguments: [String], captureOutput: Bool = true) throws {
        let base = NSTemporaryDirectory() + "swiftvs-child-\(UUID().uuidString)"
        self.stdoutPath = captureOutput ? base + ".out" : "/dev/null"
        self.stderrPath = captureOutput ? base + ".err" : "/dev/null"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, self.stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, self.stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard rc == 0 else { throw TestSupportError("posix_spawn \(executable): \(rc)") }
        self.pid = pid
    }

    /// Waits for the exit (up to `seconds`, then SIGKILL); returns the exit code (128+signal if killed).
    @discardableResult
    public func wait(seconds: Double = 30) -> Int32 {
        if let status = self.status { return status }
        let deadline = Date().addingTimeInterval(seconds)
        var raw: Int32 = 0
        while true {
            let r = waitpid(self.pid, &raw, WNOHANG)
            if r == self.pid { break }
            if r < 0 { raw = 0; break }
            if Date() > deadline {
                kill(self.pid, SIGKILL)
                waitpid(self.pid, &raw, 0)
                break
            }
            usleep(10_000)
        }
        let code: Int32 = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
        self.status = code
        return code
    }

    public var isRunning: Bool {
        guard self.status == nil else { return false }
        var raw: Int32 = 0
        let r = waitpid(self.pid, &raw, WNOHANG)
        if r == self.pid {
            self.status = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            return false
        }
        return true
    }

    /// SIGTERM, then wait (SIGKILL after `seconds`).
    @discardableResult
    public func stop(seconds: Double = 10) -> Int32 {
        if self.isRunning { kill(self.pid, SIGTERM) }
        return self.wait(seconds: seconds)
    }

    public var stdout: String { (try? String(contentsOfFile: self.stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "" }

    public func removeOutput() {
        if self.stdoutPath != "/dev/null" { unlink(self.stdoutPath) }
        if self.stderrPath != "/dev/null" { unlink(self.stderrPath) }
    }
}
