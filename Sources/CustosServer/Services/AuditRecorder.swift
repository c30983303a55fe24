public import CustosAudit
public import CustosCrypto
public import CustosStore
public import Foundation
public import Logging

/// Writes the service's decisions to the audit log (service.md §11.1). Routes call ``record(_:)`` and put the
/// returned index into their responses and tokens; an event that cannot be made durable fails the request (a
/// decision that is not logged is not taken).
public struct AuditRecorder: Sendable {
    public let log: AuditLog
    /// Which trust anchors the service runs with (`"pinned"` or `"test"`); every entry's object says it when the
    /// anchors are test anchors (issue 11 §1).
    public let anchorsLabel: String?
    let logger: Logger

    public init(log: AuditLog, usesTestAnchors: Bool, logger: Logger) {
        self.log = log
        self.anchorsLabel = usesTestAnchors ? "test" : nil
        self.logger = logger
    }

    /// Appends `event` and returns its leaf index. Throws a 500 problem (and logs why) when the log fails.
    @discardableResult
    public func record(_ event: AuditEvent, alongside write: StoreWrite? = nil) async throws -> UInt64 {
        guard let index = try await record([event], alongside: write).first else { throw Problem.internalError() }
        return index
    }

    /// Appends `events` (and runs `write`) in one transaction and returns their leaf indexes. Throws a 500 problem
    /// (and logs why) when the log fails: then none of them, and not the write, happened.
    @discardableResult
    public func record(_ events: [AuditEvent], alongside write: StoreWrite? = nil) async throws -> [UInt64] {
        let anchorsLabel = anchorsLabel
        do {
            return try await log.append(events.map { Self.labelled($0, anchors: anchorsLabel) }, alongside: write).map(\.seq)
        } catch {
            logger.error("audit append failed: \(error)")
            throw Problem.internalError()
        }
    }

    /// Runs `step` and appends the event `event` makes of its value (none when it makes none) in one transaction;
    /// returns the step's value and the entry's index. Throws a 500 problem (and logs why) when the log fails.
    public func record<Value: Sendable>(
        after step: StoreStep<Value>, event: @escaping @Sendable (Value) -> AuditEvent?
    ) async throws -> (value: Value, index: UInt64?) {
        let anchorsLabel = anchorsLabel
        do {
            let outcome = try await log.append(after: step) { value in event(value).map { Self.labelled($0, anchors: anchorsLabel) } }
            return (outcome.value, outcome.receipt?.seq)
        } catch {
            logger.error("audit append failed: \(error)")
            throw Problem.internalError()
        }
    }

    /// `event` with `"anchors": label` in its object when the service runs with test anchors.
    static func labelled(_ event: AuditEvent, anchors label: String?) -> AuditEvent {
        guard let label, case .object(var members) = event.object else { return event }
        var event = event
        members["anchors"] = .string(label)
        event.object = .object(members)
        return event
    }

    /// Convenience: an event of `type` (one of ``AuditEventType/all``).
    @discardableResult
    public func record(
        _ type: String, tenant: String, actor: JSONValue, object: JSONValue, appraisal: JSONValue? = nil, requestID: String? = nil,
        time: Date = Date(), alongside write: StoreWrite? = nil
    ) async throws -> UInt64 {
        try await record(
            event(type, tenant: tenant, actor: actor, object: object, appraisal: appraisal, requestID: requestID, time: time),
            alongside: write)
    }

    /// An event of `type` (one of ``AuditEventType/all``; another is a bug, answered with a 500 problem).
    public func event(
        _ type: String, tenant: String, actor: JSONValue, object: JSONValue, appraisal: JSONValue? = nil, requestID: String? = nil,
        time: Date = Date()
    ) throws -> AuditEvent {
        let eventType: AuditEventType
        do { eventType = try AuditEventType(type) } catch {
            logger.error("unknown audit event type \(type)")
            throw Problem.internalError()
        }
        return AuditEvent(
            time: time, tenant: tenant, type: eventType, actor: actor, object: object, appraisal: appraisal, requestId: requestID)
    }
}
