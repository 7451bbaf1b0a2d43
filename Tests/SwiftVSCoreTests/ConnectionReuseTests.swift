import SwiftVSCore
import Testing

@Suite("Keep-alive and drain, as both HTTP drivers decide them")
struct ConnectionReuseTests {
    @Test("a connection stays open only if the client wants it, the request is no upgrade, and no drain is on")
    func keepAlive() {
        #expect(ConnectionReuse.keepsAlive(clientKeepsAlive: true, draining: false))
        // Connection: close, or HTTP/1.0 without keep-alive.
        #expect(!ConnectionReuse.keepsAlive(clientKeepsAlive: false, draining: false))
        // An upgrade leaves HTTP behind: the connection is not one to reuse for requests.
        #expect(!ConnectionReuse.keepsAlive(clientKeepsAlive: true, upgrade: true, draining: false))
        // Draining: the response goes out with Connection: close.
        #expect(!ConnectionReuse.keepsAlive(clientKeepsAlive: true, draining: true))
    }

    @Test("a body that ends with the connection's close ends the keep-alive too")
    func untilClose() {
        #expect(!ConnectionReuse.keepsAlive(after: true, responseEndsByClose: true))
        #expect(ConnectionReuse.keepsAlive(after: true, responseEndsByClose: false))
        #expect(!ConnectionReuse.keepsAlive(after: false, responseEndsByClose: false))
    }

    @Test("a drain closes an idle connection at once, and lets one with work under way finish first")
    func drain() {
        #expect(ConnectionReuse.onDrain(betweenRequests: true, bytesPending: false) == .closeNow)
        // Part of the next head arrived, or an answer is still being written.
        #expect(ConnectionReuse.onDrain(betweenRequests: true, bytesPending: true) == .closeAfterResponse)
        // A request is with a real server.
        #expect(ConnectionReuse.onDrain(betweenRequests: false, bytesPending: false) == .closeAfterResponse)
    }
}
