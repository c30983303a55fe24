internal import CLibvirt
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Connection

/// A libvirt connection (`virConnectPtr`): open, close, node info, domain capabilities, domain lifecycle, SEV info and
/// launch-security calls.
///
/// Every libvirt call is blocking, so each runs on the connection's own serial `DispatchQueue`, never on the
/// cooperative pool; the async methods suspend until it is done. The serial queue is also what makes libvirt's
/// per-thread last error meaningful: a call and the `virGetLastError` that reads its failure run in one closure.
///
/// `@unchecked Sendable`: the only mutable state (the handle, nilled by ``close()``) is read and written only on the
/// serial queue.
public final class LibvirtConnection: @unchecked Sendable {
    private var handle: virConnectPtr?
    private let queue: DispatchQueue
    /// The URI the connection was opened with.
    public let uri: String

    private init(handle: virConnectPtr, uri: String, queue: DispatchQueue) {
        self.handle = handle
        self.uri = uri
        self.queue = queue
    }

    deinit {
        if let handle { virConnectClose(handle) }
    }

    /// Opens a connection: `test:///default` (in-process, no daemon), `qemu:///system`, `qemu+ssh://host/system`
    /// (authentication through the ssh agent; no interactive prompts).
    /// - Parameters:
    ///   - uri: the libvirt URI.
    ///   - readOnly: open read-only (enough for capabilities and the host check).
    /// - Throws: ``VirtError`` with libvirt's code (for example `VIR_ERR_NO_CONNECT`) when the connection fails.
    public static func open(uri: String, readOnly: Bool = false) async throws(VirtError) -> LibvirtConnection {
        let queue = DispatchQueue(label: "custos.libvirt.\(uri)")
        let result: Result<UncheckedHandle, VirtError> = await withCheckedContinuation { continuation in
            queue.async {
                _ = LibvirtErrors.prepared
                let handle = readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri)
                guard let handle else {
                    continuation.resume(returning: .failure(LibvirtErrors.last("cannot connect to \(uri)")))
                    return
                }
                virConnSetErrorFunc(handle, nil) { _, _ in }
                continuation.resume(returning: .success(UncheckedHandle(pointer: handle)))
            }
        }
        return LibvirtConnection(handle: try result.get().pointer, uri: uri, queue: queue)
    }

    /// Closes the connection; later calls throw ``VirtError/Code/connectionClosed``.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                if let handle = self.handle { virConnectClose(handle) }
                self.handle = nil
                continuation.resume()
            }
        }
    }

    /// Runs `body` on the connection's queue with the open handle.
    private func perform<T: Sendable>(_ body: @escaping @Sendable (virConnectPtr) throws(VirtError) -> T) async throws(VirtError) -> T {
        let result: Result<T, VirtError> = await withCheckedContinuation { continuation in
            queue.async {
                guard let handle = self.handle else {
                    continuation.resume(returning: .failure(VirtError(.connectionClosed, "the libvirt connection is closed")))
                    return
                }
                do throws(VirtError) {
                    continuation.resume(returning: .success(try body(handle)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Runs `body` with the domain `ref` looked up by UUID, freeing the domain handle afterwards.
    private func withDomain<T: Sendable>(
        _ ref: DomainRef, _ body: @escaping @Sendable (virDomainPtr) throws(VirtError) -> T
    ) async throws(VirtError) -> T {
        try await perform { (conn) throws(VirtError) -> T in
            guard let domain = virDomainLookupByUUIDString(conn, ref.uuid) else {
                throw LibvirtErrors.last("no domain \(ref)")
            }
            defer { virDomainFree(domain) }
            return try body(domain)
        }
    }

    // MARK: Host

    /// The host's node information (`virNodeGetInfo`).
    /// - Throws: ``VirtError`` (libvirt's).
    public func nodeInfo() async throws(VirtError) -> NodeInfo {
        try await perform { (conn) throws(VirtError) -> NodeInfo in
            var info = virNodeInfo()
            guard virNodeGetInfo(conn, &info) == 0 else { throw LibvirtErrors.last("cannot read node info") }
            let model = withUnsafeBytes(of: info.model) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return NodeInfo(
                model: model, memoryKiB: UInt64(info.memory), cpus: info.cpus, mhz: info.mhz, nodes: info.nodes, sockets: info.sockets,
                cores: info.cores, threads: info.threads)
        }
    }

    /// The libvirt library version and the hypervisor (driver) version, as `major.minor.release`.
    /// - Throws: ``VirtError`` (libvirt's).
    public func versions() async throws(VirtError) -> (libvirt: String, hypervisor: String) {
        try await perform { (conn) throws(VirtError) -> (libvirt: String, hypervisor: String) in
            var library: UInt = 0
            var hypervisor: UInt = 0
            guard virConnectGetLibVersion(conn, &library) == 0 else { throw LibvirtErrors.last("cannot read the libvirt version") }
            guard virConnectGetVersion(conn, &hypervisor) == 0 else { throw LibvirtErrors.last("cannot read the hypervisor version") }
            return (Self.versionString(library), Self.versionString(hypervisor))
        }
    }

    /// libvirt's encoding: major * 1,000,000 + minor * 1,000 + release.
    static func versionString(_ value: UInt) -> String { "\(value / 1_000_000).\(value / 1000 % 1000).\(value % 1000)" }

    /// The domain capabilities XML (`virConnectGetDomainCapabilities`); nil arguments pick libvirt's defaults.
    /// - Throws: ``VirtError`` (libvirt's; the test driver answers `VIR_ERR_NO_SUPPORT`).
    public func domainCapabilitiesXML(
        emulator: String? = nil, arch: String? = nil, machine: String? = nil, virtType: String? = nil
    ) async throws(VirtError) -> String {
        try await perform { (conn) throws(VirtError) -> String in
            guard let text = virConnectGetDomainCapabilities(conn, emulator, arch, machine, virtType, 0) else {
                throw LibvirtErrors.last("cannot read domain capabilities")
            }
            defer { free(text) }
            return String(cString: text)
        }
    }

    /// The platform's SEV data (`virNodeGetSEVInfo`); the parameter list is freed on every path.
    /// - Throws: ``VirtError`` (libvirt's: `VIR_ERR_NO_SUPPORT` or `VIR_ERR_OPERATION_UNSUPPORTED` without SEV), or
    ///   ``VirtError/Code/malformedReply`` when a required field is missing or not base64.
    public func sevInfo() async throws(VirtError) -> SEVPlatformInfo {
        try await perform { (conn) throws(VirtError) -> SEVPlatformInfo in
            var params: virTypedParameterPtr?
            var count: Int32 = 0
            let status = virNodeGetSEVInfo(conn, &params, &count, 0)
            let list = TypedParameterList(takingOwnership: params, count: count)
            guard status == 0 else { throw LibvirtErrors.last("cannot read the platform's SEV data") }
            return try Self.sevInfo(from: list)
        }
    }

    /// Reads ``SEVPlatformInfo`` from `virNodeGetSEVInfo`'s parameters (sev.md §6).
    package static func sevInfo(from list: TypedParameterList) throws(VirtError) -> SEVPlatformInfo {
        guard let pdh = try list.base64("pdh") else { throw VirtError(.malformedReply, "virNodeGetSEVInfo gave no pdh", field: "pdh") }
        guard let chain = try list.base64("cert-chain") else {
            throw VirtError(.malformedReply, "virNodeGetSEVInfo gave no cert-chain", field: "cert-chain")
        }
        guard let cbitpos = try list.uint("cbitpos"), let reduced = try list.uint("reduced-phys-bits") else {
            throw VirtError(.malformedReply, "virNodeGetSEVInfo gave no cbitpos/reduced-phys-bits", field: "cbitpos")
        }
        return SEVPlatformInfo(
            pdh: pdh, certChain: chain, cbitpos: cbitpos, reducedPhysBits: reduced, maxGuests: try list.uint("max-guests"),
            maxESGuests: try list.uint("max-es-guests"), cpu0ID: try list.base64("cpu0-id"))
    }

    // MARK: Domains

    /// Defines a persistent domain from XML (`virDomainDefineXML`).
    /// - Throws: ``VirtError`` (libvirt's: `VIR_ERR_XML_ERROR` for XML libvirt rejects).
    public func define(xml: String) async throws(VirtError) -> DomainRef {
        try await perform { (conn) throws(VirtError) -> DomainRef in
            guard let domain = virDomainDefineXML(conn, xml) else { throw LibvirtErrors.last("cannot define the domain") }
            defer { virDomainFree(domain) }
            return try Self.reference(domain)
        }
    }

    private static func reference(_ domain: virDomainPtr) throws(VirtError) -> DomainRef {
        guard let name = virDomainGetName(domain) else { throw LibvirtErrors.last("cannot read the domain name") }
        var buffer = [CChar](repeating: 0, count: 64)  // VIR_UUID_STRING_BUFLEN = 37
        guard virDomainGetUUIDString(domain, &buffer) == 0 else { throw LibvirtErrors.last("cannot read the domain UUID") }
        let uuid = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return DomainRef(name: String(cString: name), uuid: uuid)
    }

    /// Looks a domain up by name.
    /// - Throws: ``VirtError`` (libvirt's `VIR_ERR_NO_DOMAIN` when there is none).
    public func lookup(name: String) async throws(VirtError) -> DomainRef {
        try await perform { (conn) throws(VirtError) -> DomainRef in
            guard let domain = virDomainLookupByName(conn, name) else { throw LibvirtErrors.last("no domain named \(name)") }
            defer { virDomainFree(domain) }
            return try Self.reference(domain)
        }
    }

    /// Every domain the connection knows (defined or running).
    /// - Throws: ``VirtError`` (libvirt's).
    public func domains() async throws(VirtError) -> [DomainRef] {
        try await perform { (conn) throws(VirtError) -> [DomainRef] in
            var list: UnsafeMutablePointer<virDomainPtr?>?
            let count = virConnectListAllDomains(conn, &list, 0)
            guard count >= 0 else { throw LibvirtErrors.last("cannot list domains") }
            defer {
                for index in 0..<Int(count) { if let domain = list?[index] { virDomainFree(domain) } }
                free(list)
            }
            var refs: [DomainRef] = []
            for index in 0..<Int(count) {
                guard let domain = list?[index] else { continue }
                refs.append(try Self.reference(domain))
            }
            return refs
        }
    }

    /// The domain's XML as libvirt holds it (`virDomainGetXMLDesc`, no flags: no secure fields).
    /// - Throws: ``VirtError`` (libvirt's).
    public func xmlDescription(_ ref: DomainRef) async throws(VirtError) -> String {
        try await withDomain(ref) { (domain) throws(VirtError) -> String in
            guard let text = virDomainGetXMLDesc(domain, 0) else { throw LibvirtErrors.last("cannot read the XML of \(ref.name)") }
            defer { free(text) }
            return String(cString: text)
        }
    }

    /// Starts a defined domain paused (`virDomainCreateWithFlags(VIR_DOMAIN_START_PAUSED)`).
    /// - Throws: ``VirtError`` (libvirt's).
    public func createPaused(_ ref: DomainRef) async throws(VirtError) {
        let testDriver = uri.hasPrefix("test:")
        try await withDomain(ref) { (domain) throws(VirtError) in
            guard virDomainCreateWithFlags(domain, VIR_DOMAIN_START_PAUSED.rawValue) == 0 else {
                let error = LibvirtErrors.last("cannot start \(ref.name) paused")
                // libvirt 9's test driver rejects every create flag (VIR_ERR_INVALID_ARG); it runs no guest code, so
                // create + suspend is equivalent there. Real drivers never take this path.
                guard testDriver, error.libvirt?.code == LibvirtErrorNumber.invalidArgument else { throw error }
                guard virDomainCreate(domain) == 0 else { throw LibvirtErrors.last("cannot start \(ref.name)") }
                guard virDomainSuspend(domain) == 0 else { throw LibvirtErrors.last("cannot pause \(ref.name)") }
                return
            }
        }
    }

    /// Resumes a paused domain (`virDomainResume`).
    /// - Throws: ``VirtError`` (libvirt's).
    public func resume(_ ref: DomainRef) async throws(VirtError) {
        try await withDomain(ref) { (domain) throws(VirtError) in
            guard virDomainResume(domain) == 0 else { throw LibvirtErrors.last("cannot resume \(ref.name)") }
        }
    }

    /// Destroys (powers off) a running domain (`virDomainDestroy`); nothing happens when it is not running.
    /// - Throws: ``VirtError`` (libvirt's).
    public func destroy(_ ref: DomainRef) async throws(VirtError) {
        try await withDomain(ref) { (domain) throws(VirtError) in
            let active = virDomainIsActive(domain)
            guard active >= 0 else { throw LibvirtErrors.last("cannot read the state of \(ref.name)") }
            guard active == 1 else { return }
            guard virDomainDestroy(domain) == 0 else { throw LibvirtErrors.last("cannot destroy \(ref.name)") }
        }
    }

    /// Undefines a domain (`virDomainUndefine`).
    /// - Throws: ``VirtError`` (libvirt's).
    public func undefine(_ ref: DomainRef) async throws(VirtError) {
        try await withDomain(ref) { (domain) throws(VirtError) in
            guard virDomainUndefine(domain) == 0 else { throw LibvirtErrors.last("cannot undefine \(ref.name)") }
        }
    }

    /// The domain's state (`virDomainGetState`).
    /// - Throws: ``VirtError`` (libvirt's).
    public func state(_ ref: DomainRef) async throws(VirtError) -> DomainState {
        try await withDomain(ref) { (domain) throws(VirtError) -> DomainState in
            var state: Int32 = 0
            var reason: Int32 = 0
            guard virDomainGetState(domain, &state, &reason, 0) == 0 else {
                throw LibvirtErrors.last("cannot read the state of \(ref.name)")
            }
            return DomainState(libvirtValue: state)
        }
    }

    /// The launch measurement of a paused SEV domain (`virDomainGetLaunchSecurityInfo`); the list is freed on every
    /// path.
    /// - Throws: ``VirtError`` (libvirt's), or ``VirtError/Code/malformedReply`` when `sev-measurement` is missing or
    ///   not 48 bytes of base64.
    public func launchSecurityInfo(_ ref: DomainRef) async throws(VirtError) -> LaunchMeasurement {
        try await withDomain(ref) { (domain) throws(VirtError) -> LaunchMeasurement in
            var params: virTypedParameterPtr?
            var count: Int32 = 0
            let status = virDomainGetLaunchSecurityInfo(domain, &params, &count, 0)
            let list = TypedParameterList(takingOwnership: params, count: count)
            guard status == 0 else { throw LibvirtErrors.last("cannot read the launch measurement of \(ref.name)") }
            return try Self.measurement(from: list)
        }
    }

    /// Reads ``LaunchMeasurement`` from `virDomainGetLaunchSecurityInfo`'s parameters (sev.md §6).
    package static func measurement(from list: TypedParameterList) throws(VirtError) -> LaunchMeasurement {
        guard let measurement = try list.base64("sev-measurement") else {
            throw VirtError(.malformedReply, "libvirt returned no sev-measurement", field: "sev-measurement")
        }
        guard measurement.count == 48 else {
            throw VirtError(.malformedReply, "sev-measurement is \(measurement.count) bytes, not 48", field: "sev-measurement")
        }
        return LaunchMeasurement(
            measurement: measurement, apiMajor: try list.uint("sev-api-major"), apiMinor: try list.uint("sev-api-minor"),
            buildID: try list.uint("sev-build-id"), policy: try list.uint("sev-policy"))
    }

    /// Injects a launch secret (`virDomainSetLaunchSecurityState` with `sev-secret-header`, `sev-secret` and the
    /// optional `sev-secret-set-address`); the list is built and freed on every path.
    /// - Throws: ``VirtError`` (libvirt's).
    public func setLaunchSecurityState(_ ref: DomainRef, secret: LaunchSecret) async throws(VirtError) {
        try await withDomain(ref) { (domain) throws(VirtError) in
            let list = try Self.parameters(for: secret)
            guard virDomainSetLaunchSecurityState(domain, list.params, list.count, 0) == 0 else {
                throw LibvirtErrors.last("cannot inject the launch secret into \(ref.name)")
            }
        }
    }

    /// The typed parameters of a LAUNCH_SECRET (sev.md §6).
    package static func parameters(for secret: LaunchSecret) throws(VirtError) -> TypedParameterList {
        let list = TypedParameterList()
        try list.add("sev-secret-header", string: Data(secret.header).base64EncodedString())
        try list.add("sev-secret", string: Data(secret.ciphertext).base64EncodedString())
        if let address = secret.guestAddress { try list.add("sev-secret-set-address", ullong: address) }
        return list
    }
}

/// A connection handle crossing from the queue to the caller once, at open (it is then owned by the connection).
private struct UncheckedHandle: @unchecked Sendable {
    let pointer: virConnectPtr
}

/// The host's node information (`virNodeInfo`).
public struct NodeInfo: Sendable, Equatable {
    /// The CPU model string (for example `x86_64`).
    public let model: String
    public let memoryKiB: UInt64
    public let cpus: UInt32
    public let mhz: UInt32
    public let nodes: UInt32
    public let sockets: UInt32
    public let cores: UInt32
    public let threads: UInt32
}
