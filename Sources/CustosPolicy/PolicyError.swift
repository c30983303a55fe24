/// Where a problem is: a file (relative to the policy directory), 1-based line and column.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found while loading policies: `file:line:column: message`.
public struct PolicyProblem: Sendable, Hashable, CustomStringConvertible {
    public let location: SourceLocation
    public let message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// Why a policy directory (or one policy file) was not loaded. Loading is all-or-nothing: any problem rejects the
/// whole set, and every problem found is listed, in file order.
public struct PolicyLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    public let problems: [PolicyProblem]

    public init(problems: [PolicyProblem]) { self.problems = problems }

    public init(_ location: SourceLocation, _ message: String) { self.problems = [PolicyProblem(location, message)] }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Collects problems while a file is read, so that lint can report all of them at once.
struct Diagnostics {
    var problems: [PolicyProblem] = []

    mutating func add(_ location: SourceLocation, _ message: String) { problems.append(PolicyProblem(location, message)) }

    var isEmpty: Bool { problems.isEmpty }
}
