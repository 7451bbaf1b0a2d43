import Foundation
import SwiftVSTestSupport
import Testing

/// The acceptance run in a browser: three headless Chromium participants with fake camera and microphone join one
/// room through the director (web, api and two signal replicas behind `examples/conference.yaml`), in a network
/// namespace with only `lo` (the strict loopback recipe of shared/research/media.md). `conference_check.py` checks
/// media (getStats), chat, mute and the screenshots; this test runs it and keeps its screenshots on failure.
@Suite(.serialized)
struct BrowserTests {
    @Test(
        .enabled(if: getuid() == 0, "a network namespace needs root (CI runs as root)"),
        .timeLimit(.minutes(5)))
    func threeParticipantsInChromium() async throws {
        let out = try temporaryDirectory("conference-browser")
        let script = repositoryRoot.appendingPathComponent("Tests/browser/conference_netns.sh").path
        let run = try await toolAsync("unshare", ["-n", "bash", script, swiftvsBinary.path, out], seconds: 240)
        let screenshots = ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).filter {
            $0.hasSuffix(".png")
        }
        #expect(
            run.code == 0 && run.out.contains("PASS"),
            """
            conference_check.py (scripts/test.sh installs chromium, chromium-driver and selenium) said:
            \(run.out)\(run.err)
            services: \((try? String(contentsOfFile: "\(out)/services.log", encoding: .utf8))?.suffix(3000) ?? "")
            (screenshots kept in \(out))
            """)
        #expect(run.out.contains("chat: reached ben and cat") && run.out.contains("mute: shown as muted"))
        #expect(screenshots.count == 3)
        if run.code == 0 { try? FileManager.default.removeItem(atPath: out) }
    }
}
