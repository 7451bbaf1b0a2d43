import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn (no Foundation `Process`) and reaped with waitpid. Output goes to a
/// log file. Only processes this type started are ever signalled, and only by their PID.
public final class ManagedProcess: Sendable {
    public let pid: pid_t
    public let logPath: String
    private let exitStatus = Mutex<Int32?>(nil)

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `executable` with `arguments` (argv[0] is added); output to `logPath` ("/dev/null" to drop it).
    public init(executable: String, arguments: [String], logPath: String = "/dev/null",
                environment: [String: String] = [:]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var env: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            cursor += 1
        }
        for (k, v) in environment { env[k] = v }
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        self.logPath = logPath
    }

    /// `/bin/sh -c 'exec COMMAND'`: shell syntax for the command line, and the PID is the command's own.
    public static func shell(_ command: String, logPath: String = "/dev/null") throws -> ManagedProcess {
        try ManagedProcess(executable: "/bin/sh", arguments: ["-c", "exec " + command], logPath: logPath)
    }

    /// Exit code if it has exited (128 + signal if a signal ended it); nil while it runs. Never blocks.
    public var exitCode: Int32? {
        self.exitStatus.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let r = waitpid(self.pid, &raw, WNOHANG)
            if r == self.pid {
                status = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
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

    /// `signal`, then SIGKILL if it has not exited after `seconds`.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, seconds: Double = 10) async -> Int32 {
        self.signal(signal)
        if let code = await self.wait(seconds: seconds) { return code }
        self.signal(SIGKILL)
        return await self.wait(seconds: 5) ?? -1
    }

    /// The last `lines` lines of the log.
    public func logTail(lines: Int = 10) -> String {
        guard self.logPath != "/dev/null", let text = ProcFiles.read(self.logPath) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
