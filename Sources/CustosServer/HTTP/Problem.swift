public import CustosCrypto
public import HTTPTypes
public import Hummingbird

/// An RFC 9457 problem (`application/problem+json`), the error body of every `/v1` route (service.md §8.3).
///
/// `type` is a URN naming the problem kind (`urn:custos:problem:policy-denied`): stable for scripts, and it
/// resolves nowhere, so no client is tempted to fetch it.
public struct Problem: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let kind: String
    public let title: String
    public let detail: String
    /// Extension members (`appraisal_id`, `decision_id`, lint errors); string values only.
    public let extensions: [String: JSONValue]
    /// Extra response headers (`Retry-After`).
    public let headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, _ kind: String, _ detail: String, title: String? = nil,
        extensions: [String: JSONValue] = [:], headers: HTTPFields = [:]
    ) {
        self.status = status
        self.kind = kind
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.extensions = extensions
        self.headers = headers
    }

    public var type: String { "urn:custos:problem:\(kind)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var members = extensions
        members["type"] = .string(type)
        members["title"] = .string(title)
        members["status"] = .integer(Int64(status.code))
        members["detail"] = .string(detail)
        members["instance"] = .string(request.uri.path)
        var fields = headers
        fields[.contentType] = "application/problem+json"
        let body = CanonicalJSON.encode(.object(members))
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    // The status-code policy of service.md §8.3, one constructor per row.
    public static func badRequest(_ detail: String) -> Problem { Problem(.badRequest, "bad-request", detail) }
    public static func unauthorized(_ detail: String) -> Problem { Problem(.unauthorized, "unauthorized", detail) }
    public static func forbidden(_ detail: String) -> Problem { Problem(.forbidden, "forbidden", detail) }
    public static func notFound(_ detail: String = "no such resource") -> Problem { Problem(.notFound, "not-found", detail) }
    public static func conflict(_ detail: String) -> Problem { Problem(.conflict, "conflict", detail) }
    public static func preconditionFailed(_ detail: String) -> Problem {
        Problem(.preconditionFailed, "precondition-failed", detail)
    }
    public static func payloadTooLarge(limit: Int) -> Problem {
        Problem(.contentTooLarge, "payload-too-large", "the request body exceeds \(limit) bytes")
    }
    public static func unprocessable(_ detail: String) -> Problem { Problem(.unprocessableContent, "evidence-invalid", detail) }
    public static func tooManyRequests(retryAfter seconds: Int) -> Problem {
        Problem(.tooManyRequests, "rate-limited", "too many requests; retry later", headers: [.retryAfter: "\(seconds)"])
    }
    public static func unavailable(_ detail: String, retryAfter seconds: Int) -> Problem {
        Problem(.serviceUnavailable, "cannot-decide", detail, headers: [.retryAfter: "\(seconds)"])
    }
    public static func internalError() -> Problem {
        Problem(.internalServerError, "internal", "the service failed; the request id is in the logs")
    }
}

/// The error body of the Trustee-compatible `/kbs/v0` routes (service.md §4.2):
/// `{"type": "https://github.com/confidential-containers/kbs/errors/<Kind>", "detail": …}`, 404 for unknown paths
/// and plugins, 401 for everything else (403 for policy denial when configured).
public struct KBSErrorResponse: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let kind: String
    public let detail: String
    public let headers: HTTPFields

    public init(_ kind: String, _ detail: String, status: HTTPResponse.Status = .unauthorized, headers: HTTPFields = [:]) {
        self.kind = kind
        self.detail = detail
        self.status = status
        self.headers = headers
    }

    public static let typePrefix = "https://github.com/confidential-containers/kbs/errors/"

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = CanonicalJSON.encode(.object(["type": .string(Self.typePrefix + kind), "detail": .string(detail)]))
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
