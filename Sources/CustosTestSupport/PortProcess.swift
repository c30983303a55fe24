public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A helper process whose first stdout line is a port (the TLS terminator, the Python KBS).
public final class PortProcess {
    public let process: Process
    public let port: Int
    public let stderrURL: URL

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ executable: String, _ arguments: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent("custos-helper-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
        var line: [UInt8] = []
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        guard let text = String(bytes: line, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            let errors = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
            throw Failed(description: "\(executable) \(arguments) printed no port: \(errors)")
        }
        self.port = port
    }

    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// SIGKILL: the helpers hold no state, and a child spawned from a test thread inherits a signal mask that blocks
    /// SIGTERM.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: stderrURL)
    }
}

extension PortProcess {
    /// A server that answers every request with the head of a 200 answer (`Content-Length: 200`) and then trickles
    /// the body, one space every `interval` seconds: a client with only per-read timeouts waits for all of it.
    public static func tricklingHTTPServer(interval: Double = 0.5) throws -> PortProcess {
        let script = """
            import socket, sys, time
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            print(s.getsockname()[1], flush=True)
            while True:
                c, _ = s.accept()
                try:
                    c.recv(65536)
                    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 200\\r\\n\\r\\n")
                    for _ in range(200):
                        c.sendall(b" ")
                        time.sleep(float(sys.argv[1]))
                except OSError:
                    pass
                finally:
                    c.close()
            """
        return try PortProcess("/usr/bin/python3", ["-c", script, String(interval)])
    }
}
