internal import CLibvirt
import Foundation

// MARK: - virTypedParameter lists

/// An owned libvirt typed-parameter list (`virTypedParameterPtr` + count), freed with `virTypedParamsFree` in
/// `deinit` on every path: lists we build with `virTypedParamsAdd*` and lists libvirt hands us (`virNodeGetSEVInfo`,
/// `virDomainGetLaunchSecurityInfo`) alike. Values read from it are copied into Swift values at once.
///
/// Not Sendable: a list lives inside one call on the connection's queue.
package final class TypedParameterList {
    private(set) var params: virTypedParameterPtr?
    private(set) var count: Int32 = 0
    private var capacity: Int32 = 0

    /// An empty list to add to.
    package init() {}

    /// Takes ownership of a list libvirt allocated.
    init(takingOwnership params: virTypedParameterPtr?, count: Int32) {
        self.params = params
        self.count = count
        self.capacity = count
    }

    deinit { virTypedParamsFree(params, count) }

    /// The number of parameters.
    package var parameterCount: Int { Int(count) }

    /// Appends a string parameter.
    /// - Throws: ``VirtError`` (libvirt's) when the name is too long, a duplicate or memory runs out.
    package func add(_ name: String, string value: String) throws(VirtError) {
        let status = virTypedParamsAddString(&params, &count, &capacity, name, value)
        guard status == 0 else { throw LibvirtErrors.last("cannot add typed parameter \(name)") }
    }

    /// Appends an unsigned long long parameter.
    /// - Throws: ``VirtError`` (libvirt's).
    package func add(_ name: String, ullong value: UInt64) throws(VirtError) {
        let status = virTypedParamsAddULLong(&params, &count, &capacity, name, value)
        guard status == 0 else { throw LibvirtErrors.last("cannot add typed parameter \(name)") }
    }

    /// Appends an unsigned int parameter.
    /// - Throws: ``VirtError`` (libvirt's).
    package func add(_ name: String, uint value: UInt32) throws(VirtError) {
        let status = virTypedParamsAddUInt(&params, &count, &capacity, name, value)
        guard status == 0 else { throw LibvirtErrors.last("cannot add typed parameter \(name)") }
    }

    /// The string parameter `name`, nil when absent.
    /// - Throws: ``VirtError`` when the parameter exists with another type.
    package func string(_ name: String) throws(VirtError) -> String? {
        var value: UnsafePointer<CChar>?
        let status = virTypedParamsGetString(params, count, name, &value)
        if status < 0 { throw LibvirtErrors.last("typed parameter \(name) is not a string") }
        guard status == 1, let value else { return nil }
        return String(cString: value)
    }

    /// The unsigned int parameter `name`, nil when absent.
    /// - Throws: ``VirtError`` when the parameter exists with another type.
    package func uint(_ name: String) throws(VirtError) -> UInt32? {
        var value: UInt32 = 0
        let status = virTypedParamsGetUInt(params, count, name, &value)
        if status < 0 { throw LibvirtErrors.last("typed parameter \(name) is not an unsigned int") }
        return status == 1 ? value : nil
    }

    /// The unsigned long long parameter `name`, nil when absent.
    /// - Throws: ``VirtError`` when the parameter exists with another type.
    package func ullong(_ name: String) throws(VirtError) -> UInt64? {
        var value: UInt64 = 0
        let status = virTypedParamsGetULLong(params, count, name, &value)
        if status < 0 { throw LibvirtErrors.last("typed parameter \(name) is not an unsigned long long") }
        return status == 1 ? value : nil
    }

    /// The base64 string parameter `name`, decoded; nil when absent.
    /// - Throws: ``VirtError/Code/malformedReply`` when it is not base64.
    package func base64(_ name: String) throws(VirtError) -> [UInt8]? {
        guard let text = try string(name) else { return nil }
        guard let data = Data(base64Encoded: text, options: [.ignoreUnknownCharacters]) else {
            throw VirtError(.malformedReply, "libvirt returned \(name) that is not base64", field: name)
        }
        return [UInt8](data)
    }
}

// MARK: - libvirt errors

enum LibvirtErrors {
    /// libvirt prints every error to stderr through its default handler; Custos reports errors itself. Installed once
    /// per process, with `virInitialize` (which makes libvirt safe to call from several threads).
    static let prepared: Bool = {
        let status = virInitialize()
        virSetErrorFunc(nil) { _, _ in }
        return status == 0
    }()

    /// The calling thread's last libvirt error as a ``VirtError`` (libvirt keeps errors per thread, so this must run
    /// on the thread that made the failing call: every call runs inside one closure on the connection's queue).
    /// Resets the error afterwards.
    static func last(_ context: String) -> VirtError {
        guard let error = virGetLastError() else {
            return VirtError(.libvirt, context, libvirt: VirtError.LibvirtDetail(code: 0, domain: 0, message: "no error reported"))
        }
        let message = error.pointee.message.map { String(cString: $0) } ?? "no message"
        let detail = VirtError.LibvirtDetail(code: error.pointee.code, domain: error.pointee.domain, message: message)
        virResetLastError()
        return VirtError(.libvirt, context, libvirt: detail)
    }
}
