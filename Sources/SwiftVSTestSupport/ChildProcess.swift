import Foundation
import SwiftVSSystem

/// A child process for tests: `ManagedProcess` with its standard output and error in temporary files, waited for
/// synchronously.
public final class ChildProcess: Sendable {
    public let process: ManagedProcess
    public let stdoutPath: String
    public let stderrPath: String

    public var pid: pid_t { self.process.pid }

    /// Starts `executable` with `arguments`; stdout and stderr go to temporary files (or /dev/null).
    public init(_ executable: String, _ arguments: [String], captureOutput: Bool = true) throws {
        let base = NSTemporaryDirectory() + "swiftvs-child-\(UUID().uuidString)"
        self.stdoutPath = captureOutput ? base + ".out" : "/dev/null"
        self.stderrPath = captureOutput ? base + ".err" : "/dev/null"
        self.process = try ManagedProcess(
            [executable] + arguments, stdout: captureOutput ? .file(self.stdoutPath, append: false) : .discard,
            stderr: captureOutput ? .file(self.stderrPath, append: false) : .discard
        )
    }

    /// Waits for the exit (up to `seconds`, then SIGKILL); returns the exit code (128+signal if killed).
    @discardableResult
    public func wait(seconds: Double = 30) -> Int32 {
        if let code = self.process.waitBlocking(seconds: seconds) { return code }
        self.process.signal(SIGKILL)
        return self.process.waitBlocking(seconds: 10) ?? -1
    }

    public var isRunning: Bool { self.process.isRunning }

    /// SIGTERM, then wait (SIGKILL after `seconds`).
    @discardableResult
    public func stop(seconds: Double = 10) -> Int32 {
        self.process.stopBlocking(seconds: seconds)
    }

    public var stdout: String { (try? String(contentsOfFile: self.stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "" }

    public func removeOutput() {
        if self.stdoutPath != "/dev/null" { unlink(self.stdoutPath) }
        if self.stderrPath != "/dev/null" { unlink(self.stderrPath) }
    }
}
