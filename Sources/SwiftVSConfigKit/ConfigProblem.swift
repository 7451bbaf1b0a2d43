/// One thing wrong with a config file, named by its key path (`services[1].servers[0].weight`) and line.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String

    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        let location = self.line.map { " (line \($0))" } ?? ""
        let key = self.path.isEmpty ? "config" : self.path
        return "\(key)\(location): \(self.message)"
    }
}

/// A config that cannot be used; `problems` holds every reason, not just the first.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var problems: [ConfigProblem]

    public init(source: String, problems: [ConfigProblem]) {
        self.source = source
        self.problems = problems
    }

    public var description: String {
        let count = self.problems.count
        let head = "\(self.source): \(count) problem\(count == 1 ? "" : "s")"
        return ([head] + self.problems.map { "  " + $0.description }).joined(separator: "\n")
    }
}
