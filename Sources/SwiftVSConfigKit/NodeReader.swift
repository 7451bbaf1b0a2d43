import Yams

/// Walks YAML nodes, recording problems instead of stopping at the first: every config of SwiftVS (the
/// director's, IPTV's, the bench's scenarios) is read with it, so that each problem names its key path and line,
/// unknown keys get a "did you mean", and one bad key does not hide the next.
public struct NodeReader {
    public var problems: [ConfigProblem] = []
    /// When set, `${name}` in scalar values is replaced by the variable's value (scenario files).
    public var variables: [String: String]? = nil

    public init() {}

    public mutating func report(_ path: String, _ node: Node?, _ message: String) {
        self.problems.append(ConfigProblem(path: path, line: node?.mark?.line, message: message))
    }

    /// The YAML's root node; a syntax error or an empty file is a `ConfigError` with its line.
    public static func compose(_ yaml: String, source: String, whenEmpty: String) throws(ConfigError) -> Node {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(source: source, problems: [Self.problem(fromYAMLError: error)])
        } catch {
            throw ConfigError(source: source, problems: [ConfigProblem(path: "", line: nil, message: "\(error)")])
        }
        guard let root else {
            throw ConfigError(source: source, problems: [ConfigProblem(path: "", line: nil, message: whenEmpty)])
        }
        return root
    }

    public static func problem(fromYAMLError error: YamlError) -> ConfigProblem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ConfigProblem(path: "", line: mark.line, message: "YAML syntax: \(problem)")
        default:
            return ConfigProblem(path: "", line: nil, message: "YAML: \(error)")
        }
    }

    // MARK: structure

    /// The mapping's entries by key; unknown keys are reported with a suggestion.
    public mutating func mapping(_ node: Node, _ path: String, allowed: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            self.report(path, node, "expected a mapping (key: value), got \(Self.kind(node))")
            return nil
        }
        var out: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                self.report(path, keyNode, "keys must be plain words")
                continue
            }
            let key = scalar.string
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                let hint = Self.suggest(key, allowed).map { " (did you mean '\($0)'?)" } ?? ""
                self.report(childPath, keyNode, "unknown key\(hint); allowed here: \(allowed.joined(separator: ", "))")
                continue
            }
            if out[key] != nil {
                self.report(childPath, keyNode, "key appears twice")
            }
            out[key] = value
        }
        return out
    }

    public static func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// Closest allowed key by edit distance, if close enough to be a typo.
    public static func suggest(_ key: String, _ allowed: [String]) -> String? {
        let scored = allowed.map { ($0, Self.distance(key.lowercased(), $0)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, key.count / 3) else { return nil }
        return best.0
    }

    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    // MARK: scalars

    public mutating func scalar(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            self.report(path, node, "expected a single value, got \(Self.kind(node))")
            return nil
        }
        guard let variables = self.variables, scalar.string.contains("${") else { return scalar.string }
        switch Self.substitute(scalar.string, variables) {
        case .success(let text): return text
        case .failure(let problem):
            self.report(path, node, problem.description)
            return nil
        }
    }

    public struct UnknownVariable: Error, CustomStringConvertible { public var description: String }

    /// Replaces each `${name}`; an unknown name is an error naming the variables that exist.
    public static func substitute(_ text: String, _ variables: [String: String]) -> Result<String, UnknownVariable> {
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                return .failure(UnknownVariable(description: "unclosed '${' in '\(text)'"))
            }
            let name = String(rest[open.upperBound..<close])
            guard let value = variables[name] else {
                let known = variables.keys.sorted().joined(separator: ", ")
                return .failure(UnknownVariable(description: "unknown variable '${\(name)}'; defined: \(known)"))
            }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return .success(out)
    }

    public mutating func string(_ node: Node, _ path: String) -> String? {
        guard let text = self.scalar(node, path) else { return nil }
        guard !text.isEmpty else {
            self.report(path, node, "must not be empty")
            return nil
        }
        return text
    }

    /// A list of non-empty strings; `example` shows the form in the message when the node is not a list.
    public mutating func strings(_ node: Node, _ path: String, example: String) -> [String]? {
        guard case .sequence(let items) = node else {
            self.report(path, node, "a list, like \(example)")
            return nil
        }
        let values = items.enumerated().compactMap { self.string($1, "\(path)[\($0)]") }
        return values.count == items.count ? values : nil
    }

    public mutating func int(_ node: Node, _ path: String, _ range: ClosedRange<Int>) -> Int? {
        guard let text = self.scalar(node, path) else { return nil }
        guard let value = Int(text) else {
            self.report(
                path, node, "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            return nil
        }
        guard range.contains(value) else {
            self.report(path, node, "must be \(range.lowerBound)...\(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    public mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = self.scalar(node, path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            self.report(path, node, "expected true or false, got '\(text)'")
            return nil
        }
    }

    /// Seconds, from a number (`2.5`) or a number with a unit (`500ms`, `3s`, `2m`, `1h`).
    public mutating func duration(_ node: Node, _ path: String, max: Double = 86400 * 7) -> Double? {
        guard let text = self.scalar(node, path) else { return nil }
        guard let seconds = Self.parseDuration(text) else {
            self.report(path, node, "expected a duration like 3, 2.5s, 500ms or 2m, got '\(text)'")
            return nil
        }
        guard seconds > 0, seconds <= max else {
            self.report(path, node, "must be more than 0 and at most \(Int(max)) seconds, got '\(text)'")
            return nil
        }
        return seconds
    }

    public static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count).trimmingSpaces()
            if let value = Double(number), value.isFinite { return value * scale }
            return nil
        }
        if let value = Double(text), value.isFinite { return value }
        return nil
    }

    /// A `host:port` (or `[v6]:port`) scalar.
    public mutating func endpoint(_ node: Node, _ path: String) -> Endpoint? {
        guard let text = self.string(node, path) else { return nil }
        do {
            return try Endpoint(parsing: text)
        } catch {
            self.report(path, node, error.description)
            return nil
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces.
    public func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
