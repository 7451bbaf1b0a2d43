import Glibc
import SwiftVSCore

extension VirtualService {
    /// A relay connection's non-blocking connect to `backend` failed with `error` (ETIMEDOUT from the sweeper):
    /// the request or connection lets go of the real server, which is counted toward ejection, and it is logged.
    func connectFailed(_ backend: Backend, error: Int32) {
        backend.release()
        let reason = error == ETIMEDOUT ? "timed out" : String(cString: strerror(error))
        self.failed(backend, "connect: \(reason)")
        self.logger.debug(
            "connect failed",
            metadata: [
                "service": "\(self.name)", "server": "\(backend.server.endpoint)", "error": "\(reason)",
            ])
    }
}
