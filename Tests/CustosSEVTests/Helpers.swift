import CustosCrypto
import CustosSEV
import CustosTestSupport
import Foundation
import Testing

/// Hex literal → bytes (test inputs from the spec; a typo fails the test that uses it).
func hex(_ text: String) -> [UInt8] { (try? Hex.decode(text)) ?? [] }

func b64(_ text: String) -> [UInt8] { (try? Base64.decode(text)) ?? [] }

func sev(_ path: String) throws -> [UInt8] { try TestData.bytes("sev/" + path) }

/// 00 01 … (count-1) offset by `start`.
func sequence(from start: UInt8, count: Int) -> [UInt8] { (0..<count).map { start &+ UInt8($0) } }

let testDataPresent = FileManager.default.fileExists(atPath: TestData.url("sev/MANIFEST.tsv").path)

/// A random source that replays fixed bytes (to pin IVs to the values the peers used).
final class FixedRandom: SEVRandomSource, @unchecked Sendable {
    private let lock = NSLock()
    private var queue: [UInt8]
    init(_ bytes: [UInt8]) { queue = bytes }
    func bytes(_ count: Int) throws(SEVError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        guard queue.count >= count else { throw SEVError(.invalidParameter, "FixedRandom exhausted") }
        let out = Array(queue.prefix(count))
        queue.removeFirst(count)
        return out
    }
}

/// The published roots from testdata, one AMDRoots per product line.
func publishedRoots() throws -> [AMDRoots] {
    try ProductLine.allPublished.map { line in
        try AMDRoots(productLine: line, ark: try sev("amd-roots/\(line.name)/ark.cert"), ask: try sev("amd-roots/\(line.name)/ask.cert"))
    }
}

func platform(_ line: String) throws -> PlatformCertificates {
    PlatformCertificates(
        pdh: try SEVCertificate(bytes: try sev("platform-chains/\(line)/pdh.cert")),
        pek: try SEVCertificate(bytes: try sev("platform-chains/\(line)/pek.cert")),
        oca: try SEVCertificate(bytes: try sev("platform-chains/\(line)/oca.cert")),
        cek: try SEVCertificate(bytes: try sev("platform-chains/\(line)/cek.cert")))
}
