import AsyncHTTPClient
public import CustosCrypto
public import CustosKBS
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

// MARK: - Inputs

/// The TEE key the agent generates for each run; the service encrypts released secrets to it (guest.md §4.2).
public enum TEEKeyType: String, Sendable, CaseIterable {
    /// EC P-256 with `ECDH-ES+A256KW` (attestation-agent's default).
    case p256 = "P-256"
    /// EC P-384 with `ECDH-ES+A256KW`.
    case p384 = "P-384"
    /// RSA 3072 with `RSA-OAEP-256`.
    case rsa = "RSA"

    /// A fresh private key of this type.
    public func generate() throws(AgentError) -> JWEDecryptionKey {
        do {
            switch self {
            case .p256: return .ec(try ECPrivateKey(generating: .p256))
            case .p384: return .ec(try ECPrivateKey(generating: .p384))
            case .rsa: return .rsa(try RSAPrivateKey(generatingBits: 3072))
            }
        } catch { throw AgentError(.auth, .unusable, "cannot generate the \(rawValue) TEE key: \(error.reason)") }
    }
}

/// A KBS resource `REPOSITORY/TYPE/TAG` (guest.md §4.5), written to `<out>/<type>/<tag>`.
public struct ResourcePath: Sendable, Hashable, CustomStringConvertible {
    public let repository: String
    public let type: String
    public let tag: String

    /// Parses `REPO/TYPE/TAG`: three non-empty segments of `A-Z a-z 0-9 . _ -`, none `.` or `..`.
    /// - Throws: ``AgentError`` (`usage`).
    public init(parsing text: String) throws(AgentError) {
        let segments = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard segments.count == 3 else {
            throw AgentError(.usage, .unusable, "resource \"\(text.prefix(200))\" is not REPOSITORY/TYPE/TAG")
        }
        for segment in segments {
            let allowed = segment.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0))
            }
            guard !segment.isEmpty, segment != ".", segment != "..", allowed, segment.utf8.count <= 255 else {
                throw AgentError(
                    .usage, .unusable,
                    "resource \"\(text.prefix(200))\": segment \"\(segment.prefix(64))\" must be 1-255 of A-Z a-z 0-9 . _ -")
            }
        }
        repository = segments[0]
        type = segments[1]
        tag = segments[2]
    }

    /// A comma-separated list; two resources may not land on the same `<type>/<tag>` file.
    public static func parseList(_ texts: [String]) throws(AgentError) -> [ResourcePath] {
        var out: [ResourcePath] = []
        var files = Set<String>()
        for text in texts {
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                let path = try ResourcePath(parsing: item.trimmingCharacters(in: .whitespaces))
                guard files.insert(path.type + "/" + path.tag).inserted else {
                    throw AgentError(.usage, .unusable, "two resources would both be written to \(path.type)/\(path.tag)")
                }
                out.append(path)
            }
        }
        guard !out.isEmpty else { throw AgentError(.usage, .unusable, "no resource given") }
        return out
    }

    public var description: String { "\(repository)/\(type)/\(tag)" }
    var httpPath: String { "/kbs/v0/resource/\(repository)/\(type)/\(tag)" }
}

/// How the agent reaches and talks to the KBS.
public struct KBSClientConfiguration: Sendable {
    /// The KBS base URL (`https://kbs.example:8080`); `http` only to loopback or with ``insecureHTTP``.
    public var url: String
    /// PEM certificates to trust instead of the system roots (`--ca`).
    public var caPEM: [UInt8]?
    /// Allows plain HTTP to a non-loopback host (`--insecure-http`).
    public var insecureHTTP = false
    public var keyType: TEEKeyType = .p256
    /// Init-data sent with the attestation (`--init-data`).
    public var initData: KBSInitData?
    /// RCAR handshakes tried when the service is unreachable or answers 5xx/429 (attestation-agent: 5).
    public var handshakeAttempts = 5
    /// Resource GETs tried (attestation-agent: 3); a 401 that says the session is gone re-runs the handshake once.
    public var resourceAttempts = 3
    /// The first wait between handshake attempts, doubled each time up to ``maximumBackoff``.
    public var retryBackoff: Duration = .milliseconds(500)
    public var maximumBackoff: Duration = .seconds(8)
    /// Per request (attestation-agent: 60 s).
    public var requestTimeout: Int64 = 60

    public init(url: String) { self.url = url }
}

/// A secret the service released, decrypted.
public struct FetchedSecret: Sendable {
    public let resource: ResourcePath
    public let secret: SecretBytes

    public init(resource: ResourcePath, secret: SecretBytes) {
        self.resource = resource
        self.secret = secret
    }
}

/// What a fetch run did, for the report.
public struct FetchReport: Sendable {
    public var secrets: [FetchedSecret] = []
    /// Handshakes run (1 unless a retry happened).
    public var handshakes = 0
    /// The EAR token of the last handshake (not secret: it carries the TEE public key and the appraisal).
    public var token: String?
    public var keyType: TEEKeyType = .p256
    public var quoteSource = ""
    public var eventLogBytes: Int?
}

// MARK: - The client (auth → attest → resource)

/// A KBS protocol 0.4.0 client with attestation-agent's wire shapes (guest.md §4): `POST /kbs/v0/auth`, then
/// `POST /kbs/v0/attest` with a quote whose REPORTDATA binds the challenge nonce and a fresh TEE key (service.md
/// §4.3), then `GET /kbs/v0/resource/…` with the session cookie; the JWE is opened with the TEE key.
///
/// Retries (bounded): the handshake when the service cannot be reached or answers 5xx/429, with exponential backoff
/// (``KBSClientConfiguration/handshakeAttempts``); a resource GET answered 401 `TokenNotFound`/`TokenVerifierError`
/// (session expired) re-runs the handshake, and one that fails to connect or is answered 5xx/429 is sent again after
/// a backoff, at most ``KBSClientConfiguration/resourceAttempts`` times in all. A rejection
/// (`AttestationError`, `PolicyDeny`, an unknown resource, 403, 404) is final: the same TD would send the same
/// evidence.
public struct KBSAgentClient: Sendable {
    public let configuration: KBSClientConfiguration
    public let quoteSource: any TDQuoteSource
    public let eventLog: CCELReader?
    let baseURL: String

    /// - Throws: ``AgentError`` (`usage`) for a URL that is not http(s), or plain HTTP to another host without
    ///   ``KBSClientConfiguration/insecureHTTP``.
    public init(configuration: KBSClientConfiguration, quoteSource: any TDQuoteSource, eventLog: CCELReader?) throws(AgentError) {
        self.configuration = configuration
        self.quoteSource = quoteSource
        self.eventLog = eventLog
        var base = configuration.url
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty,
            url.path.isEmpty, url.query == nil, url.fragment == nil, url.user == nil
        else {
            throw AgentError(.usage, .unusable, "--url \"\(configuration.url.prefix(200))\" is not http(s)://HOST[:PORT]")
        }
        switch scheme {
        case "https": break
        case "http":
            guard Self.isLoopback(host) || configuration.insecureHTTP else {
                throw AgentError(
                    .usage, .unusable, "plain HTTP to \(host) would expose the attestation to the network: use https, or --insecure-http")
            }
        default: throw AgentError(.usage, .unusable, "--url scheme \"\(scheme)\" is not http or https")
        }
        baseURL = base
    }

    /// Whether `host` (from a URL) is this machine's loopback: `localhost`, `::1` or `127.x.y.z`.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if bare == "localhost" || bare == "::1" { return true }
        let parts = bare.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Runs the handshake and fetches every resource, decrypted, in order.
    /// - Throws: ``AgentError`` naming the stage that failed.
    public func fetch(_ resources: [ResourcePath]) async throws(AgentError) -> FetchReport {
        let client = try makeHTTPClient()
        let result: Result<FetchReport, AgentError>
        do throws(AgentError) {
            result = .success(try await run(client, resources))
        } catch {
            result = .failure(error)
        }
        try? await client.shutdown()
        return try result.get()
    }

    func makeHTTPClient() throws(AgentError) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = configuration.caPEM {
            let certificates: [NIOSSLCertificate]
            do { certificates = try NIOSSLCertificate.fromPEMBytes(ca) } catch {
                throw AgentError(.usage, .unusable, "--ca holds no usable PEM certificate: \(error)")
            }
            guard !certificates.isEmpty else { throw AgentError(.usage, .unusable, "--ca holds no PEM certificate") }
            tls.trustRoots = .certificates(certificates)
        }
        var http = HTTPClient.Configuration()
        http.tlsConfiguration = tls
        http.redirectConfiguration = .disallow
        http.timeout = .init(connect: .seconds(10), read: .seconds(configuration.requestTimeout))
        // The agent retries handshakes itself (bounded); the pool must not retry connecting behind its back.
        http.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    struct Session {
        var cookie: String?
        var token: String
    }

    func run(_ client: HTTPClient, _ resources: [ResourcePath]) async throws(AgentError) -> FetchReport {
        let key = try configuration.keyType.generate()
        var report = FetchReport()
        report.keyType = configuration.keyType
        report.quoteSource = quoteSource.name
        let log = try eventLog?.read()
        report.eventLogBytes = log?.count
        var session = try await handshake(client, key: key, eventLog: log, report: &report)
        for resource in resources {
            var attempt = 0
            var backoff = configuration.retryBackoff
            while true {
                attempt += 1
                let response: Response
                do {
                    response = try await send(client, .GET, resource.httpPath, body: nil, cookie: session.cookie, stage: .resource)
                } catch  where error.kind == .unreachable && attempt < configuration.resourceAttempts {
                    // Unreachable, 5xx or 429: the same session again after a wait (the release did not happen).
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, configuration.maximumBackoff)
                    continue
                }
                if response.status == 200 {
                    let secret: SecretBytes
                    do { secret = try KBSResourceRelease.decrypt(responseBody: response.body, with: key) } catch {
                        throw AgentError(.resource, .rejected, "\(resource): \(error.reason)", serviceErrorKind: error.code.name)
                    }
                    report.secrets.append(FetchedSecret(resource: resource, secret: secret))
                    break
                }
                let kind = Self.errorKind(response.body)
                let sessionGone = response.status == 401 && (kind == "TokenNotFound" || kind == "TokenVerifierError")
                if sessionGone && attempt < configuration.resourceAttempts {
                    session = try await handshake(client, key: key, eventLog: log, report: &report)
                    continue
                }
                throw refusal(.resource, "GET \(resource.httpPath)", response)
            }
        }
        report.token = session.token
        return report
    }

    /// auth → attest with bounded retries while the service is unreachable.
    func handshake(
        _ client: HTTPClient, key: JWEDecryptionKey, eventLog: [UInt8]?, report: inout FetchReport
    ) async throws(AgentError) -> Session {
        var backoff = configuration.retryBackoff
        var failures: [String] = []
        for attempt in 1...max(1, configuration.handshakeAttempts) {
            report.handshakes += 1
            do throws(AgentError) {
                return try await handshakeOnce(client, key: key, eventLog: eventLog)
            } catch {
                guard error.kind == .unreachable else { throw error }
                failures.append(error.reason)
                guard attempt < configuration.handshakeAttempts else {
                    throw AgentError(
                        error.stage, .unreachable,
                        "\(error.reason) (gave up after \(attempt) attempts)", serviceErrorKind: error.serviceErrorKind,
                        httpStatus: error.httpStatus)
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maximumBackoff)
            }
        }
        throw AgentError(.auth, .unreachable, failures.last ?? "no handshake attempted")
    }

    func handshakeOnce(_ client: HTTPClient, key: JWEDecryptionKey, eventLog: [UInt8]?) async throws(AgentError) -> Session {
        // auth: attestation-agent lists every hash it supports; the challenge may select one (SHA-384 if not).
        let request = KBSRequest(
            tee: .tdx, extraParams: ["supported-hash-algorithms": .array(KBSHashAlgorithm.allCases.map { .string($0.rawValue) })])
        let auth = try await send(client, .POST, "/kbs/v0/auth", body: CanonicalJSON.encode(request.jsonValue), cookie: nil, stage: .auth)
        guard auth.status == 200 else { throw refusal(.auth, "POST /kbs/v0/auth", auth) }
        let challenge: KBSChallenge
        let hash: KBSHashAlgorithm
        do {
            challenge = try KBSChallenge(jsonBytes: auth.body)
            hash = try challenge.selectedHashAlgorithm()
        } catch { throw AgentError(.auth, .unusable, "the challenge is not KBS 0.4.0: \(error.description)") }
        guard let cookie = Self.sessionCookie(auth.headers) else {
            throw AgentError(.auth, .unusable, "the /auth answer set no \(KBSProtocol.sessionCookieName) cookie")
        }

        // attest: REPORTDATA = HASH(JCS({additional-evidence: "", nonce, tee-pubkey})) ‖ zeros (service.md §4.3).
        let runtime = KBSRuntimeData(nonce: challenge.nonce, teePubkey: key.publicJWK)
        let reportData = KBSBinding.reportData(
            nonce: challenge.nonce, teePubkey: runtime.teePubkeyJSON, additionalEvidence: "", hash: hash)
        let quote = try await quoteSource.quote(reportData: reportData)
        let attestation = KBSAttestation(
            initData: configuration.initData, runtimeData: runtime,
            teeEvidence: KBSTEEEvidence(primaryEvidence: TDXPrimaryEvidence(quote: quote, ccEventlog: eventLog).jsonValue))
        var body = attestation.jsonValue
        // kbs-types sends `init-data: null` when there is none (guest.md §4.2).
        if configuration.initData == nil, case .object(var members) = body {
            members["init-data"] = .null
            body = .object(members)
        }
        let attest = try await send(client, .POST, "/kbs/v0/attest", body: CanonicalJSON.encode(body), cookie: cookie, stage: .attest)
        guard attest.status == 200 else { throw refusal(.attest, "POST /kbs/v0/attest", attest) }
        let token: String
        do { token = try KBSAttestationResponse(jsonBytes: attest.body).token } catch {
            throw AgentError(.attest, .unusable, "the /attest answer is not {\"token\": …}: \(error.description)")
        }
        return Session(cookie: Self.sessionCookie(attest.headers) ?? cookie, token: token)
    }

    struct Response {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
    }

    func send(
        _ client: HTTPClient, _ method: HTTPMethod, _ path: String, body: [UInt8]?, cookie: String?, stage: AgentError.Stage
    ) async throws(AgentError) -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "User-Agent", value: "custos-agent")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        do {
            // One deadline for the whole exchange (see `withDeadline`).
            let seconds = configuration.requestTimeout
            let prepared = request
            let (head, buffer) = try await withDeadline(seconds: seconds) {
                let response = try await client.execute(prepared, timeout: .seconds(seconds))
                return (response, try await response.body.collect(upTo: 16 << 20))
            }
            let response = head
            let status = Int(response.status.code)
            if status >= 500 || status == 429 {
                let error = refusal(
                    stage, "\(method) \(path)", Response(status: status, headers: response.headers, body: Array(buffer: buffer)))
                throw AgentError(stage, .unreachable, error.reason, serviceErrorKind: error.serviceErrorKind, httpStatus: status)
            }
            return Response(status: status, headers: response.headers, body: Array(buffer: buffer))
        } catch let error as AgentError {
            throw error
        } catch let error where error is DeadlineExceeded || Self.isTimeout(error) {
            // AsyncHTTPClient's read timeout equals the deadline, so when it fires first (a stall of the whole deadline
            // on a loaded machine) the exchange has also run out of time: one message for both.
            throw AgentError(
                stage, .unreachable, "\(method) \(baseURL + path): no complete answer within the \(configuration.requestTimeout) s deadline"
            )
        } catch let error as NIOSSLError {
            throw AgentError(stage, .unusable, "TLS to \(baseURL) failed (\(Self.tlsHint)): \(error)")
        } catch let error as BoringSSLError {
            throw AgentError(stage, .unusable, "TLS to \(baseURL) failed (\(Self.tlsHint)): \(error)")
        } catch {
            throw AgentError(stage, .unreachable, "\(method) \(baseURL + path): \(error)")
        }
    }

    /// AsyncHTTPClient's own timeouts.
    static func isTimeout(_ error: any Error) -> Bool {
        guard let error = error as? HTTPClientError else { return false }
        return error == .readTimeout || error == .deadlineExceeded
    }

    static let tlsHint = "the server certificate must verify against the system roots or --ca"

    /// The error for a non-200 answer: the Trustee error kind and detail when the body has them.
    /// A refusal when the answer carries a KBS error body; anything else (a redirect, a web server's 404 page) means
    /// the URL is not a KBS, which is the agent's input to fix, not a verdict (exit 2, not 1).
    func refusal(_ stage: AgentError.Stage, _ what: String, _ response: Response) -> AgentError {
        let parsed = (try? JSONValue.parse(response.body)).flatMap { try? KBSErrorBody(json: $0) }
        let detail = parsed.map { "\($0.kind): \($0.detail)" } ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        guard let parsed else {
            return AgentError(
                stage, .unusable, "\(what) answered \(response.status) without a KBS error body (is --url a KBS?): \(detail)",
                httpStatus: response.status)
        }
        return AgentError(
            stage, .rejected, "\(what) answered \(response.status): \(detail)", serviceErrorKind: parsed.kind, httpStatus: response.status)
    }

    static func errorKind(_ body: [UInt8]) -> String? {
        (try? JSONValue.parse(body)).flatMap { try? KBSErrorBody(json: $0) }?.kind
    }

    /// `kbs-session-id=<value>` from the Set-Cookie headers.
    static func sessionCookie(_ headers: HTTPHeaders) -> String? {
        for header in headers["Set-Cookie"] {
            guard let pair = header.split(separator: ";").first else { continue }
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == KBSProtocol.sessionCookieName {
                return "\(KBSProtocol.sessionCookieName)=\(parts[1].trimmingCharacters(in: .whitespaces))"
            }
        }
        return nil
    }
}
