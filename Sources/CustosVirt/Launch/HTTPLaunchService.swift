public import AsyncHTTPClient
public import CustosCrypto
import Foundation
import NIOCore
import NIOHTTP1

/// ``LaunchServiceAPI`` over HTTP (AsyncHTTPClient): bearer-token requests to the service's `/v1` API.
public struct HTTPLaunchService: LaunchServiceAPI {
    /// The service's base URL (`https://custos.example:8443`), without a trailing slash.
    public let baseURL: String
    private let token: String
    private let client: HTTPClient
    /// One deadline per request, for the whole exchange (connection, head and body), in seconds.
    public let timeout: Int64
    /// The largest response body read (the service's answers are a few KiB).
    public static let maximumResponse = 1 << 20

    /// - Parameters:
    ///   - baseURL: the service (`http://…` or `https://…`); a trailing slash is dropped.
    ///   - token: the bearer token (a `launcher` token for SEV, a `tenant-admin` token to register reference values).
    ///   - client: the HTTP client (``HTTPClient/shared`` by default).
    ///   - timeout: seconds for each whole exchange (60 by default; at least 1).
    public init(baseURL: String, token: String, client: HTTPClient = .shared, timeout: Int64 = 60) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token
        self.client = client
        self.timeout = max(1, timeout)
    }

    public func createLaunch(_ request: LaunchCreation) async throws -> CreatedLaunch {
        let answer = try await send(.POST, "/v1/launches", body: request.json, expecting: [201])
        guard let id = answer["launch_id"]?.stringValue, !id.isEmpty, let godh = answer["godh_cert"]?.stringValue,
            let session = answer["session_blob"]?.stringValue
        else {
            throw LaunchServiceError(status: 201, detail: "the service's launch lacks launch_id, godh_cert or session_blob")
        }
        return CreatedLaunch(launchID: id, godhCertificate: godh, sessionBlob: session, expiresAt: answer["expires_at"]?.stringValue)
    }

    public func postMeasurement(launchID: String, _ report: MeasurementReport) async throws -> AllowedLaunch {
        let answer = try await send(.POST, "/v1/launches/\(try Self.segment(launchID))/measurement", body: report.json, expecting: [200])
        guard answer["decision"]?.stringValue == "allow", let header = answer.value(atPath: "secret.header_b64")?.stringValue,
            let data = answer.value(atPath: "secret.data_b64")?.stringValue
        else {
            throw LaunchServiceError(status: 200, detail: "the service's decision is not an allow with a secret packet")
        }
        do {
            return AllowedLaunch(
                appraisalID: answer["appraisal_id"]?.stringValue ?? "", secretHeader: try Base64.decode(header),
                secretData: try Base64.decode(data))
        } catch {
            throw LaunchServiceError(status: 200, detail: "the secret packet is not base64: \(error)")
        }
    }

    public func putReferenceValues(tenant: String, name: String, values: [String], provenance: JSONValue?) async throws {
        var body: [String: JSONValue] = ["values": .array(values.map { .string($0) })]
        if let provenance { body["provenance"] = provenance }
        let path = "/v1/reference-values/\(try Self.segment(tenant))/\(try Self.segment(name))"
        _ = try await send(.PUT, path, body: .object(body), expecting: [200, 201])
    }

    // MARK: HTTP

    /// One path segment, percent-encoded; an empty one or a dot segment is refused.
    static func segment(_ value: String) throws(LaunchServiceError) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        guard !value.isEmpty, value != ".", value != "..", let encoded = value.addingPercentEncoding(withAllowedCharacters: allowed)
        else {
            throw LaunchServiceError(status: 0, detail: "\"\(value)\" cannot be a path segment")
        }
        return encoded
    }

    private func send(_ method: HTTPMethod, _ path: String, body: JSONValue, expecting: Set<Int>) async throws -> JSONValue {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: CanonicalJSON.encode(body)))
        let response: HTTPClientResponse
        let buffer: ByteBuffer
        do {
            let (client, seconds, prepared) = (self.client, timeout, request)
            (response, buffer) = try await withDeadline(seconds: seconds) {
                let response = try await client.execute(prepared, timeout: .seconds(seconds))
                return (response, try await response.body.collect(upTo: Self.maximumResponse))
            }
        } catch {
            throw LaunchServiceError(status: 0, detail: "\(method.rawValue) \(baseURL)\(path): \(error)")
        }
        let status = Int(response.status.code)
        let document = (try? JSONValue.parse(Array(buffer: buffer))) ?? .null
        guard expecting.contains(status) else {
            let text = String(decoding: Array(buffer: buffer).prefix(512), as: UTF8.self)
            throw LaunchServiceError(
                status: status, problemType: document["type"]?.stringValue,
                detail: document["detail"]?.stringValue ?? document["title"]?.stringValue
                    ?? (text.isEmpty ? response.status.reasonPhrase : text),
                appraisalID: document["appraisal_id"]?.stringValue)
        }
        guard case .object = document else {
            throw LaunchServiceError(status: status, detail: "\(method.rawValue) \(path) did not answer a JSON object")
        }
        return document
    }
}
