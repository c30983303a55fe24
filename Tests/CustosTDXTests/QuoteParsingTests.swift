import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

@Suite(Requirement.testData)
struct QuoteParsingTests {
    @Test("parsed fields equal the peer's", arguments: Fixtures.pairs)
    func parsedFieldsMatchPeer(pair: ExpectedPair) throws {
        let bytes = try Fixtures.quote(pair.quote)
        let quote = try Quote(parsing: bytes)
        let p = pair.parsed
        #expect(quote.version == p.version)
        let td = quote.body
        #expect(Hex.encode(td.teeTCBSVN) == p.tee_tcb_svn)
        #expect(Hex.encode(td.mrSeam) == p.mr_seam)
        #expect(Hex.encode(td.mrSignerSeam) == p.mr_signer_seam)
        #expect(Hex.encode(td.seamAttributes) == p.seam_attributes)
        #expect(Hex.encode(td.tdAttributes) == p.td_attributes)
        #expect(Hex.encode(td.xfam) == p.xfam)
        #expect(Hex.encode(td.mrTD) == p.mr_td)
        #expect(Hex.encode(td.mrConfigID) == p.mr_config_id)
        #expect(Hex.encode(td.mrOwner) == p.mr_owner)
        #expect(Hex.encode(td.mrOwnerConfig) == p.mr_owner_config)
        #expect(td.rtmrs.map { Hex.encode($0) } == [p.rt_mr0, p.rt_mr1, p.rt_mr2, p.rt_mr3])
        #expect(Hex.encode(td.reportData) == p.report_data)
        // Layout (spec §1.4) as recorded by the research harness.
        let l = pair.layout
        #expect(quote.signedRegion.count == l.signed_len)
        #expect(quote.signatureDataLength == l.sig_data_len)
        #expect(quote.qeAuthData.count == l.qe_auth_len)
        #expect(Int(quote.innerCertificationDataType) == l.inner_cert_type)
        #expect(quote.innerCertificationData.count == l.inner_cert_size)
        #expect(quote.length == l.end)
        #expect(bytes.count == l.total)
        #expect(Array(bytes[l.qe_report_off..<(l.qe_report_off + 384)]) == quote.qeReport.raw)
        #expect(Array(bytes[l.pem_off..<(l.pem_off + l.inner_cert_size)]) == quote.innerCertificationData)
        if let descriptor = l.body_descriptor {
            #expect(quote.bodyDescriptorType.map(Int.init) == descriptor.type)
            #expect(quote.body.bodyType.size == descriptor.size)
        } else {
            #expect(quote.bodyDescriptorType == nil)
        }
        // PCK SGX extension (spec §1.5).
        let chain = try quote.pckCertificateChain()
        #expect(chain.count == 3)
        let leaf = try #require(chain.first { ($0.commonName ?? "").contains("SGX PCK Certificate") })
        let pck = try PCKExtension(certificate: leaf)
        #expect(Hex.encode(pck.fmspc) == p.pck_ext.fmspc.lowercased())
        #expect(Hex.encode(pck.fmspc).uppercased() == p.fmspc)
        #expect(Hex.encode(pck.ppid) == p.pck_ext.ppid)
        #expect(Hex.encode(pck.cpuSVN) == p.pck_ext.cpu_svn)
        #expect(Hex.encode(pck.pceID) == p.pck_ext.pce_id)
        #expect(pck.pceSVN == p.pck_ext.pce_svn)
        #expect(pck.sgxType == p.pck_ext.sgx_type)
        // Every sample has component SVNs equal to CPUSVN bytes (spec §1.5), read from the INTEGERs.
        #expect(pck.tcbComponents == pck.cpuSVN.map(Int.init))
    }

    static let quoteFiles = ["quotes/q01_dcapqvl_tdx_v4.bin", "quotes/q06_gotdx_v5_sample.bin", "quotes/q10_gotdx_cos113_v4.bin"]

    @Test("every prefix of a real quote is a typed malformedQuote error", arguments: quoteFiles)
    func truncationSweep(path: String) throws {
        let bytes = try Fixtures.quote(path)
        let full = try Quote(parsing: bytes)
        for length in 0..<full.length {
            do {
                _ = try Quote(parsing: Array(bytes[0..<length]))
                Issue.record("prefix of \(length) bytes parsed")
            } catch {
                #expect(error.code == .malformedQuote, "prefix \(length): \(error)")
                #expect(error.field != nil && error.offset != nil)
            }
        }
        // Bytes after the declared length are ignored and change nothing.
        #expect(try Quote(parsing: Array(bytes[0..<full.length])) == full)
        #expect(try Quote(parsing: Array(bytes[0..<full.length]) + Array("junk".utf8)) == full)
    }

    @Test("random byte flips never crash the parser", arguments: quoteFiles)
    func randomFlips(path: String) throws {
        let bytes = try Fixtures.quote(path)
        var generator = SeededRandom("QuoteParsingTests.randomFlips \(path)")
        let allowed: Set<TDXError.Code> = [.malformedQuote, .unsupportedQuoteFormat]
        for _ in 0..<3000 {
            var mutated = bytes
            for _ in 0..<Int(generator.next() % 4 + 1) {
                let index = Int(generator.next() % UInt64(mutated.count))
                mutated[index] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            }
            do {
                let quote = try Quote(parsing: mutated)
                _ = try? quote.pckCertificateChain()
            } catch {
                #expect(allowed.contains(error.code), "\(error)")
            }
        }
    }

    @Test("length fields are checked: huge or inconsistent sizes are malformedQuote naming the field")
    func inconsistentLengths() throws {
        let bytes = try Fixtures.quote("quotes/q01_dcapqvl_tdx_v4.bin")
        func withU32(_ offset: Int, _ value: UInt32) -> [UInt8] {
            var b = bytes
            for i in 0..<4 { b[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            return b
        }
        for (offset, field) in [(632, "signatureData.length"), (766, "certificationData.size")] {
            for value: UInt32 in [0xffff_ffff, 0x7fff_ffff, 1] {
                let error = #expect(throws: TDXError.self) { try Quote(parsing: withU32(offset, value)) }
                #expect(error?.code == .malformedQuote)
                #expect(error?.field != nil && error?.offset != nil, "\(field): \(String(describing: error))")
            }
        }
        // Unsupported but well-formed: version 3, key type 3, SGX TEE, another vendor, cert data type 5.
        for (offset, value) in [(0, UInt8(3)), (2, 3), (4, 0), (12, 0), (764, 5)] {
            var b = bytes
            b[offset] = value
            #expect(throws: TDXError(.unsupportedQuoteFormat, "")) { try Quote(parsing: b) }
        }
    }
}
