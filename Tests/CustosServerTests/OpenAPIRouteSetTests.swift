import CustosCrypto
import CustosServer
import CustosTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import Yams

/// The routes `custos serve` registers and the operations `openapi.yaml` documents are the same set (issue 11 §4).
///
/// Hummingbird's router has no public list of its routes, so the registrations are read from the source of
/// CustosServer: every `router.<call>(` there must be one of the recognised forms (a literal path with a literal
/// method) or one of the few listed dynamic ones, so a new way of registering routes fails this test instead of
/// escaping it. Then every documented operation is requested from the live service: none may get the router's own
/// 404 (no body); the service's 404s carry a problem body.
@Suite struct OpenAPIRouteSetTests {
    /// A route as `METHOD /path`, with every `{name}` written `{}`.
    struct Route: Hashable, Comparable, CustomStringConvertible {
        let method: String
        let path: String
        init(_ method: String, _ path: String) {
            self.method = method.uppercased()
            self.path = Self.normalise(path)
        }
        var description: String { "\(method) \(path)" }
        static func < (a: Route, b: Route) -> Bool { a.description < b.description }

        /// `{tenant}` → `{}` (parameter names differ between the router and the document, harmlessly).
        static func normalise(_ path: String) -> String {
            path.replacingOccurrences(of: #"\{[^}/]*\}"#, with: "{}", options: .regularExpression)
        }
    }

    /// Registrations whose path is not one OpenAPI template, and the documented operations they serve.
    /// Hummingbird's `**` takes the rest of the path (a secret path has several segments; the handler splits off
    /// `:rotate` and `/versions/{v}`), and a path segment cannot be a parameter plus a literal suffix (`{id}:test`),
    /// so that handler checks the suffix itself.
    static let templateMapping: [Route: [Route]] = [
        Route("GET", "/v1/secrets/{}/**"): [Route("GET", "/v1/secrets/{}/{}"), Route("GET", "/v1/secrets/{}/{}/versions")],
        Route("PUT", "/v1/secrets/{}/**"): [Route("PUT", "/v1/secrets/{}/{}")],
        Route("POST", "/v1/secrets/{}/**"): [Route("POST", "/v1/secrets/{}/{}:rotate")],
        Route("DELETE", "/v1/secrets/{}/**"): [Route("DELETE", "/v1/secrets/{}/{}/versions/{}")],
        Route("POST", "/v1/policies/{}"): [Route("POST", "/v1/policies/{}:test")],
    ]

    /// The Trustee-compatible KBS protocol is specified by Trustee (service.md §4), not by openapi.yaml.
    static let undocumentedPrefix = "/kbs/v0/"

    /// Registrations that name their path or method through a variable: the Trustee-compatible 404s under
    /// `/kbs/v0` (KBSRoutes.swift). Each is matched by its exact call text; any other dynamic one fails the test.
    static let dynamicRegistrations: Set<String> = [
        "KBSRoutes.swift: router.on(RouterPath(pattern), method: method)",
        #"KBSRoutes.swift: router.on("/kbs/v0/{plugin}", method: method)"#,
        #"KBSRoutes.swift: router.on("/kbs/v0/{plugin}/**", method: method)"#,
    ]

    /// Operations documented from issue 11 §4 that another branch registers (SEV launch API, audit API). Until that
    /// branch is merged they are documented but not registered; once a route is registered it must be removed from
    /// this list (the test says so), so the list cannot hide a route that disappears later.
    static let pendingRegistration: Set<Route> = []

    static let httpMethods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    // MARK: Reading the registrations

    struct Registrations {
        var routes: Set<Route> = []
        var dynamic: Set<String> = []
        var unrecognised: [String] = []
    }

    /// Every `router.<name>(` call in `text` (the source of `file`).
    static func registrations(in text: String, file: String) throws -> Registrations {
        var result = Registrations()
        let literal = try Regex(#"^router\.(get|post|put|delete|patch|head)\(\s*"([^"\\]*)"\s*\)"#)
        let on = try Regex(#"^router\.on\(\s*"([^"\\]*)"\s*,\s*method:\s*\.(get|post|put|delete|patch|head)\s*\)"#)
        var rest = text[...]
        while let start = rest.firstRange(of: "router.") {
            // The call up to the end of its argument list (the handler closure follows, trailing).
            let call = rest[start.lowerBound...]
            rest = rest[start.upperBound...]
            // Identifiers that merely end in "router" (`self.router.`, `subrouter.`) are calls on the same object
            // or on another one: both must be recognised, so only the prefix character is looked at for words.
            if call.startIndex > text.startIndex {
                let before = text[text.index(before: call.startIndex)]
                if before.isLetter || before.isNumber || before == "_" { continue }
            }
            guard let close = Self.closingParenthesis(call) else {
                result.unrecognised.append("\(file): \(call.prefix(80))")
                continue
            }
            let head = String(call[..<close])
            if head.hasPrefix("router.add(middleware:") { continue }
            if let match = head.wholeMatch(of: literal) {
                result.routes.insert(Route(String(match.output[1].substring ?? ""), String(match.output[2].substring ?? "")))
            } else if let match = head.wholeMatch(of: on) {
                result.routes.insert(Route(String(match.output[2].substring ?? ""), String(match.output[1].substring ?? "")))
            } else {
                let normalised = head.replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression)
                if Self.dynamicRegistrations.contains("\(file): \(normalised)") {
                    result.dynamic.insert("\(file): \(normalised)")
                } else {
                    result.unrecognised.append("\(file): \(normalised)")
                }
            }
        }
        return result
    }

    /// The index just past the `)` that closes the first `(` of `call` (string literals skipped).
    static func closingParenthesis(_ call: Substring) -> Substring.Index? {
        var depth = 0
        var inString = false
        var index = call.startIndex
        while index < call.endIndex {
            let character = call[index]
            if inString {
                if character == "\\" {
                    index = call.index(after: index)
                    if index == call.endIndex { return nil }
                } else if character == "\"" {
                    inString = false
                }
            } else if character == "\"" {
                inString = true
            } else if character == "(" {
                depth += 1
            } else if character == ")" {
                depth -= 1
                if depth == 0 { return call.index(after: index) }
            } else if character == "{" && depth == 0 {
                return nil
            }
            index = call.index(after: index)
        }
        return nil
    }

    static func sourceRegistrations() throws -> Registrations {
        let root = TestData.packageRoot.appendingPathComponent("Sources/CustosServer")
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
            throw Failure("cannot list \(root.path)")
        }
        var all = Registrations()
        var files = 0
        for case let url as URL in walker where url.pathExtension == "swift" {
            files += 1
            let text = try String(contentsOf: url, encoding: .utf8)
            // A route group prefixes the paths of its routes, which this reading would get wrong: none is allowed.
            for construct in [".group(", "RouteCollection", "addRoutes("] where text.contains(construct) {
                all.unrecognised.append("\(url.lastPathComponent): uses \(construct) (teach OpenAPIRouteSetTests to read it)")
            }
            let found = try registrations(in: text, file: url.lastPathComponent)
            all.routes.formUnion(found.routes)
            all.dynamic.formUnion(found.dynamic)
            all.unrecognised += found.unrecognised
        }
        guard files > 0 else { throw Failure("no Swift files under \(root.path)") }
        return all
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: Reading the document

    static func document() throws -> [String: Any] {
        let text = try String(contentsOf: TestData.packageRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        guard let document = try Yams.load(yaml: text) as? [String: Any] else { throw Failure("openapi.yaml is not a mapping") }
        return document
    }

    /// Every documented operation, with its path as written in the document.
    static func documentedOperations(_ document: [String: Any]) throws -> [(route: Route, template: String)] {
        guard let paths = document["paths"] as? [String: Any] else { throw Failure("openapi.yaml has no paths") }
        var operations: [(Route, String)] = []
        for (template, item) in paths {
            guard let item = item as? [String: Any] else { throw Failure("path item \(template) is not a mapping") }
            for method in httpMethods where item[method] != nil { operations.append((Route(method, template), template)) }
        }
        return operations
    }

    // MARK: Tests

    /// The reader itself: each recognised form is read, and an unknown form is reported, not skipped.
    @Test func registrationReaderRecognisesTheFormsAndRejectsOthers() throws {
        let source = """
            router.add(middleware: RequestIDMiddleware())
            router.get("/a/{x}") { _, _ in "" }
            router.on("/b/**", method: .put) { _, _ in "" }
            router.post(
                "/c") { _, _ in "" }
            router.group("/v2").get("/d") { _, _ in "" }
            router.get(path) { _, _ in "" }
            """
        let found = try Self.registrations(in: source, file: "X.swift")
        #expect(found.routes == [Route("GET", "/a/{}"), Route("PUT", "/b/**"), Route("POST", "/c")])
        #expect(found.unrecognised == [#"X.swift: router.group("/v2")"#, "X.swift: router.get(path)"])
    }

    @Test func registeredRoutesAreTheDocumentedOperations() throws {
        let registrations = try Self.sourceRegistrations()
        #expect(registrations.unrecognised.isEmpty, "route registrations this test cannot read: \(registrations.unrecognised)")
        #expect(registrations.dynamic == Self.dynamicRegistrations, "the listed dynamic registrations changed")
        var registered: Set<Route> = []
        for route in registrations.routes where !route.path.hasPrefix(Self.undocumentedPrefix) {
            if let mapped = Self.templateMapping[route] {
                registered.formUnion(mapped)
            } else if route.path.contains("*") {
                Issue.record("catch-all registration \(route) has no entry in templateMapping")
            } else {
                registered.insert(route)
            }
        }
        for route in Self.templateMapping.keys {
            #expect(registrations.routes.contains(route), "templateMapping names \(route), which is no longer registered")
        }
        let operations = try Self.documentedOperations(try Self.document())
        let documented = Set(operations.map(\.route))
        #expect(documented.count == operations.count, "an operation is documented twice under different parameter names")
        for route in Self.pendingRegistration {
            #expect(documented.contains(route), "\(route) is pending registration but not documented")
            #expect(!registered.contains(route), "\(route) is registered now: remove it from pendingRegistration")
        }
        let undocumented = registered.subtracting(documented).sorted()
        let unregistered = documented.subtracting(registered).subtracting(Self.pendingRegistration).sorted()
        #expect(undocumented.isEmpty, "registered but not in openapi.yaml: \(undocumented)")
        #expect(unregistered.isEmpty, "in openapi.yaml but not registered: \(unregistered)")
        // The routes the service cannot do without are seen at all (the reader did not silently read nothing).
        #expect(registered.contains(Route("POST", "/v1/attestations")) && registered.contains(Route("GET", "/healthz")))
    }

    /// A concrete request path for a documented template (a secret path of two segments, versions numeric).
    static func concretePath(_ template: String) -> String {
        var path = template
        let values = ["{path}": "app/key", "{version}": "1", "{tenant}": "default"]
        for (name, value) in values { path = path.replacingOccurrences(of: name, with: value) }
        return path.replacingOccurrences(of: #"\{[^}/]*\}"#, with: "x", options: .regularExpression)
    }

    @Test func everyDocumentedOperationReachesAHandler() async throws {
        let operations = try Self.documentedOperations(try Self.document()).filter { !Self.pendingRegistration.contains($0.route) }
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            // What the router answers for a path no route has: a 404 without a body (the discriminator below).
            try await client.execute(uri: "/v1/no-such-route", method: .get, headers: fixture.admin) { response in
                #expect(response.status == .notFound)
                #expect(response.body.readableBytes == 0, "the router's own 404 has a body now; this test must learn to tell")
            }
            for (route, template) in operations {
                let method = try #require(HTTPRequest.Method(route.method))
                let uri = Self.concretePath(template)
                try await client.execute(uri: uri, method: method, headers: fixture.admin, body: ByteBuffer(string: "{}")) { response in
                    let bare = response.status == .notFound && response.body.readableBytes == 0
                    #expect(!bare, "\(route.method) \(uri) (\(template)) reached no handler")
                    if response.status == .notFound {
                        #expect(response.headers[.contentType] == "application/problem+json", "\(route.method) \(uri)")
                    }
                }
            }
        }
    }

    /// The documented media types of `status` for an operation (`[]` for a documented response without a body), or
    /// nil when the status is not documented.
    static func documentedMediaTypes(_ document: [String: Any], template: String, method: String, status: Int) -> Set<String>? {
        let operation = ((document["paths"] as? [String: Any])?[template] as? [String: Any])?[method.lowercased()] as? [String: Any]
        guard var response = (operation?["responses"] as? [String: Any])?[String(status)] as? [String: Any] else { return nil }
        if let reference = response["$ref"] as? String, let name = reference.split(separator: "/").last {
            response = ((document["components"] as? [String: Any])?["responses"] as? [String: Any])?[String(name)] as? [String: Any] ?? [:]
        }
        return Set(((response["content"] as? [String: Any]) ?? [:]).keys)
    }

    /// The schema documented for `status` and `media` of an operation (a `$ref` response resolved).
    static func documentedSchema(_ document: [String: Any], template: String, method: String, status: Int, media: String) -> Any? {
        let operation = ((document["paths"] as? [String: Any])?[template] as? [String: Any])?[method.lowercased()] as? [String: Any]
        guard var response = (operation?["responses"] as? [String: Any])?[String(status)] as? [String: Any] else { return nil }
        if let reference = response["$ref"] as? String, let name = reference.split(separator: "/").last {
            response = ((document["components"] as? [String: Any])?["responses"] as? [String: Any])?[String(name)] as? [String: Any] ?? [:]
        }
        return ((response["content"] as? [String: Any])?[media] as? [String: Any])?["schema"]
    }

    /// The part of JSON Schema (2020-12) openapi.yaml uses: `$ref`, `allOf`, `anyOf`, `not`, `type`, `const`, `enum`,
    /// `required`, `properties`, `additionalProperties`, `items`, `pattern`, `minimum`, `maximum`, `minLength`,
    /// `maxLength`. A keyword it does not know is an error, so the check never passes by ignoring one.
    struct SchemaCheck {
        let document: [String: Any]
        static let known: Set<String> = [
            "$ref", "allOf", "anyOf", "not", "type", "const", "enum", "required", "properties", "additionalProperties", "items",
            "pattern", "minimum", "maximum", "minLength", "maxLength", "description", "format", "example",
        ]

        func resolve(_ reference: String) -> Any? {
            var node: Any? = document
            for key in reference.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(key)] }
            return node
        }

        static func equal(_ value: JSONValue, _ expected: Any) -> Bool {
            switch value {
            case .null: return expected is NSNull
            case .bool(let bool): return (expected as? Bool) == bool
            case .integer(let integer): return (expected as? Int).map(Int64.init) == integer
            case .string(let string): return (expected as? String) == string
            default: return false
            }
        }

        static func hasType(_ value: JSONValue, _ type: String) -> Bool {
            switch (value, type) {
            case (.null, "null"), (.bool, "boolean"), (.integer, "integer"), (.integer, "number"), (.string, "string"), (.array, "array"),
                (.object, "object"):
                return true
            default: return false
            }
        }

        func validate(_ value: JSONValue, against schemaNode: Any, at path: String, errors: inout [String]) {
            guard let schema = schemaNode as? [String: Any] else {
                errors.append("\(path): the schema is not a mapping")
                return
            }
            for keyword in schema.keys where !Self.known.contains(keyword) { errors.append("\(path): unknown keyword \(keyword)") }
            if let reference = schema["$ref"] as? String {
                guard let target = resolve(reference) else { return errors.append("\(path): \(reference) does not resolve") }
                validate(value, against: target, at: path, errors: &errors)
            }
            for part in (schema["allOf"] as? [Any]) ?? [] { validate(value, against: part, at: path, errors: &errors) }
            if let options = schema["anyOf"] as? [Any] {
                let matches = options.contains { option in
                    var scratch: [String] = []
                    validate(value, against: option, at: path, errors: &scratch)
                    return scratch.isEmpty
                }
                if !matches { errors.append("\(path): matches no anyOf branch") }
            }
            if let negated = schema["not"] {
                var scratch: [String] = []
                validate(value, against: negated, at: path, errors: &scratch)
                if scratch.isEmpty { errors.append("\(path): matches a `not` schema") }
            }
            if let type = schema["type"] {
                let types = (type as? [String]) ?? [(type as? String) ?? "?"]
                if !types.contains(where: { Self.hasType(value, $0) }) { errors.append("\(path): not of type \(types)") }
            }
            if let expected = schema["const"], !Self.equal(value, expected) { errors.append("\(path): is not the constant \(expected)") }
            if let options = schema["enum"] as? [Any], !options.contains(where: { Self.equal(value, $0) }) {
                errors.append("\(path): \(value) is not one of \(options)")
            }
            switch value {
            case .object(let members):
                for key in (schema["required"] as? [String]) ?? [] where members[key] == nil { errors.append("\(path): lacks \(key)") }
                let properties = (schema["properties"] as? [String: Any]) ?? [:]
                for (key, member) in members {
                    if let property = properties[key] {
                        validate(member, against: property, at: "\(path).\(key)", errors: &errors)
                    } else if let additional = schema["additionalProperties"] {
                        if (additional as? Bool) == false {
                            errors.append("\(path): has the undocumented member \(key)")
                        } else if additional is [String: Any] {
                            validate(member, against: additional, at: "\(path).\(key)", errors: &errors)
                        }
                    }
                }
            case .array(let items):
                if let itemSchema = schema["items"] {
                    for (index, item) in items.enumerated() {
                        validate(item, against: itemSchema, at: "\(path)[\(index)]", errors: &errors)
                    }
                }
            case .string(let text):
                if let pattern = schema["pattern"] as? String {
                    if let regex = try? Regex(pattern) {
                        if text.firstMatch(of: regex) == nil { errors.append("\(path): \"\(text)\" does not match \(pattern)") }
                    } else {
                        errors.append("\(path): pattern \(pattern) does not compile")
                    }
                }
                if let minimum = schema["minLength"] as? Int, text.count < minimum { errors.append("\(path): shorter than \(minimum)") }
                if let maximum = schema["maxLength"] as? Int, text.count > maximum { errors.append("\(path): longer than \(maximum)") }
            case .integer(let integer):
                if let minimum = schema["minimum"] as? Int, integer < Int64(minimum) { errors.append("\(path): below \(minimum)") }
                if let maximum = schema["maximum"] as? Int, integer > Int64(maximum) { errors.append("\(path): above \(maximum)") }
            default: break
            }
        }
    }

    /// The schema check rejects what it should (it is what makes the success-path test able to fail).
    @Test func schemaCheckRejectsNonConformingBodies() throws {
        let document = try Self.document()
        let check = SchemaCheck(document: document)
        func errors(_ value: JSONValue, _ template: String, _ method: String, _ status: Int, _ media: String = "application/json")
            -> [String]
        {
            guard let schema = Self.documentedSchema(document, template: template, method: method, status: status, media: media) else {
                return ["no schema"]
            }
            var found: [String] = []
            check.validate(value, against: schema, at: "$", errors: &found)
            return found
        }
        #expect(errors(["status": "ok"], "/healthz", "GET", 200).isEmpty)
        #expect(!errors(["status": "fine"], "/healthz", "GET", 200).isEmpty)
        #expect(!errors(["status": "ok", "extra": 1], "/healthz", "GET", 200).isEmpty)
        let problem: JSONValue = [
            "type": "urn:custos:problem:not-found", "title": "Not Found", "status": 404, "detail": "no such resource", "instance": "/v1/x",
        ]
        #expect(errors(problem, "/v1/appraisals/{id}", "GET", 404, "application/problem+json").isEmpty)
        guard case .object(var broken) = problem else { return }
        broken["type"] = "about:blank"
        #expect(!errors(.object(broken), "/v1/appraisals/{id}", "GET", 404, "application/problem+json").isEmpty)
        broken["type"] = problem["type"]
        broken["status"] = nil
        #expect(!errors(.object(broken), "/v1/appraisals/{id}", "GET", 404, "application/problem+json").isEmpty)
        #expect(
            !errors(
                ["versions": [["path": "a", "version": 0, "state": "active", "created_at": "x"]]], "/v1/secrets/{tenant}/{path}/versions",
                "GET", 200
            ).isEmpty)
    }

    /// One answer: the operation it is for, its status and media type (parameters dropped).
    struct Answer: Sendable {
        let method: String
        let template: String
        let status: Int
        let media: String?
        /// The body, when it is JSON.
        let json: JSONValue?
    }

    /// The success paths schemathesis cannot reach (they need evidence from the TDX test hierarchy, an EAR, stored
    /// appraisals): each answer's status and media type must be documented for its operation.
    @Test func successfulResponsesAreDocumented() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let answers = try await fixture.app.test(.live) { client -> [Answer] in
            var answers: [Answer] = []
            @discardableResult
            func call(
                _ method: HTTPRequest.Method, _ template: String, _ uri: String, headers: HTTPFields? = nil, body: ByteBuffer? = nil,
                expect status: HTTPResponse.Status
            ) async throws -> JSONValue {
                let (answer, value) = try await client.execute(uri: uri, method: method, headers: headers ?? fixture.admin, body: body) {
                    response in
                    #expect(response.status == status, "\(method) \(uri): \(String(buffer: response.body))")
                    let media = response.headers[.contentType].map { String($0.prefix { $0 != ";" }) }
                    let json = try? JSONValue.parse(Array(buffer: response.body))
                    return (
                        Answer(method: method.rawValue, template: template, status: Int(response.status.code), media: media, json: json),
                        json ?? .null
                    )
                }
                answers.append(answer)
                return value
            }
            func json(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: CanonicalJSON.encode(value)) }

            let sets: [(String, [UInt8])] = [("mr_td", KBSFixture.mrTD), ("rtmr_1", KBSFixture.rtmr1), ("rtmr_2", KBSFixture.rtmr2)]
            for (name, value) in sets {
                try await call(
                    .put, "/v1/reference-values/{tenant}/{name}", "/v1/reference-values/default/\(name)",
                    body: json(["values": [.string(Hex.encode(value))]]), expect: .ok)
            }
            try await call(.get, "/v1/reference-values/{tenant}/{name}", "/v1/reference-values/default/mr_td", expect: .ok)
            try await call(
                .put, "/v1/secrets/{tenant}/{path}", "/v1/secrets/default/key/disk", body: ByteBuffer(string: "s3cret"), expect: .created)
            let challenge = try await call(.post, "/v1/challenges", "/v1/challenges", headers: [:], expect: .created)
            let guest = TestGuest(
                key: JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256)), hierarchy: fixture.hierarchy, spec: KBSFixture.spec())
            let attestation: JSONValue = [
                "challenge_id": challenge["challenge_id"] ?? .null, "workload_id": "web",
                "attestation": try guest.attestation(nonce: challenge["nonce"]?.stringValue ?? ""),
            ]
            let attested = try await call(.post, "/v1/attestations", "/v1/attestations", headers: [:], body: json(attestation), expect: .ok)
            let ear: HTTPFields = [.authorization: "Bearer \(attested["token"]?.stringValue ?? "")"]
            try await call(.get, "/v1/secrets/{tenant}/{path}", "/v1/secrets/default/key/disk", headers: ear, expect: .ok)
            try await call(.get, "/v1/secrets/{tenant}/{path}/versions", "/v1/secrets/default/key/disk/versions", expect: .ok)
            try await call(
                .post, "/v1/secrets/{tenant}/{path}:rotate", "/v1/secrets/default/key/disk:rotate", body: ByteBuffer(string: "new"),
                expect: .ok)
            try await call(
                .delete, "/v1/secrets/{tenant}/{path}/versions/{version}", "/v1/secrets/default/key/disk/versions/1", expect: .noContent)
            let appraisalID = attested["appraisal_id"]?.stringValue ?? ""
            try await call(.get, "/v1/appraisals", "/v1/appraisals?workload=web", expect: .ok)
            try await call(.get, "/v1/appraisals/{id}", "/v1/appraisals/\(appraisalID)", expect: .ok)
            try await call(.get, "/v1/workloads/{id}/status", "/v1/workloads/web/status", expect: .ok)
            let policies = try await call(.get, "/v1/policies", "/v1/policies", expect: .ok)
            let appraisalPolicy = policies["policies"]?.arrayValue?.first { $0["kind"] == "AppraisalPolicy" }?["id"]?.stringValue ?? ""
            try await call(.get, "/v1/policies/{id}", "/v1/policies/\(appraisalPolicy)", expect: .ok)
            try await call(
                .post, "/v1/policies/{id}:test", "/v1/policies/\(appraisalPolicy):test", body: json(["appraisal_id": .string(appraisalID)]),
                expect: .ok)
            try await call(.post, "/v1/policies:reload", "/v1/policies:reload", expect: .ok)
            try await call(.post, "/v1/tenants", "/v1/tenants", body: json(["id": "acme"]), expect: .created)
            let issued = try await call(
                .post, "/v1/tenants/{tenant}/tokens", "/v1/tenants/acme/tokens", body: json(["role": "tenant-reader"]), expect: .created)
            try await call(
                .delete, "/v1/tenants/{tenant}/tokens/{id}", "/v1/tenants/acme/tokens/\(issued["id"]?.stringValue ?? "")",
                expect: .noContent)
            let auditor = try await call(
                .post, "/v1/tenants/{tenant}/tokens", "/v1/tenants/acme/tokens", body: json(["role": "auditor"]), expect: .created)
            try await call(.delete, "/v1/tokens/{id}", "/v1/tokens/\(auditor["id"]?.stringValue ?? "")", expect: .noContent)
            for path in ["/healthz", "/readyz", "/metrics", "/openapi.yaml", "/.well-known/attestation-service", "/.well-known/jwks.json"] {
                try await call(.get, path, path, headers: [:], expect: .ok)
            }
            return answers
        }
        #expect(answers.count == 29)
        let document = try Self.document()
        var findings: [String] = []
        for answer in answers {
            let name = "\(answer.method) \(answer.template) \(answer.status)"
            guard
                let documented = Self.documentedMediaTypes(
                    document, template: answer.template, method: answer.method, status: answer.status)
            else {
                findings.append("\(name) is not documented")
                continue
            }
            if documented != Set(answer.media.map { [$0] } ?? []) {
                findings.append("\(name): \(answer.media ?? "no body"), documented \(documented.sorted())")
            }
            // JSON bodies against their documented schema (schemathesis checks the answers it can provoke).
            if let media = answer.media, media.hasSuffix("json") {
                guard let body = answer.json,
                    let schema = Self.documentedSchema(
                        document, template: answer.template, method: answer.method, status: answer.status, media: media)
                else {
                    findings.append("\(name): no JSON body or no schema")
                    continue
                }
                var errors: [String] = []
                SchemaCheck(document: document).validate(body, against: schema, at: "$", errors: &errors)
                findings += errors.map { "\(name): \($0)" }
            }
        }
        #expect(findings.isEmpty, "responses openapi.yaml does not describe: \(findings)")
    }

    @Test func theServedDocumentIsTheRepositoryFile() async throws {
        let file = try Data(contentsOf: TestData.packageRoot.appendingPathComponent("openapi.yaml"))
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/yaml")
                // A Bool, so a mismatch does not print both documents byte by byte.
                let same = Array(buffer: response.body) == Array(file)
                #expect(same, "the binary embeds another openapi.yaml than the repository's (rebuild)")
            }
        }
    }

    /// Every `$ref` of the document resolves, and the document is OpenAPI 3.1.
    @Test func documentReferencesResolve() throws {
        let document = try Self.document()
        #expect((document["openapi"] as? String)?.hasPrefix("3.1.") == true)
        var references: [String] = []
        func collect(_ node: Any) {
            if let mapping = node as? [String: Any] {
                if let ref = mapping["$ref"] as? String { references.append(ref) }
                mapping.values.forEach(collect)
            } else if let sequence = node as? [Any] {
                sequence.forEach(collect)
            }
        }
        collect(document)
        #expect(!references.isEmpty)
        for reference in Set(references).sorted() {
            var node: Any? = document
            #expect(reference.hasPrefix("#/"), "\(reference) is not local")
            for key in reference.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(key)] }
            #expect(node != nil, "\(reference) does not resolve")
        }
    }
}
