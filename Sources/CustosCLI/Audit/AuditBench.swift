import ArgumentParser
import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import GRDB
import Synchronization

extension BenchCommand {
    static let auditBenchmarks: [any ParsableCommand.Type] = [AuditBenchAppend.self]
}

/// `custos bench audit-append`: durable appends per second through group commit (fsync on: WAL,
/// `synchronous=FULL`). Also the crash-safety test's writer: `--print-acks` prints `ack SEQ` (unbuffered) once SEQ
/// and every entry before it are durable.
struct AuditBenchAppend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-append", abstract: "Append synthetic audit entries concurrently and report durable appends per second.")
    @Option(name: .long, help: "The database (created when absent).") var db: String
    @Option(name: .long, help: "Entries to append.") var entries: Int = 10_000
    @Option(name: .long, help: "Concurrent appenders.") var concurrency: Int = 64
    @Flag(name: .long, help: "Print 'ack SEQ' as soon as SEQ (and all before it) is durable.") var printAcks = false
    @Option(name: .long, help: "The log key file (default: audit-log.key next to the database; created when absent).")
    var logKey: String?
    @Option(name: .long, help: "The log's origin.") var origin: String = AuditLog.defaultOrigin
    @Option(name: .long, help: "Sign a checkpoint every this many entries.") var checkpointEvery: Int = 1000
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let entries: Int
        let concurrency: Int
        let size: UInt64
        let appendsPerSecond: Double
        let p50Micros: Double
        let p99Micros: Double
        /// User+system CPU time of this process during the appends, per append.
        let cpuMicrosPerAppend: Double
    }

    func validate() throws {
        guard entries >= 0, entries <= 100_000_000 else { throw ValidationError("--entries must be 0…100000000") }
        guard concurrency >= 1, concurrency <= 4096 else { throw ValidationError("--concurrency must be 1…4096") }
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
    }

    func run() async throws {
        let pool: DatabasePool
        do { pool = try StoreDatabase.openPool(path: db) } catch { throw CLIError("cannot open \(db): \(error)") }
        let key = try AuditCLI.run { () throws(AuditError) in
            try LogKeyFile.load(path: logKey ?? LogKeyFile.defaultPath(forDatabase: db))
        }
        let log: AuditLog
        do throws(AuditError) {
            log = try await AuditLog.open(pool: pool, signingKey: key, origin: origin, checkpointEvery: checkpointEvery)
        } catch {
            throw AuditCLI.reportable(error)
        }
        let next = Counter()
        let total = entries
        let acks = printAcks
        let cpuBefore = Self.processCPUSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        let latencies: [UInt64] = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var mine: [UInt64] = []
                    while true {
                        let index = next.take()
                        guard index < total else { break }
                        let event = AuditEvent(
                            tenant: "bench-\(index % 8)", type: .secretReleased,
                            actor: ["kind": "bench", "worker": .integer(Int64(worker))],
                            object: ["secret": .string("bench/\(index)"), "version": 1], requestId: "bench-\(index)")
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let receipt: AuditReceipt
                        do throws(AuditError) { receipt = try await log.append(event) } catch { throw AuditCLI.reportable(error) }
                        mine.append(DispatchTime.now().uptimeNanoseconds - t0)
                        if acks { FileHandle.standardOutput.write(Data("ack \(receipt.seq)\n".utf8)) }
                    }
                    return mine
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = Self.processCPUSeconds() - cpuBefore
        do throws(AuditError) { try await log.signCheckpoint() } catch { throw AuditCLI.reportable(error) }
        let sorted = latencies.sorted()
        func percentile(_ p: Int) -> Double { sorted.isEmpty ? 0 : Double(sorted[min(sorted.count - 1, sorted.count * p / 100)]) / 1000 }
        let report = Report(
            entries: latencies.count, concurrency: concurrency, size: log.head.size,
            appendsPerSecond: elapsed > 0 ? Double(latencies.count) / elapsed : 0, p50Micros: percentile(50), p99Micros: percentile(99),
            cpuMicrosPerAppend: latencies.isEmpty ? 0 : cpu * 1e6 / Double(latencies.count))
        if global.json {
            try Output.printJSON(report)
        } else {
            print(
                String(
                    format:
                        "audit-append: %d entries, concurrency %d: %.0f appends/s, p50 %.0f µs, p99 %.0f µs, CPU %.1f µs per append (log size %llu)",
                    report.entries, concurrency, report.appendsPerSecond, report.p50Micros, report.p99Micros, report.cpuMicrosPerAppend,
                    report.size))
        }
    }
}

extension AuditBenchAppend {
    /// User+system CPU seconds this process has used (every thread: the appenders, GRDB's queues, the writer).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// Hands out 0, 1, 2, … to concurrent workers.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
