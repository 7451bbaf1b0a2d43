/// Writes the Prometheus text exposition format (version 0.0.4): a family's `# HELP` and `# TYPE` once, then its
/// samples, label values escaped.
public struct PrometheusText: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge
    }

    public private(set) var text = ""

    public init() {}

    /// One metric family with all its samples, each a set of labels and a value.
    public mutating func family(
        _ name: String, _ kind: Kind, help: String, _ samples: [([(String, String)], Double)]
    ) {
        self.text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
        for (labels, value) in samples {
            self.text += name
            if !labels.isEmpty {
                self.text += "{"
                self.text += labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
                self.text += "}"
            }
            self.text += " \(Self.format(value))\n"
        }
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
