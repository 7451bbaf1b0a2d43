import Glibc
import Logging
import NIOCore
import SwiftVSSystem

/// The director running out of file descriptors or memory, told apart from a real server's failure: a check or a
/// connect that could not even open its socket says nothing of the server, so it never counts against it. What
/// ran out is logged (at most every 5 s), naming the limit.
enum LocalExhaustion {
    /// The errno of `error` when it says the director ran out.
    static func code(of error: Error) -> Int32? {
        let code: Int32?
        switch error {
        case let spawn as Spawn.Failure: code = spawn.code
        default: code = HTTPFetch.errno(of: error)
        }
        guard let code, OpenFiles.isLocalExhaustion(code) else { return nil }
        return code
    }

    /// Logs what ran out, unless it was logged in the last 5 s.
    static func warn(_ logger: Logger, _ what: String, code: Int32, service: String) {
        guard LogThrottle.allows(what).0 else { return }
        logger.warning(
            "\(what): \(OpenFiles.describeExhaustion(code))",
            metadata: ["service": "\(service)", "error": "\(String(cString: strerror(code)))"])
    }
}
