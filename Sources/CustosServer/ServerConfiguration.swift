import Foundation
import HTTPTypes
import Yams

/// Everything `custos serve` needs to start, with the defaults `make run` uses.
///
/// Values come from, in increasing precedence: the defaults below, a YAML file (`--config FILE`, strict: an
/// unknown key is an error), and the command line.
public struct ServerConfiguration: Sendable, Equatable {
    /// Where collateral for TDX quotes comes from.
    public enum CollateralSource: Sendable, Equatable {
        /// Intel PCS (or a PCCS at `url`), with an on-disk cache under the data directory.
        case service(url: String)
        /// An offline directory in the PCS layout that `custos tdx collateral fetch` writes; never fetches.
        case directory(String)
    }

    /// Intel's PCS v4 base, the default collateral service.
    public static let intelPCS = "https://api.trustedservices.intel.com"

    public var host = "127.0.0.1"
    public var port = 8080
    /// The data directory: the SQLite database, the master key (0600), the token and log keys.
    public var dataDirectory = "var"
    public var policiesDirectory = "Policies"
    public var certsDirectory = "Certs"
    public var collateral = CollateralSource.service(url: intelPCS)
    /// A PEM root that replaces Intel's pinned SGX root (test hierarchies only; logged as a warning at start).
    public var tdxRootOverride: String?
    /// A directory of AMD ARK/ASK files that replaces the pinned AMD roots (test hierarchies only).
    public var sevRootsOverride: String?
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// The issuer (`iss`/`aud`) of EAR tokens; defaults to the listen URL.
    public var issuer: String?
    /// The status `/kbs/v0` answers a policy denial with: 401 as Trustee does (clients re-attest), or 403.
    public var kbsDenialStatus = 401
    /// Request body limits (service.md §13): evidence bodies and every other JSON body.
    public var evidenceLimit = 1 << 20
    public var jsonLimit = 64 << 10
    public var tokenLifetimeSeconds = 300
    public var challengeLifetimeSeconds = 300
    /// `POST /v1/challenges` per second (token bucket, bursts of twice this); beyond it 429 with Retry-After.
    public var challengeRate = 2000
    /// New sessions per second one client may make (`challenge_rate_per_client`), bursts of twice that, within
    /// ``challengeRate``. 0 (the default): no per-client limit — behind a proxy every client has the proxy's address
    /// unless ``clientAddressHeader`` names the header it forwards the client's in.
    public var challengeRatePerClient = 0
    /// The header a proxy in front names the client in (`client_address_header`, e.g. `X-Forwarded-For`; its last
    /// address counts). nil: the TCP peer is the client.
    public var clientAddressHeader: String?
    /// Days an appraisal is kept (`appraisal_retention_days`); 0 keeps every appraisal. The audit log is kept whole.
    public var appraisalRetentionDays = 0

    public init() {}

    /// The URL the service is reached at (scheme from the TLS settings).
    public var baseURL: String {
        let scheme = tlsCertificate == nil ? "http" : "https"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart):\(port)"
    }

    public var effectiveIssuer: String { issuer ?? baseURL }

    /// Whether clients reach the service over HTTPS: it serves TLS itself, or its public URL (the issuer, as a TLS
    /// proxy in front of it serves it) is `https`. Session cookies are `Secure` then.
    public var servedOverHTTPS: Bool { tlsCertificate != nil || effectiveIssuer.lowercased().hasPrefix("https://") }

    /// True when a test anchor replaces a vendor's pinned root.
    public var usesTestAnchors: Bool { tdxRootOverride != nil || sevRootsOverride != nil }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces is never implied: `:PORT` keeps the host).
    public mutating func setListen(_ text: String) throws(ConfigurationError) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigurationError("listen address \(text) is not [IPv6]:PORT")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ConfigurationError("listen address \(text) is not HOST:PORT")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard let port = Int(portPart), (0...65535).contains(port) else {
            throw ConfigurationError("listen port \(portPart) is not a number from 0 to 65535")
        }
        if !hostPart.isEmpty { host = String(hostPart) }
        self.port = port
    }

    /// Applies a YAML configuration file's keys over the current values.
    public mutating func apply(yaml text: String, file: String) throws(ConfigurationError) {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text, .default, .default, .utf8)  // not Yams' environment-read default
        } catch {
            throw ConfigurationError("\(file): not YAML: \(error)")
        }
        guard let node else { return }
        guard let mapping = node.mapping else { throw ConfigurationError("\(file): the top level must be a mapping") }
        for (keyNode, valueNode) in mapping {
            let key = keyNode.string ?? ""
            let place = "\(file):\(keyNode.mark.map { "\($0.line):\($0.column)" } ?? "?")"
            func string() throws(ConfigurationError) -> String {
                guard let value = valueNode.scalar?.string, valueNode.scalar != nil else {
                    throw ConfigurationError("\(place): \(key) must be a string")
                }
                return value
            }
            func integer() throws(ConfigurationError) -> Int {
                // Decimal digits only, read by us: not YAML 1.1's base-60 (`1:30`, which Yams computes with trapping
                // arithmetic), octal (`010` is 8), binary, hexadecimal or `_`-grouped forms.
                guard let text = valueNode.scalar?.string, let value = Self.decimal(text) else {
                    throw ConfigurationError("\(place): \(key) must be an integer in decimal")
                }
                return value
            }
            switch key {
            case "listen": try setListen(try string())
            case "data": dataDirectory = try string()
            case "policies": policiesDirectory = try string()
            case "certs": certsDirectory = try string()
            case "collateral": collateral = .directory(try string())
            case "pccs": collateral = .service(url: try string())
            case "tdx_root": tdxRootOverride = try string()
            case "sev_roots": sevRootsOverride = try string()
            case "tls_cert": tlsCertificate = try string()
            case "tls_key": tlsKey = try string()
            case "issuer": issuer = try string()
            case "kbs_denial_status":
                let status = try integer()
                guard status == 401 || status == 403 else { throw ConfigurationError("\(place): kbs_denial_status is 401 or 403") }
                kbsDenialStatus = status
            case "evidence_limit": evidenceLimit = try integer()
            case "json_limit": jsonLimit = try integer()
            case "token_lifetime_seconds": tokenLifetimeSeconds = try integer()
            case "challenge_lifetime_seconds": challengeLifetimeSeconds = try integer()
            case "challenge_rate": challengeRate = try integer()
            case "challenge_rate_per_client": challengeRatePerClient = try integer()
            case "client_address_header": clientAddressHeader = try string()
            case "appraisal_retention_days": appraisalRetentionDays = try integer()
            default: throw ConfigurationError("\(place): unknown key \"\(key)\"")
            }
        }
        try validate()
    }

    /// Checks values that the individual setters cannot.
    public func validate() throws(ConfigurationError) {
        if (tlsCertificate == nil) != (tlsKey == nil) {
            throw ConfigurationError("TLS needs both a certificate and a key")
        }
        guard evidenceLimit > 0, jsonLimit > 0 else { throw ConfigurationError("body limits must be positive") }
        guard (30...3600).contains(tokenLifetimeSeconds) else {
            throw ConfigurationError("token lifetime must be 30 to 3600 seconds")
        }
        guard (10...3600).contains(challengeLifetimeSeconds) else {
            throw ConfigurationError("challenge lifetime must be 10 to 3600 seconds")
        }
        // A zero rate made an empty token bucket whose wait, (1 - 0) / 0, is infinite: Int(+inf) trapped on the first
        // POST /v1/challenges.
        guard (1...1_000_000).contains(challengeRate) else {
            throw ConfigurationError("challenge_rate must be 1 to 1000000 challenges per second")
        }
        guard (0...1_000_000).contains(challengeRatePerClient) else {
            throw ConfigurationError("challenge_rate_per_client must be 0 (no per-client limit) to 1000000 sessions per second")
        }
        if let clientAddressHeader, HTTPField.Name(clientAddressHeader) == nil {
            throw ConfigurationError("client_address_header \"\(clientAddressHeader)\" is not an HTTP header name")
        }
        guard (0...36_500).contains(appraisalRetentionDays) else {
            throw ConfigurationError("appraisal_retention_days must be 0 (keep every appraisal) to 36500")
        }
    }

    /// An integer written in decimal: an optional sign, then ASCII digits without a leading zero; nil otherwise or
    /// when it does not fit in `Int`.
    static func decimal(_ text: String) -> Int? {
        var digits = Substring(text)
        if digits.first == "+" || digits.first == "-" { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            digits == "0" || !digits.hasPrefix("0")
        else { return nil }
        return Int(text)
    }
}

/// A configuration that cannot be used; the message names the key and, for files, `file:line:column`.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
