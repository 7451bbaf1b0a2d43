import Foundation
import SwiftVSTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// scripts/ha-lab.sh driven from a test: one prefix names the lab's namespaces, so suites with different prefixes
/// never share one. The HA suite (`svs-`) and the kernel NAT suite (`svk-`) both go through here.
struct NamespaceLab {
    static let script = repositoryRoot.appendingPathComponent("scripts/ha-lab.sh").path
    let prefix: String

    /// Runs ha-lab.sh (`up`, `down`, …) with this prefix; its output, or an error with what it said.
    @discardableResult
    func script(_ arguments: [String]) throws -> String {
        let child = try ChildProcess(
            "/usr/bin/env", ["LAB_PREFIX=\(self.prefix)", "/bin/bash", Self.script] + arguments)
        defer { child.removeOutput() }
        let code = child.wait(seconds: 30)
        guard code == 0 else {
            throw ClientError("ha-lab.sh \(arguments.joined(separator: " ")): \(code) \(child.stderr)")
        }
        return child.stdout
    }

    /// A process inside a lab node; its PID is the program's own (`ip netns exec` execs).
    func start(_ node: String, _ argv: [String]) throws -> ChildProcess {
        try ChildProcess("/usr/sbin/ip", ["netns", "exec", self.prefix + node] + argv)
    }

    /// Runs a command in a node to completion: its exit code, and its output (with its errors when it failed).
    func run(_ node: String, _ argv: [String], seconds: Double = 30) throws -> (code: Int32, out: String) {
        let child = try self.start(node, argv)
        defer { child.removeOutput() }
        let code = child.wait(seconds: seconds)
        return (code, child.stdout + (code == 0 ? "" : child.stderr))
    }

    /// Polls every 10 ms until `condition` holds; the seconds it took, or nil after `limit`.
    static func time(limit: Double, _ condition: () -> Bool) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < limit {
            if condition() { return Date().timeIntervalSince(start) }
            usleep(10_000)
        }
        return nil
    }
}
