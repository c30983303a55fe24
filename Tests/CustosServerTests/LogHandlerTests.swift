import CustosServer
import Logging
import Synchronization
import Testing

/// `CustosLogHandler` writes what swift-log's `StreamLogHandler` writes (the reference: the same logger calls through
/// both), only formatting the metadata later.
@Suite struct LogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// A `TextOutputStream` over ``Lines`` for the reference handler.
    struct Stream: TextOutputStream, Sendable {
        let sink: Lines
        mutating func write(_ string: String) { sink.append(string) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "the disk is full" }
    }

    static func exercise(_ logger: Logger) {
        var logger = logger
        logger.logLevel = .info
        logger.info("no metadata")
        logger[metadataKey: "request_id"] = "req-1"
        logger[metadataKey: "hb.request.id"] = .stringConvertible(42)
        logger.warning("with metadata", metadata: ["tenant": "acme", "a": ["x", "y"]])
        logger.debug("below the level")
        logger[metadataKey: "request_id"] = nil
        logger.error("an error", error: Failure())
        logger[metadataKey: "b"] = .dictionary(["k": "v"])
        logger.critical("nested metadata", source: "CustosTest")
    }

    @Test func linesMatchStreamLogHandlerAfterTheTimestamp() {
        let ours = Lines()
        let reference = Lines()
        Self.exercise(Logger(label: "custos") { CustosLogHandler(label: $0, write: { ours.append($0) }) })
        Self.exercise(Logger(label: "custos") { StreamLogHandler(label: $0, stream: Stream(sink: reference), metadataProvider: nil) })
        func withoutTimestamp(_ line: String) -> Substring { line.drop { $0 != " " } }
        #expect(ours.all.count == 4)
        #expect(ours.all.map(withoutTimestamp) == reference.all.map(withoutTimestamp))
        #expect(ours.all.first?.hasSuffix(" info custos: [CustosServerTests] no metadata\n") == true, "\(ours.all)")
        // The timestamp is the same form: 2026-12-03T10:52:09+0000.
        let stamp = ours.all.first.map { String($0.prefix { $0 != " " }) } ?? ""
        #expect(stamp.count == 24 && stamp.dropFirst(10).first == "T", "\(stamp)")
    }
}
