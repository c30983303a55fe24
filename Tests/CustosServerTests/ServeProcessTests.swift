import CustosTestSupport
import Foundation
import Testing

/// `custos serve` as a process, as `make run` starts it: first start on an empty data directory, a request, and a
/// graceful stop on SIGTERM.
@Suite struct ServeProcessTests {
    @Test(Requirement.skipOrFail(unless: CustosExecutable.isBuilt, "needs the custos executable (swift build)"))
    func firstStartServesAndStopsOnSIGTERM() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("custos-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let server = try ServeProcess(arguments: ["--data", data.path])
        defer { server.kill() }
        #expect(try await server.waitUntilHealthy() == #"{"status":"ok"}"#)
        let tokenFile = data.appendingPathComponent("bootstrap-admin.token").path
        let mode = try FileManager.default.attributesOfItem(atPath: tokenFile)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ServeProcess.get("\(server.baseURL)/v1/reference-values/default/mr_td", token: token)?.status == 404)
        #expect(ServeProcess.get("\(server.baseURL)/v1/reference-values/default/mr_td", token: "custos_x")?.status == 401)
        #expect(await server.stop() == 0)
    }
}
