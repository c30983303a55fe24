public import GRDB

/// Gathers writes from many tasks into one SQLite transaction each: group commit.
///
/// Every ``perform(_:)`` call queues its closure; one drain loop takes all queued closures (up to
/// ``maxBatchSize``), runs them in order inside a single write transaction, each in its own savepoint, and commits
/// once, so one fsync (`synchronous=FULL`, WAL) covers the whole batch. A caller resumes only after the transaction
/// holding its closure committed, so a returned value is durable. While a batch commits, new calls queue up for the
/// next one: under load batches grow by themselves, and an idle writer commits a lone call at once.
///
/// A closure that throws rolls back its own savepoint only; the others in the batch still commit and the caller
/// gets the error. If the transaction itself fails (the commit cannot be written), every caller of the batch gets
/// that error and none of their writes happened. Closures run on GRDB's serial writer queue (never on Swift's
/// cooperative pool), in the order their calls reached the actor, so a closure may keep state that is only touched
/// from there (the audit log assigns sequence numbers this way: seq order = commit order). State it changes must be
/// undone when the transaction rolls back; `Database.afterNextTransaction(onCommit:onRollback:)` serves that.
public actor GroupCommitWriter {
    /// The most closures one transaction holds (bounds the latency of a batch and the size of its WAL frames).
    public let maxBatchSize: Int
    private let writer: any DatabaseWriter
    private var queue: [Job] = []
    private var draining = false
    private var batches = 0

    /// A writer over `writer` (a `DatabasePool` or, in tests, a `DatabaseQueue`).
    /// - Parameters:
    ///   - writer: The database connection that runs the transactions.
    ///   - maxBatchSize: The most closures one transaction holds (at least 1).
    public init(_ writer: any DatabaseWriter, maxBatchSize: Int = 1024) {
        self.writer = writer
        self.maxBatchSize = max(1, maxBatchSize)
    }

    /// How many transactions have committed or failed so far (tests use it to see batching happen).
    public var batchCount: Int { batches }

    /// Runs `body` in the next batch's transaction (in a savepoint of its own) and returns its value once that
    /// transaction has committed.
    /// - Parameter body: The write. It runs on the database writer's queue and must not block on other work.
    /// - Returns: What `body` returned, after the commit.
    /// - Throws: What `body` threw (its savepoint was rolled back), or the transaction's error (nothing of the
    ///   batch was written).
    public func perform<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let box = ResultBox<T>()
            let job = Job(
                run: { db in box.result = .success(try body(db)) },
                finish: { transactionError in
                    if let transactionError {
                        continuation.resume(throwing: transactionError)
                    } else if let result = box.result {
                        continuation.resume(with: result)
                    } else {
                        continuation.resume(throwing: GroupCommitError.notRun)
                    }
                },
                fail: { error in box.result = .failure(error) })
            queue.append(job)
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !queue.isEmpty {
            let batch = Array(queue.prefix(maxBatchSize))
            queue.removeFirst(batch.count)
            var transactionError: (any Error)? = nil
            do {
                try await writer.write { db in
                    for job in batch {
                        do {
                            try db.inSavepoint {
                                try job.run(db)
                                return .commit
                            }
                        } catch {
                            job.fail(error)
                        }
                    }
                }
            } catch {
                transactionError = error
            }
            batches += 1
            for job in batch { job.finish(transactionError) }
        }
        draining = false
    }
}

/// Errors of ``GroupCommitWriter`` itself.
public enum GroupCommitError: Error, Sendable {
    /// A queued closure never ran (a bug in the writer; reported rather than trapped).
    case notRun
}

/// One queued closure. Its fields are set once and then read only by the drain loop; the closures touch the
/// result box only on the writer's queue, before the batch's `write` returns, hence `@unchecked Sendable`.
private final class Job: @unchecked Sendable {
    let run: (Database) throws -> Void
    let finish: (_ transactionError: (any Error)?) -> Void
    let fail: (any Error) -> Void
    init(
        run: @escaping (Database) throws -> Void, finish: @escaping ((any Error)?) -> Void, fail: @escaping (any Error) -> Void
    ) {
        self.run = run
        self.finish = finish
        self.fail = fail
    }
}

/// The value a closure produced, written on the writer's queue and read after `write` returned (the `await`
/// orders the two), hence `@unchecked Sendable`.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
