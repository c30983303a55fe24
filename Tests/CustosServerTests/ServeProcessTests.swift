import CustosTestSupport
import Foundation
import Testing

/// `custos serve` as a process, as `make run` starts it: first start on an empty data directory, a request, and a
/// graceful stop on SIGTERM.
@Suite struct ServeProcessTests {
    /// A loopback port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func get(_ url: String, token: String? = nil) -> (status: Int, body: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", url]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]) else { return nil }
        return (status, String(text[..<newline]))
    }

    @Test(Requirement.skipOrFail(unless: CustosExecutable.isBuilt, "needs the custos executable (swift build)"))
    func firstStartServesAndStopsOnSIGTERM() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("custos-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let port = try Self.freePort()
        let process = Process()
        process.executableURL = CustosExecutable.url
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--data", data.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var health: (status: Int, body: String)?
        for _ in 0..<100 where health?.status != 200 {
            try await Task.sleep(for: .milliseconds(100))
            health = Self.get("http://127.0.0.1:\(port)/healthz")
        }
        #expect(health?.status == 200)
        #expect(health?.body == #"{"status":"ok"}"#)
        let tokenFile = data.appendingPathComponent("bootstrap-admin.token").path
        let mode = try FileManager.default.attributesOfItem(atPath: tokenFile)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Self.get("http://127.0.0.1:\(port)/v1/reference-values/default/mr_td", token: token)?.status == 404)
        #expect(Self.get("http://127.0.0.1:\(port)/v1/reference-values/default/mr_td", token: "custos_x")?.status == 401)
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<100 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
    }
}
