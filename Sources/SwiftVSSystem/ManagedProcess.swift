import Glibc
import Synchronization

/// A child process started with `Spawn` and reaped with waitpid. Only processes this type started are ever
/// signalled, and only by their PID.
public final class ManagedProcess: Sendable {
    public let pid: pid_t
    /// Where its standard output and error go ("/dev/null" when dropped).
    public let logPath: String
    private let exitStatus = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` (argv[0] is added); standard output and error appended to `logPath`.
    /// `environment` is added to this process's own.
    public convenience init(
        executable: String, arguments: [String], logPath: String = "/dev/null",
        environment: [String: String] = [:]
    ) throws(Spawn.Failure) {
        var env = ProcessEnvironment.current
        for (key, value) in environment { env[key] = value }
        try self.init(
            [executable] + arguments, environment: env,
            stdout: .file(logPath, append: true), stderr: .sameAsOutput, logPath: logPath)
    }

    /// Starts `argv` with output where `stdout` and `stderr` say.
    public init(
        _ argv: [String], environment: [String: String]? = nil, stdout: Spawn.Output,
        stderr: Spawn.Output, logPath: String = "/dev/null", directory: String? = nil
    ) throws(Spawn.Failure) {
        self.pid = try Spawn.start(
            argv, environment: environment, stdout: stdout, stderr: stderr, directory: directory)
        self.logPath = logPath
    }

    /// `/bin/sh -c 'exec COMMAND'`: shell syntax for the command line, and the PID is the command's own.
    public static func shell(_ command: String, logPath: String = "/dev/null") throws(Spawn.Failure) -> ManagedProcess {
        try ManagedProcess(executable: "/bin/sh", arguments: ["-c", "exec " + command], logPath: logPath)
    }

    /// Exit code if it has exited (128 + signal if a signal ended it); nil while it runs. Never blocks.
    public var exitCode: Int32? {
        self.exitStatus.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let r = waitpid(self.pid, &raw, WNOHANG)
            if r == self.pid {
                status = ExitStatus.code(raw)
            } else if r < 0 {
                status = -1
            }
            return status
        }
    }

    public var isRunning: Bool { self.exitCode == nil }

    public func signal(_ signal: Int32) {
        if self.isRunning { kill(self.pid, signal) }
    }

    /// Waits up to `seconds` for the exit; returns the exit code, or nil if it still runs.
    @discardableResult
    public func wait(seconds: Double) async -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let code = self.exitCode { return code }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return self.exitCode
    }

    /// The same, blocking the calling thread (for synchronous tests and tools).
    @discardableResult
    public func waitBlocking(seconds: Double) -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let code = self.exitCode { return code }
            usleep(10_000)
        }
        return self.exitCode
    }

    /// `signal`, then SIGKILL if it has not exited after `seconds`.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, seconds: Double = 10) async -> Int32 {
        self.signal(signal)
        if let code = await self.wait(seconds: seconds) { return code }
        self.signal(SIGKILL)
        return await self.wait(seconds: 5) ?? -1
    }

    /// The same, blocking.
    @discardableResult
    public func stopBlocking(signal: Int32 = SIGTERM, seconds: Double = 10) -> Int32 {
        self.signal(signal)
        if let code = self.waitBlocking(seconds: seconds) { return code }
        self.signal(SIGKILL)
        return self.waitBlocking(seconds: 5) ?? -1
    }
}
