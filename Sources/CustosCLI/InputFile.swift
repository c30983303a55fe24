import CustosCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `read(2)`, named apart from the reader's own `read`.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(fd, buffer, count)
    #else
        Darwin.read(fd, buffer, count)
    #endif
}

/// What a file given on the command line holds; each kind has its own size limit, so that a wrong or hostile path
/// (a disk image given as a quote, /dev/zero) stops with a clear error instead of filling memory.
enum InputKind: Sendable, CaseIterable {
    case quote, collateral, certificate, firmware, kernel, uki, eventLog, policy, claims, key, measurement

    /// The size limit in bytes.
    var limit: Int {
        switch self {
        case .quote: 1 << 20  // a TDX quote with its PCK chain is ~5 KiB
        case .collateral: 8 << 20  // TCB Info, QE Identity, CRLs, PEM chains, QuoteCollateralV3 JSON
        case .certificate: 1 << 20  // X.509 (DER/PEM), AMD and SEV certificates, CRLs
        case .firmware: 256 << 20  // OVMF images are a few MiB
        case .kernel: 1 << 30  // kernels and initrds: a few hundred MiB at most
        case .uki: 1 << 30  // a UKI holds kernel and initrd
        case .eventLog: 16 << 20  // the CCEL log area is 64 KiB–1 MiB
        case .policy: 1 << 20  // policy YAML, reference values
        case .claims: 8 << 20  // claims / evidence JSON
        case .key: 64 << 10  // TEK/TIK, keys, secrets
        case .measurement: 64 << 10  // launch measurements and session blobs
        }
    }

    /// How the kind is named in messages.
    var name: String {
        switch self {
        case .quote: "quote"
        case .collateral: "collateral file"
        case .certificate: "certificate"
        case .firmware: "firmware image"
        case .kernel: "kernel or initrd"
        case .uki: "UKI / PE image"
        case .eventLog: "event log"
        case .policy: "policy"
        case .claims: "claims JSON"
        case .key: "key file"
        case .measurement: "measurement file"
        }
    }
}

/// Why an input file could not be used: always exit 2 (input Custos could not use).
struct InputFileError: CustosReportableError, CustomStringConvertible {
    enum Code: String { case fileNotFound, notAFile, unreadable, tooLarge }
    let code: Code
    let path: String
    let message: String

    var errorCode: String { code.rawValue }
    var errorMessage: String { message }
    var errorField: String? { path }
    var exitStatus: Int32 { 2 }
    var description: String { message }
}

/// The one file reader of the CLI: a size limit per ``InputKind``, typed ``InputFileError``s.
enum InputFile {
    /// Reads a whole file straight into one array: one allocation and one copy out of the page cache (not `Data`
    /// then `[UInt8]`, which faults in and copies a 4 MiB firmware twice; issue 4 "Performance"). Regular files are
    /// read to exactly their size (a file that changes size meanwhile is an error); others (pipes, /dev/null) until
    /// EOF, up to the limit.
    /// - Parameters:
    ///   - path: the file.
    ///   - kind: what it should hold (its size limit).
    ///   - what: how to name it in messages (default: the kind's name).
    /// - Throws: ``InputFileError``.
    static func read(_ path: String, kind: InputKind, what: String? = nil) throws(InputFileError) -> [UInt8] {
        let what = what ?? kind.name
        let limit = kind.limit
        func fail(_ code: InputFileError.Code, _ message: String) -> InputFileError {
            InputFileError(code: code, path: path, message: message)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let error = errno
            if error == ENOENT { throw fail(.fileNotFound, "\(what) \(path) does not exist") }
            throw fail(.unreadable, "cannot read \(what) \(path): \(String(cString: strerror(error)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw fail(.unreadable, "cannot read \(what) \(path): \(String(cString: strerror(errno)))")
        }
        let type = info.st_mode & S_IFMT
        guard type != S_IFDIR else { throw fail(.notAFile, "\(what) \(path) is a directory, not a file") }
        guard let size = Int(exactly: info.st_size), size <= limit else {
            throw fail(.tooLarge, "\(what) \(path) is larger than the \(limit)-byte limit for a \(kind.name)")
        }
        if type == S_IFREG {
            var failure: Int32 = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = 0
                while count < size {
                    let n = posixRead(fd, buffer.baseAddress.map { $0 + count }, size - count)
                    if n < 0 {
                        if errno == EINTR { continue }
                        failure = errno
                        return
                    }
                    if n == 0 { break }
                    count += n
                }
            }
            guard failure == 0 else { throw fail(.unreadable, "cannot read \(what) \(path): \(String(cString: strerror(failure)))") }
            guard bytes.count == size else { throw fail(.unreadable, "\(what) \(path) changed size while being read") }
            return bytes
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        defer { secureZero(&chunk) }  // may hold part of a TEK/TIK or secret read from a pipe
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail(.unreadable, "cannot read \(what) \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= limit else {
                throw fail(.tooLarge, "\(what) \(path) is larger than the \(limit)-byte limit for a \(kind.name)")
            }
            bytes += chunk[0..<n]
        }
    }
}
