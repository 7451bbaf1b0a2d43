import Foundation
import SwiftVSFuzz

// Built by scripts/fuzz.sh with libFuzzer (-sanitize=fuzzer,address -D FUZZING), main hands over to libFuzzer's
// driver and SWIFTVS_FUZZ_TARGET names the target. Built plainly (as `swift build` does), it replays files through
// a target: `swiftvs-fuzz TARGET FILE...`.

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) var fuzzTarget: FuzzTargets.Target = { _ in }

@main
struct Fuzz {
    static func main() {
        let name = ProcessInfo.processInfo.environment["SWIFTVS_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTargets.all[name] else {
            fatalError("SWIFTVS_FUZZ_TARGET must be one of \(FuzzTargets.all.keys.sorted()); got '\(name)'")
        }
        fuzzTarget = target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(
            runFuzzerDriver(&argc, &argv) { data, size in
                fuzzTarget(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            })
    }
}
#else
@main
struct Replay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTargets.all[name] else {
            print(
                "usage: swiftvs-fuzz TARGET FILE... (targets: \(FuzzTargets.all.keys.sorted().joined(separator: ", ")))"
            )
            exit(2)
        }
        for path in arguments.dropFirst() {
            let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
            bytes.withUnsafeBytes { target($0) }
        }
        print("\(name): \(arguments.count - 1) inputs, no failure")
    }
}
#endif
