import Glibc
import SwiftVSSystem
import Testing

@Suite("Spawn")
struct SpawnTests {
    /// The interruption scenario's drain hang: a real server restarted by the bench inherited the load client's
    /// sockets (SwiftNIO does not open them close-on-exec), so the director never saw those clients close.
    @Test("a child gets no descriptor of ours but 0, 1 and 2, close-on-exec or not")
    func noInheritedDescriptors() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { fds.forEach { close($0) } }
        #expect(fcntl(fds[0], F_GETFD) & FD_CLOEXEC == 0, "the test needs a descriptor without close-on-exec")
        let probe = "test -e /proc/self/fd/\(fds[0]) && exit 3; test -e /proc/self/fd/2 || exit 4; exit 0"
        let process = try ManagedProcess(["/bin/sh", "-c", probe], stdout: .discard, stderr: .discard)
        #expect(process.waitBlocking(seconds: 30) == 0)
    }

    @Test("PATH lookup, environment, output to a file, and exit codes the shell's way")
    func startAndExitCodes() throws {
        let path = "/tmp/swiftvs-spawn-\(getpid()).out"
        defer { unlink(path) }
        let process = try ManagedProcess(
            ["sh", "-c", "echo $GREETING; echo oops >&2; exit 7"],
            environment: ["GREETING": "hello", "PATH": "/usr/bin:/bin"],
            stdout: .file(path, append: false), stderr: .sameAsOutput)
        #expect(process.waitBlocking(seconds: 30) == 7)
        let text = try #require(String(validatingCString: Self.read(path)))
        #expect(text == "hello\noops\n")
        #expect(Spawn.run(["sh", "-c", "kill -9 $$"]) == 128 + 9)
        #expect(Spawn.run(["/nonexistent/command"]) == 127)
        #expect(throws: Spawn.Failure.self) { try Spawn.start(["/nonexistent/command"]) }
        #expect(ExitStatus.describe(0x0900) == "exit 9")
        #expect(ExitStatus.describe(15) == "killed by signal 15")
    }

    private static func read(_ path: String) -> [CChar] {
        guard let file = fopen(path, "r") else { return [0] }
        defer { fclose(file) }
        var out: [CChar] = []
        while true {
            let c = fgetc(file)
            if c == EOF { break }
            out.append(CChar(truncatingIfNeeded: c))
        }
        return out + [0]
    }
}
