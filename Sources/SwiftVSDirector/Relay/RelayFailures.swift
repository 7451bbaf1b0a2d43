import SwiftVSSystem
import Glibc
import SwiftVSCore

extension VirtualService {
    /// How a failed connect is told in the log and in an ejection's reason.
    static func connectFailure(_ error: Int32) -> String {
        "connect: " + (error == ETIMEDOUT ? "timed out" : String(cString: strerror(error)))
    }

    /// A real server failed a request or connection in a way that counts toward its ejection (`HTTPExchange`
    /// decides which ways count): counted, and logged at debug. The slot is given back by the caller.
    func upstreamFailed(_ slot: RealServerSlot, _ failure: UpstreamFailure, detail: String) {
        self.failed(slot.server, detail)
        guard case .connect = failure else { return }
        self.logger.debug(
            "connect failed",
            metadata: ["service": "\(self.name)", "server": "\(slot.server.endpoint)", "error": "\(detail)"])
    }

    /// A tcp connection's non-blocking connect to `slot` failed with `error` (ETIMEDOUT from the sweeper): the
    /// connection lets go of the real server, which is counted toward ejection, and it is logged.
    func connectFailed(_ slot: RealServerSlot, error: Int32) {
        slot.release()
        if OpenFiles.isLocalExhaustion(error) {
            // The director ran out, not the server: said once in a while, never counted against it.
            LocalExhaustion.warn(
                self.logger, "cannot open a connection to a real server", code: error, service: self.name)
            return
        }
        self.upstreamFailed(slot, .connect(timedOut: error == ETIMEDOUT), detail: Self.connectFailure(error))
    }
}
