/// A moment in UTC, taken apart without Foundation or the C library (Howard Hinnant's days-to-civil): for HLS's
/// PROGRAM-DATE-TIME, the access log, and whatever else writes a time.
public struct UTCTime: Sendable, Equatable {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    public var millisecond: Int

    /// `seconds` since 1970-01-01T00:00:00Z (before it too), to the millisecond below.
    public init(_ seconds: Double) {
        let millis = Int64((seconds * 1000).rounded(.down))
        let days = millis >= 0 ? millis / 86_400_000 : -((-millis + 86_400_000 - 1) / 86_400_000)
        let ofDay = Int(millis - days * 86_400_000)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        self.year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
        self.month = month
        self.day = Int(doy - (153 * mp + 2) / 5 + 1)
        self.hour = ofDay / 3_600_000
        self.minute = ofDay / 60_000 % 60
        self.second = ofDay / 1000 % 60
        self.millisecond = ofDay % 1000
    }

    /// `2026-11-22T18:00:00.000Z`
    public var iso8601: String {
        "\(Self.pad(self.year, 4))-\(Self.pad(self.month, 2))-\(Self.pad(self.day, 2))T\(Self.pad(self.hour, 2)):"
            + "\(Self.pad(self.minute, 2)):\(Self.pad(self.second, 2)).\(Self.pad(self.millisecond, 3))Z"
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Common Log Format's time, with milliseconds: `22/Nov/2026:18:00:00.000 +0000`
    public var commonLog: String {
        "\(Self.pad(self.day, 2))/\(Self.months[self.month - 1])/\(self.year):\(Self.pad(self.hour, 2)):"
            + "\(Self.pad(self.minute, 2)):\(Self.pad(self.second, 2)).\(Self.pad(self.millisecond, 3)) +0000"
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// UTC timestamps in ISO 8601 with milliseconds ("2026-11-22T18:00:00.000Z").
public enum ISO8601 {
    public static func format(_ seconds: Double) -> String { UTCTime(seconds).iso8601 }
}
