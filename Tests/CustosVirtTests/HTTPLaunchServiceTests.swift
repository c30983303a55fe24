import CustosCrypto
import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// The launcher's HTTP client to the service.
@Suite struct HTTPLaunchServiceTests {
    /// A service that sends the head of its answer and then trickles the body (a space every 0.5 s, 100 s in all):
    /// each request has one deadline for the whole exchange, so the launcher gives up after `timeout` instead of
    /// holding a paused guest while it waits for every byte.
    @Test(.timeLimit(.minutes(10))) func aTricklingAnswerMeetsTheDeadline() async throws {
        let server = try PortProcess.tricklingHTTPServer()
        defer { server.stop() }
        let service = HTTPLaunchService(baseURL: "http://127.0.0.1:\(server.port)", token: "t", timeout: 2)
        let started = ContinuousClock.now
        let error = await #expect(throws: LaunchServiceError.self) {
            try await service.putReferenceValues(tenant: "tenant-a", name: "set", values: ["00"], provenance: nil)
        }
        #expect(error?.status == 0)
        #expect(error?.detail.contains("within the 2 s deadline") == true, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test func segmentsAreEncodedAndDotSegmentsRefused() async throws {
        let service = HTTPLaunchService(baseURL: "http://127.0.0.1:1", token: "t", timeout: 2)
        for bad in ["", ".", ".."] {
            let error = await #expect(throws: LaunchServiceError.self) {
                try await service.putReferenceValues(tenant: bad, name: "set", values: [], provenance: nil)
            }
            #expect(error?.detail == "\"\(bad)\" cannot be a path segment")
        }
    }
}
