public import CustosCrypto

// MARK: - The one error type of CustosKBS

/// The one error type of ``CustosKBS``, shaped like Trustee's KBS errors so the service can answer with them as is.
///
/// ``code`` is the Trustee error *kind* (the last path segment of the `type` URL); ``errorBody`` is the JSON body
/// Trustee sends, `{"type": "https://github.com/confidential-containers/kbs/errors/<Kind>", "detail": …}`
/// (service.md §4.2). Equal by code only.
public struct KBSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A Trustee error kind (extensible: a struct of `static let` values).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The request path is not a KBS path (404).
        public static let invalidRequestPath = Code("InvalidRequestPath")
        /// The first path segment names no plugin (404).
        public static let pluginNotFound = Code("PluginNotFound")
        /// The evidence, or the request that carries it, was refused (401): version, TEE, nonce, binding, quote.
        public static let attestationError = Code("AttestationError")
        /// A request body is not the JSON the protocol defines (401).
        public static let serdeError = Code("SerdeError")
        /// No session cookie or Bearer token (401).
        public static let tokenNotFound = Code("TokenNotFound")
        /// The attestation token does not verify (401).
        public static let tokenVerifierError = Code("TokenVerifierError")
        /// The resource could not be encrypted to the TEE key (401).
        public static let jweError = Code("JweError")
        /// The resource policy denied the request (401 by default, service.md §8.3).
        public static let policyDeny = Code("PolicyDeny")
        /// A plugin failed internally (401, as Trustee does).
        public static let pluginInternalError = Code("PluginInternalError")
    }

    public let code: Code
    /// A sentence for a human: what was refused and why.
    public let reason: String
    /// The JSON member concerned, as a dotted path (`runtime-data.tee-pubkey.x`), when there is one.
    public let field: String?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, field: String? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.field = field
        self.file = file
        self.line = line
    }

    public static func == (lhs: KBSError, rhs: KBSError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        if let field { return "\(code): \(reason) [\(field)]" }
        return "\(code): \(reason)"
    }

    /// The HTTP status Trustee uses: 404 for ``Code/invalidRequestPath`` and ``Code/pluginNotFound``, 401 for all
    /// else. `policyDenyStatus` lets the service answer 403 for a policy denial instead (service.md §8.3).
    public func httpStatus(policyDenyStatus: Int = 401) -> Int {
        switch code {
        case .invalidRequestPath, .pluginNotFound: 404
        case .policyDeny: policyDenyStatus
        default: 401
        }
    }

    /// The Trustee error body.
    public var errorBody: KBSErrorBody { KBSErrorBody(kind: code.name, detail: reason) }
}

// MARK: - The wire error body

/// Trustee's error body: `{"type": "<prefix>/<Kind>", "detail": "<text>"}` (kbs_types `ErrorInformation`).
public struct KBSErrorBody: Sendable, Equatable {
    /// The prefix every `type` carries.
    public static let typePrefix = "https://github.com/confidential-containers/kbs/errors/"

    /// The kind, e.g. `PolicyDeny`.
    public let kind: String
    public let detail: String

    public init(kind: String, detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// Parses an error body (for clients). A `type` without the Trustee prefix is kept whole as the kind.
    public init(json: JSONValue) throws(KBSError) {
        let members = try WireJSON.object(json, field: "error")
        let type = try WireJSON.string(members, "type", in: "error")
        kind = type.hasPrefix(Self.typePrefix) ? String(type.dropFirst(Self.typePrefix.count)) : type
        detail = try WireJSON.string(members, "detail", in: "error")
    }

    public var jsonValue: JSONValue { ["type": .string(Self.typePrefix + kind), "detail": .string(detail)] }

    /// The body as canonical JSON bytes.
    public var jsonBytes: [UInt8] { CanonicalJSON.encode(jsonValue) }
}

// MARK: - Strict JSON helpers

/// Member access for KBS wire JSON that turns every shape error into a ``KBSError`` naming the field.
enum WireJSON {
    static func parse(_ bytes: some Collection<UInt8>, what: String, maximumBytes: Int, maxDepth: Int = 64) throws(KBSError) -> JSONValue {
        guard bytes.count <= maximumBytes else {
            throw KBSError(.serdeError, "\(what) is \(bytes.count) bytes; at most \(maximumBytes) are accepted")
        }
        do throws(JSONError) {
            return try JSONValue.parse(bytes, maxDepth: maxDepth)
        } catch {
            throw KBSError(.serdeError, "\(what) is not valid JSON: \(error)")
        }
    }

    static func object(_ value: JSONValue, field: String) throws(KBSError) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw KBSError(.serdeError, "\(field) must be a JSON object", field: field) }
        return members
    }

    static func path(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "." + name }

    static func string(_ members: [String: JSONValue], _ name: String, in parent: String) throws(KBSError) -> String {
        guard let value = members[name] else {
            throw KBSError(.serdeError, "missing required member \"\(name)\"", field: path(parent, name))
        }
        guard case .string(let text) = value else {
            throw KBSError(.serdeError, "member \"\(name)\" must be a string", field: path(parent, name))
        }
        return text
    }

    static func optionalString(_ members: [String: JSONValue], _ name: String, in parent: String) throws(KBSError) -> String? {
        guard let value = members[name], value != .null else { return nil }
        guard case .string(let text) = value else {
            throw KBSError(.serdeError, "member \"\(name)\" must be a string", field: path(parent, name))
        }
        return text
    }

    static func integer(_ members: [String: JSONValue], _ name: String, in parent: String) throws(KBSError) -> Int64 {
        guard let value = members[name] else {
            throw KBSError(.serdeError, "missing required member \"\(name)\"", field: path(parent, name))
        }
        guard case .integer(let number) = value else {
            throw KBSError(.serdeError, "member \"\(name)\" must be an integer", field: path(parent, name))
        }
        return number
    }

    static func requiredObject(_ members: [String: JSONValue], _ name: String, in parent: String) throws(KBSError) -> [String: JSONValue] {
        guard let value = members[name] else {
            throw KBSError(.serdeError, "missing required member \"\(name)\"", field: path(parent, name))
        }
        return try object(value, field: path(parent, name))
    }
}
