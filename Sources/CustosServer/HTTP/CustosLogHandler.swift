public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The service's log lines on standard error, in swift-log's `StreamLogHandler` format
/// (`2026-12-03T10:52:09+0000 info custos: request_id=… [CustosServer] message`), with the metadata formatted when
/// a line is written instead of each time a key is set.
///
/// `StreamLogHandler` sorts and joins its whole metadata on every change; Hummingbird and ``RequestIDMiddleware`` each
/// set a key on every request's logger, so at the default level, where a request logs nothing, that formatting was
/// about a tenth of the CPU of a request that does no work (`GET /healthz`, `perf record`).
public struct CustosLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// A handler writing to standard error.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.init(label: label, metadataProvider: metadataProvider, write: Self.standardError)
    }

    /// A handler writing each line to `write` (tests).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { merged.merge(provided) { $1 } }
        if let explicit = event.metadata, !explicit.isEmpty { merged.merge(explicit) { $1 } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = Self.timestamp() + " \(event.level)" + (label.isEmpty ? "" : " ") + label + ":"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        line += " [\(event.source)] \(event.message)\n"
        write(line)
    }

    /// Local time as `StreamLogHandler` writes it (`%Y-%m-%dT%H:%M:%S%z`).
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One whole line per write to file descriptor 2 (serialized, so concurrent lines do not interleave even when the
    /// kernel takes a line in parts).
    @Sendable static func standardError(_ line: String) {
        var line = line
        writing.withLock { _ in
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0, errno == EINTR {
                        continue
                    } else {
                        return  // a closed or broken standard error: the line is dropped, the service goes on
                    }
                }
            }
        }
    }

    private static let writing = Mutex(())
}
