public import CustosCrypto
import Foundation

// MARK: - The service calls a launch makes

/// The HTTP calls of the service's launch API a host-side launch flow makes (service.md §8.2; issue 11 §4). The host
/// relays blobs only: the GODH, the session and the secret packet are opaque to it.
///
/// ``HTTPLaunchService`` implements it over AsyncHTTPClient; tests may wrap it (to replay a launch, say).
public protocol LaunchServiceAPI: Sendable {
    /// `POST /v1/launches`: the service verifies the platform chain and builds the launch session.
    /// - Throws: ``LaunchServiceError``.
    func createLaunch(_ request: LaunchCreation) async throws -> CreatedLaunch
    /// `POST /v1/launches/{id}/measurement`: the tenant's LaunchPolicy decides; an allowed launch returns the secret
    /// packet. A denial is a ``LaunchServiceError`` with ``LaunchServiceError/isDenial``.
    /// - Throws: ``LaunchServiceError``.
    func postMeasurement(launchID: String, _ report: MeasurementReport) async throws -> AllowedLaunch
    /// `PUT /v1/reference-values/{tenant}/{name}`: replaces the tenant's reference-value set `name`.
    /// - Throws: ``LaunchServiceError``.
    func putReferenceValues(tenant: String, name: String, values: [String], provenance: JSONValue?) async throws
}

/// The body of `POST /v1/launches`.
public struct LaunchCreation: Sendable, Equatable {
    public var workloadID: String
    /// `sev` or `sev-es` (from the policy's ES bit).
    public var tee: String
    public var guestPolicy: UInt32
    /// The platform's PDH and PEK ‖ OCA ‖ CEK, as `virNodeGetSEVInfo` gives them.
    public var pdh: [UInt8]
    public var certChain: [UInt8]
    /// `[{guid, path}]`: the EFI secret-table GUID (or `luks-key`) and the tenant's secret path.
    public var secrets: [SecretReference]

    public struct SecretReference: Sendable, Equatable {
        public var guid: String
        public var path: String
        public init(guid: String, path: String) {
            self.guid = guid
            self.path = path
        }
    }

    public init(workloadID: String, tee: String, guestPolicy: UInt32, pdh: [UInt8], certChain: [UInt8], secrets: [SecretReference]) {
        self.workloadID = workloadID
        self.tee = tee
        self.guestPolicy = guestPolicy
        self.pdh = pdh
        self.certChain = certChain
        self.secrets = secrets
    }

    /// The JSON body.
    public var json: JSONValue {
        [
            "workload_id": .string(workloadID), "tee": .string(tee), "guest_policy": .integer(Int64(guestPolicy)),
            "platform": ["pdh": .string(Base64.encode(pdh)), "cert_chain": .string(Base64.encode(certChain))],
            "secrets": .array(secrets.map { ["guid": .string($0.guid), "path": .string($0.path)] }),
        ]
    }
}

/// The service's answer to `POST /v1/launches`.
public struct CreatedLaunch: Sendable, Equatable {
    public var launchID: String
    /// The GODH certificate and the launch session, base64 as the service sends them (they go into the domain XML).
    public var godhCertificate: String
    public var sessionBlob: String
    public var expiresAt: String?

    public init(launchID: String, godhCertificate: String, sessionBlob: String, expiresAt: String? = nil) {
        self.launchID = launchID
        self.godhCertificate = godhCertificate
        self.sessionBlob = sessionBlob
        self.expiresAt = expiresAt
    }
}

/// The body of `POST /v1/launches/{id}/measurement`.
public struct MeasurementReport: Sendable, Equatable {
    /// MEASURE ‖ MNONCE (48 bytes).
    public var measurement: [UInt8]
    public var apiMajor: UInt32
    public var apiMinor: UInt32
    public var buildID: UInt32
    public var vcpus: UInt32
    public var guestPolicy: UInt32
    /// The tenant's reference-value set holding the expected launch digests (the host claims no digest of its own).
    public var reference: String

    public init(
        measurement: [UInt8], apiMajor: UInt32, apiMinor: UInt32, buildID: UInt32, vcpus: UInt32, guestPolicy: UInt32, reference: String
    ) {
        self.measurement = measurement
        self.apiMajor = apiMajor
        self.apiMinor = apiMinor
        self.buildID = buildID
        self.vcpus = vcpus
        self.guestPolicy = guestPolicy
        self.reference = reference
    }

    public var json: JSONValue {
        [
            "measurement_b64": .string(Base64.encode(measurement)), "api_major": .integer(Int64(apiMajor)),
            "api_minor": .integer(Int64(apiMinor)), "build_id": .integer(Int64(buildID)), "vcpus": .integer(Int64(vcpus)),
            "guest_policy": .integer(Int64(guestPolicy)), "reference": .string(reference),
        ]
    }
}

/// An allowed launch: the LAUNCH_SECRET packet (opaque to the host) and the appraisal that allowed it.
public struct AllowedLaunch: Sendable, Equatable {
    public var appraisalID: String
    public var secretHeader: [UInt8]
    public var secretData: [UInt8]

    public init(appraisalID: String, secretHeader: [UInt8], secretData: [UInt8]) {
        self.appraisalID = appraisalID
        self.secretHeader = secretHeader
        self.secretData = secretData
    }
}

/// A failed service call: the HTTP status (0 when none arrived) and the problem document's detail.
public struct LaunchServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var problemType: String?
    public var detail: String
    /// The appraisal of a denied launch (403).
    public var appraisalID: String?

    public init(status: Int, problemType: String? = nil, detail: String, appraisalID: String? = nil) {
        self.status = status
        self.problemType = problemType
        self.detail = detail
        self.appraisalID = appraisalID
    }

    /// The tenant's launch policy denied the launch (403).
    public var isDenial: Bool { status == 403 && problemType?.hasSuffix("policy-denied") == true }

    public var description: String {
        status == 0 ? detail : "HTTP \(status)\(problemType.map { " (\($0))" } ?? ""): \(detail)"
    }
}
