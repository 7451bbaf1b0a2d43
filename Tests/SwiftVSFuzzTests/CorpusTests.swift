import Foundation
import SwiftVSFuzz
import Testing

/// Every input of the committed fuzz corpus (the seeds, and each crash libFuzzer ever found, kept as a regression
/// input) goes through its target on every test run; `scripts/fuzz.sh` explores from them with libFuzzer.
@Suite("The fuzz corpus replays through every target")
struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    @Test(arguments: FuzzTargets.all.keys.sorted())
    func replay(_ name: String) throws {
        let folder = Self.corpus.appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(!files.isEmpty, "fuzz/corpus/\(name) has no seeds")
        let target = try #require(FuzzTargets.all[name])
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(file)))
            bytes.withUnsafeBytes { target($0) }
        }
    }
}
