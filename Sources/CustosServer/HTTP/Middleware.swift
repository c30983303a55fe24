public import HTTPTypes
public import Hummingbird
import Logging
import NIOCore

/// Gives each request an id (the client's `request-id` when it is 1–64 characters of `[A-Za-z0-9._-]`, else a
/// new random one), puts it in the logger's metadata and echoes it on every response, errors included.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = CustosRequestContext
    public static let header = HTTPField.Name("request-id")!

    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        let id = request.headers[Self.header].flatMap { Self.isWellFormed($0) ? $0 : nil } ?? RequestID().description
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        do {
            var response = try await next(request, context)
            response.headers[Self.header] = id
            return response
        } catch let error as any HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[Self.header] = id
            return response
        } catch {
            context.logger.error("unhandled error: \(String(describing: type(of: error)))")
            var response = try Problem.internalError().response(from: request, context: context)
            response.headers[Self.header] = id
            return response
        }
    }

    static func isWellFormed(_ value: String) -> Bool {
        guard (1...64).contains(value.utf8.count) else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}

/// Headers every response carries (service.md §13; the console issue adds its CSP on top), errors included.
///
/// The innermost middleware, so it is also where a thrown error becomes its response (a problem, a KBS error, a 404
/// for an unknown path; anything else a logged 500): Hummingbird turns errors into responses only outside the whole
/// middleware chain, so an error passing through here used to leave without these headers, and uncounted by
/// ``MetricsRecordingMiddleware``.
public struct SecurityHeadersMiddleware: RouterMiddleware {
    public typealias Context = CustosRequestContext
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("unhandled error: \(String(describing: type(of: error)))")
            response = try Problem.internalError().response(from: request, context: context)
        }
        response.headers[Self.contentTypeOptions] = "nosniff"
        response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
        response.headers[Self.referrerPolicy] = "no-referrer"
        return response
    }

    // Made once: a field name checks and lowercases its text when it is made.
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}

/// Collects request bodies with a limit: a larger body is a 413 problem (or a KBS error on `/kbs/v0`), never
/// a partially read request.
public enum RequestBodies {
    public static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw Problem.payloadTooLarge(limit: limit)
        }
        var request = request
        do {
            return try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem.payloadTooLarge(limit: limit)
        }
    }
}
