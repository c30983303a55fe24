public import Foundation

/// Reads host files under a prefix (`/` on a real host; a fixture tree in tests: `--host-root DIR`).
///
/// Every read is capped and never throws: a file that is absent or unreadable is `nil`, which the checks report.
public struct HostRoot: Sendable {
    /// The prefix every host path is read under.
    public let root: URL

    /// - Parameter root: the prefix (default `/`).
    public init(_ root: URL = URL(fileURLWithPath: "/")) { self.root = root }

    /// The largest file read (sysfs values are a few bytes; /proc/cpuinfo of a large host is some hundred KiB).
    public static let maximumFileSize = 8 << 20

    /// The URL of host path `path` (absolute, like `/dev/kvm`) under the root.
    public func url(_ path: String) -> URL {
        root.appendingPathComponent(String(path.drop { $0 == "/" }))
    }

    /// Whether `path` exists (a device node, file or directory).
    public func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: url(path).path) }

    /// The text of `path`, nil when absent, unreadable or larger than ``maximumFileSize``.
    public func text(_ path: String) -> String? {
        guard let handle = try? FileHandle(forReadingFrom: url(path)) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: Self.maximumFileSize + 1), data.count <= Self.maximumFileSize else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The trimmed first line of `path` (a sysfs parameter), nil when absent.
    public func value(_ path: String) -> String? {
        text(path).map {
            String($0.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
        }
    }

    /// Whether a kernel module parameter reads as enabled (`Y`, `y`, `1`).
    public func flag(_ path: String) -> Bool? {
        guard let value = value(path) else { return nil }
        return ["Y", "y", "1"].contains(value)
    }

    /// The entries of directory `path`, sorted; nil when it is absent.
    public func list(_ path: String) -> [String]? {
        (try? FileManager.default.contentsOfDirectory(atPath: url(path).path))?.sorted()
    }
}
