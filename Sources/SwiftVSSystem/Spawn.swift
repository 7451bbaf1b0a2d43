import CSwiftVSLinux
import Glibc

/// The one way SwiftVS starts a process: posix_spawn (no fork of a multi-threaded process, no Foundation `Process`),
/// argv[0] looked up on PATH when it has no '/', standard input from /dev/null, and **no descriptor of ours but the
/// three standard ones** in the child.
///
/// The last point is why this exists once. SwiftNIO does not open every socket close-on-exec, so a child started
/// while connections were open kept copies of them: a real server that the bench's interruption scenario restarted
/// held the load client's sockets, the director never saw those clients close, and its drain never reached zero.
public enum Spawn {
    /// Where a child's standard output or error goes.
    public enum Output: Sendable, Equatable {
        /// /dev/null.
        case discard
        /// A file, created if missing (mode 0644), appended to or truncated.
        case file(String, append: Bool)
        /// Standard error only: wherever standard output goes.
        case sameAsOutput
        /// Where ours goes.
        case inherit
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let command: String
        public let code: Int32
        public var description: String { "cannot start \(self.command): \(String(cString: strerror(self.code)))" }
    }

    /// Starts `argv` and returns its PID. `environment` is the child's whole environment (nil: ours); with
    /// `ownProcessGroup` the child leads a new process group, so that `kill(-pid, …)` reaches what it starts too;
    /// `directory` is its working directory (nil: ours).
    public static func start(
        _ argv: [String], environment: [String: String]? = nil, stdout: Output = .discard,
        stderr: Output = .discard, ownProcessGroup: Bool = false, directory: String? = nil
    ) throws(Failure) -> pid_t {
        precondition(!argv.isEmpty, "Spawn.start needs a command")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        Self.redirect(&actions, 1, stdout)
        Self.redirect(&actions, 2, stderr)
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        if let directory { posix_spawn_file_actions_addchdir_np(&actions, directory) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no signal blocked and every signal at its default action, whatever this process
        // (its event loops, service-lifecycle's handlers) blocks or ignores: a python UDP server started by a test
        // otherwise kept SIGTERM blocked and had to be killed 10 s later.
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        if ownProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let args: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let env = environment ?? ProcessEnvironment.current
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in args { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, args, envp)
        guard rc == 0 else { throw Failure(command: argv[0], code: rc) }
        return pid
    }

    private static func redirect(_ actions: inout posix_spawn_file_actions_t, _ fd: Int32, _ output: Output) {
        switch output {
        case .discard:
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
        case .file(let path, let append):
            posix_spawn_file_actions_addopen(
                &actions, fd, path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
                0o644)
        case .sameAsOutput:
            posix_spawn_file_actions_adddup2(&actions, 1, fd)
        case .inherit:
            break
        }
    }

    /// Runs `argv` to completion with output discarded; its exit code (`ExitStatus`), 127 if it could not start.
    @discardableResult
    public static func run(_ argv: [String]) -> Int32 {
        guard let pid = try? self.start(argv) else { return 127 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return ExitStatus.code(status)
    }
}

extension Spawn {
    /// What a finished command said.
    public struct Captured: Sendable {
        /// `ExitStatus.code`; 127 if it could not start, 124 if it ran past its time and was killed.
        public var code: Int32
        public var stdout: [UInt8]
        public var stderr: String
        public var text: String { String(decoding: self.stdout, as: UTF8.self) }
    }

    /// Runs `argv` to completion (killed after `seconds`) with its output captured through temporary files;
    /// blocks the calling thread, so callers run it off the event loops and the cooperative pool.
    public static func capture(_ argv: [String], seconds: Double = 30) -> Captured {
        var outName = Array("/tmp/swiftvs-out-XXXXXX".utf8CString)
        var errName = Array("/tmp/swiftvs-err-XXXXXX".utf8CString)
        let outFD = mkstemp(&outName)
        let errFD = mkstemp(&errName)
        let outPath = String(cString: outName)
        let errPath = String(cString: errName)
        defer {
            if outFD >= 0 { close(outFD); unlink(outPath) }
            if errFD >= 0 { close(errFD); unlink(errPath) }
        }
        guard outFD >= 0, errFD >= 0,
            let process = try? ManagedProcess(
                argv, stdout: .file(outPath, append: false), stderr: .file(errPath, append: false))
        else { return Captured(code: 127, stdout: [], stderr: "cannot start \(argv.first ?? "")") }
        var code: Int32 = 124
        if let exited = process.waitBlocking(seconds: seconds) {
            code = exited
        } else {
            process.stopBlocking(signal: SIGKILL, seconds: 0)
        }
        let read = { (fd: Int32) -> [UInt8] in
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            lseek(fd, 0, SEEK_SET)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 65536) }
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            return bytes
        }
        return Captured(code: code, stdout: read(outFD), stderr: String(decoding: read(errFD), as: UTF8.self))
    }
}

/// A `waitpid` status as one number, the shell's way: the exit code, or 128 + the signal that ended the process.
public enum ExitStatus {
    @inline(__always)
    public static func code(_ raw: Int32) -> Int32 {
        (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
    }

    /// How a person reads it: "exit 3" or "killed by signal 9".
    public static func describe(_ raw: Int32) -> String {
        (raw & 0x7F) == 0 ? "exit \((raw >> 8) & 0xFF)" : "killed by signal \(raw & 0x7F)"
    }
}

/// This process's environment, for the commands it starts.
public enum ProcessEnvironment {
    public static var current: [String: String] {
        var out: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                out[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return out
    }
}
