import Foundation
import SwiftVSConference
import SwiftVSCore
import SwiftVSTestSupport
import Testing

struct LayoutTests {
    /// `swiftvs demo` and `examples/conference.yaml` describe the same director service.
    @Test func exampleMatchesTheDemo() throws {
        let example = try String(
            contentsOf: repositoryRoot.appendingPathComponent("examples/conference.yaml"), encoding: .utf8)
        let fromFile = try ConfigLoader.load(yaml: example, source: "examples/conference.yaml")
        let fromDemo = try ConfigLoader.load(
            yaml: "services:\n" + ConferenceLayout.serviceYAML(port: 8600), source: "demo")
        #expect(fromFile.services == fromDemo.services)
        let signal = try #require(fromFile.services.first { $0.name == "conference/signal" })
        #expect(signal.persistence?.key == .hash && signal.scheduler == .mh)
    }
}
