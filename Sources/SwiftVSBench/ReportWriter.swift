import Foundation
import SwiftVSCore

/// Writes reports to disk: JSON for machines, a self-contained HTML page for people.
public enum ReportWriter {
    public static func json(_ report: BenchReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf",
            nan: "nan")
        return try encoder.encode(report)
    }

    public static func write(_ report: BenchReport, json: String?, html: String?) throws {
        if let json {
            try self.json(report).write(to: URL(fileURLWithPath: json))
        }
        if let html {
            try Data(BenchHTML.render(report).utf8).write(to: URL(fileURLWithPath: html))
        }
    }

    public static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }
}
