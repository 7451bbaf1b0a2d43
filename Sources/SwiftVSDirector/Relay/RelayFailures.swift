import Glibc
import SwiftVSCore

extension VirtualService {
    /// How a failed connect is told in the log and in an ejection's reason.
    static func connectFailure(_ error: Int32) -> String {
        "connect: " + (error == ETIMEDOUT ? "timed out" : String(cString: strerror(error)))
    }

    /// A real server failed a request or connection in a way that counts toward its ejection (`HTTPExchange`
    /// decides which ways count): counted, and logged at debug. The slot is given back by the caller.
    func upstreamFailed(_ backend: Backend, _ failure: UpstreamFailure, detail: String) {
        self.failed(backend, detail)
        guard case .connect = failure else { return }
        self.logger.debug(
            "connect failed",
            metadata: ["service": "\(self.name)", "server": "\(backend.server.endpoint)", "error": "\(detail)"])
    }

    /// A tcp connection's non-blocking connect to `backend` failed with `error` (ETIMEDOUT from the sweeper): the
    /// connection lets go of the real server, which is counted toward ejection, and it is logged.
    func connectFailed(_ backend: Backend, error: Int32) {
        backend.release()
        self.upstreamFailed(backend, .connect(timedOut: error == ETIMEDOUT), detail: Self.connectFailure(error))
    }
}
