/// The whole of an operation did not finish in time.
public struct DeadlineExceeded: Error, Sendable, CustomStringConvertible {
    /// The time it was given, in seconds.
    public let seconds: Int64

    public init(seconds: Int64) { self.seconds = seconds }

    public var description: String { "no complete answer within the \(seconds) s deadline" }
}

/// One deadline for a whole operation: runs `body`, cancelling it when it has not finished after `seconds`.
///
/// For HTTP exchanges: AsyncHTTPClient's request deadline ends at the response head and its read timeout restarts with
/// every read, so a peer trickling a byte a minute would hold the caller indefinitely without one.
/// - Throws: ``DeadlineExceeded``, or what `body` throws.
public func withDeadline<T: Sendable>(seconds: Int64, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded(seconds: seconds) }
        return value
    }
}
