import CustosCLI
import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

@Suite(Requirement.testData)
struct VerificationTests {
    /// dcap-qvl's error messages mapped to the check that fails (expected.json `error` strings).
    static func code(forPeerError message: String) -> TDXError.Code? {
        let table: [(String, TDXError.Code)] = [
            ("No matching TCB level", .tcbNotSupported), ("Debug mode is enabled", .debugTD), ("TCBInfo expired", .collateralExpired),
            ("QE Identity expired", .collateralExpired), ("issue date is in the future", .collateralNotYetValid),
            ("ISV enclave report signature is invalid", .quoteSignatureInvalid),
            ("Signature is invalid for qe_report", .qeReportSignatureInvalid), ("QE report hash mismatch", .qeReportDataMismatch),
            ("Signature is invalid for tcb_info", .tcbInfoSignatureInvalid), ("Fmspc mismatch", .tcbInfoMismatch),
        ]
        return table.first { message.contains($0.0) }?.1
    }

    /// The parametrised tests below run once per pair of expected.json: it must decode and hold the pairs.
    @Test func expectedResultsDecode() throws {
        #expect(Fixtures.expectedDecodingError == nil, "\(Fixtures.expectedDecodingError ?? "")")
        #expect(Fixtures.pairs.count >= 5)
        #expect(Fixtures.pairs.contains { $0.valid.result == "accepted" } && Fixtures.pairs.contains { $0.valid.result != "accepted" })
    }

    @Test("same verdict, status and advisories as dcap-qvl at the recorded time", arguments: Fixtures.pairs)
    func peerVerdict(pair: ExpectedPair) throws {
        let bytes = try Fixtures.quote(pair.quote)
        let verifier = try Fixtures.verifier()
        // Both collateral forms give the same answer.
        for collateral in [try Fixtures.collateral(pair.collateral), try Fixtures.collateral(pair.collateralDirectory)] {
            let result = verifier.verify(quote: bytes, collateral: collateral, at: pair.time)
            if pair.valid.result == "accepted" {
                let verified = try #require(result.verifiedQuote, "\(String(describing: result.error))")
                #expect(verified.tcbStatus.rawValue == pair.valid.status)
                #expect(verified.advisoryIDs == (pair.valid.advisory_ids ?? []))
                #expect(Hex.encode(verified.pck.fmspc).uppercased() == pair.parsed.fmspc)
                #expect(verified.collateralExpiry > pair.time)
            } else {
                let error = try #require(result.error)
                #expect(error.code == Self.code(forPeerError: pair.valid.error ?? ""), "\(error) vs \(pair.valid.error ?? "")")
            }
        }
    }

    @Test(
        "a quote parsed by the caller verifies as its bytes do; its FMSPC is the peer's, from cache the second time",
        arguments: Fixtures.pairs)
    func parsedQuoteAndPlatformFMSPC(pair: ExpectedPair) throws {
        let bytes = try Fixtures.quote(pair.quote)
        let quote = try Quote(parsing: bytes)
        let verifier = QuoteVerifier(trustedRoot: try Fixtures.verifier().trustedRoot, cache: VerificationCache())
        for _ in 0..<2 {
            #expect(Hex.encode(try verifier.platformFMSPC(of: quote)).uppercased() == pair.parsed.fmspc)
            // The CA that picks the PCK CRL (PCS `pckcrl?ca=`) is the one dcap-qvl names.
            #expect(try verifier.pckPlatform(of: quote).ca.rawValue == pair.parsed.pck_ca)
        }
        #expect(try Fixtures.collateral(pair.collateral).pckCRLAuthority?.rawValue == pair.parsed.pck_ca)
        let collateral = try Fixtures.collateral(pair.collateral)
        let fromBytes = verifier.verify(quote: bytes, collateral: collateral, at: pair.time)
        let fromParsed = verifier.verify(parsed: quote, collateral: collateral, at: pair.time)
        #expect(fromParsed.verifiedQuote?.tcbStatus == fromBytes.verifiedQuote?.tcbStatus)
        #expect(fromParsed.verifiedQuote?.advisoryIDs == fromBytes.verifiedQuote?.advisoryIDs)
        #expect(fromParsed.error?.code == fromBytes.error?.code)
        #expect((fromParsed.verifiedQuote != nil) == (pair.valid.result == "accepted"))
    }

    /// Before the service fetches a platform's collateral for a quote, its PCK certificate must be signed by a CA the
    /// trusted root signed: a quote made by another hierarchy (its own root, any FMSPC) is refused, and not cached.
    @Test func platformFMSPCNeedsAChainToTheTrustedRoot() throws {
        let trusted = try TDXTestHierarchy()
        let stranger = try TDXTestHierarchy()
        var spec = TDXQuoteSpec()
        spec.fmspc = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]
        let verifier = QuoteVerifier(trustedRoot: trusted.root, cache: VerificationCache())
        let own = try Quote(parsing: trusted.quoteFactory(spec).quote(reportData: [UInt8](repeating: 1, count: 64)))
        #expect(try verifier.platformFMSPC(of: own) == spec.fmspc)
        let foreign = try Quote(parsing: stranger.quoteFactory(spec).quote(reportData: [UInt8](repeating: 1, count: 64)))
        for _ in 0..<2 {
            #expect(throws: TDXError(.pckChainInvalid, "")) { try verifier.platformFMSPC(of: foreign) }
        }
    }

    /// A platform whose PCK certificate the PCK Processor CA issued: the verifier names that CA, its quote verifies with
    /// the Processor CA's CRL, and the Platform CA's CRL (the only one the service fetched before) cannot check it.
    @Test func aProcessorCAPlatformNeedsTheProcessorCAsCRL() throws {
        let platformCA = try TDXTestHierarchy()
        let processorCA = try platformCA.withProcessorCA()
        #expect(processorCA.root.der == platformCA.root.der)
        let spec = TDXQuoteSpec()
        let verifier = QuoteVerifier(trustedRoot: platformCA.root, cache: VerificationCache())
        let made = try processorCA.make(spec)
        let quote = try Quote(parsing: made.quote)
        #expect(try verifier.pckPlatform(of: quote) == PCKPlatform(fmspc: spec.fmspc, ca: .processor))
        #expect(made.collateral.pckCRLAuthority == .processor)
        let time = try #require(RFC3339.parse("2025-01-15T00:00:00Z"))
        #expect(verifier.verify(parsed: quote, collateral: made.collateral, at: time).verifiedQuote?.tcbStatus == .upToDate)
        let platformCollateral = try platformCA.make(spec).collateral
        #expect(platformCollateral.pckCRLAuthority == .platform)
        #expect(verifier.verify(parsed: quote, collateral: platformCollateral, at: time).error?.code == .crlInvalid)
        // And a Platform CA quote with its own collateral names the Platform CA.
        let platformQuote = try Quote(parsing: try platformCA.make(spec).quote)
        #expect(try verifier.pckPlatform(of: platformQuote).ca == .platform)
    }

    @Test func pckCertificateAuthorityFromTheCAName() {
        #expect(PCKCertificateAuthority(commonName: "Intel SGX PCK Platform CA") == .platform)
        #expect(PCKCertificateAuthority(commonName: "Intel SGX PCK Processor CA") == .processor)
        #expect(PCKCertificateAuthority(commonName: "Intel SGX Root CA") == nil)
        #expect(PCKCertificateAuthority(commonName: nil) == nil)
        #expect(PCKPlatform(fmspc: [0, 0xA0, 0x6F, 0, 0, 0], ca: .platform).cacheKey == "00A06F000000")
        #expect(PCKPlatform(fmspc: [0, 0xA0, 0x6F, 0, 0, 0], ca: .processor).cacheKey == "00A06F000000-processor")
    }

    @Test(
        "a debug TD verifies under Intel's rules when allowed",
        arguments: Fixtures.pairs.filter { $0.valid.error?.contains("Debug") == true })
    func allowDebug(pair: ExpectedPair) throws {
        let result = try Fixtures.verifier().verify(
            quote: Fixtures.quote(pair.quote), collateral: Fixtures.collateral(pair.collateral), at: pair.time,
            options: .init(allowDebug: true))
        let verified = try #require(result.verifiedQuote)
        #expect(verified.td.isDebug)
        #expect(verified.tcbStatus == .upToDate)  // expected.json qvl_rule_emulation for P10
    }

    @Test("expiry and not-yet-valid times are rejected as dcap-qvl does", arguments: Fixtures.pairs)
    func expiry(pair: ExpectedPair) throws {
        let bytes = try Fixtures.quote(pair.quote)
        let collateral = try Fixtures.collateral(pair.collateral)
        let verifier = try Fixtures.verifier()
        for outcome in [pair.expired, pair.not_yet_valid] {
            let now = Date(timeIntervalSince1970: TimeInterval(try #require(outcome.now)))
            let error = try #require(verifier.verify(quote: bytes, collateral: collateral, at: now).error)
            #expect(error.code == Self.code(forPeerError: outcome.error ?? ""), "\(error) vs \(outcome.error ?? "")")
        }
        // One second after the TCB Info / QE Identity nextUpdate, and after the earliest nextUpdate of anything.
        for next in [
            collateral.tcbInfo.nextUpdate, collateral.qeIdentity.nextUpdate, collateral.pckCRL.nextUpdate, collateral.rootCACRL.nextUpdate,
        ] {
            let after = try #require(next).addingTimeInterval(1)
            #expect(verifier.verify(quote: bytes, collateral: collateral, at: after).error?.code == .collateralExpired)
        }
        // One second before the TCB Info / QE Identity issueDate.
        for issue in [collateral.tcbInfo.issueDate, collateral.qeIdentity.issueDate] {
            #expect(
                verifier.verify(quote: bytes, collateral: collateral, at: issue.addingTimeInterval(-1)).error?.code
                    == .collateralNotYetValid)
        }
    }

    @Test("the peer's flips are rejected with the matching error code", arguments: Fixtures.pairs)
    func peerFlips(pair: ExpectedPair) throws {
        let bytes = try Fixtures.quote(pair.quote)
        let collateral = try Fixtures.collateral(pair.collateral)
        let verifier = try Fixtures.verifier(cache: VerificationCache())
        for outcome in [
            pair.flip_quote_signature, pair.flip_td_report_body, pair.flip_qe_report, pair.flip_attestation_key, pair.flip_header_user_data,
        ] {
            var mutated = bytes
            mutated[try #require(outcome.offset)] ^= 0x01
            let error = try #require(verifier.verify(quote: mutated, collateral: collateral, at: pair.time).error)
            #expect(error.code == Self.code(forPeerError: outcome.error ?? ""), "offset \(outcome.offset ?? -1): \(error)")
        }
        // PCK leaf PEM: replace one base64 character (B <-> another), as the peer did.
        var mutated = bytes
        let offset = try #require(pair.flip_pck_cert.offset)
        mutated[offset] = mutated[offset] == UInt8(ascii: "B") ? UInt8(ascii: "C") : UInt8(ascii: "B")
        let error = try #require(verifier.verify(quote: mutated, collateral: collateral, at: pair.time).error)
        #expect([TDXError.Code.pckChainInvalid, .invalidPCKCertificate].contains(error.code), "\(error)")
    }

    @Test("one space added inside tcbInfo breaks its signature", arguments: Fixtures.pairs)
    func tcbInfoWhitespace(pair: ExpectedPair) throws {
        let original = try TestData.bytes("tdx/" + pair.collateral)
        var object = try JSONSerialization.jsonObject(with: Data(original)) as? [String: Any] ?? [:]
        let tcbInfo = try #require(object["tcb_info"] as? String)
        object["tcb_info"] = tcbInfo.replacingOccurrences(of: "\"version\":3", with: "\"version\": 3")
        let collateral = try Collateral(quoteCollateralV3JSON: [UInt8](try JSONSerialization.data(withJSONObject: object)))
        let result = try Fixtures.verifier().verify(quote: Fixtures.quote(pair.quote), collateral: collateral, at: pair.time)
        #expect(result.error?.code == .tcbInfoSignatureInvalid)
    }

    @Test("q10 against collateral for another FMSPC is a TCB Info mismatch")
    func fmspcMismatch() throws {
        let pair = try #require(Fixtures.pairs.first { $0.id == "P01" })
        let result = try Fixtures.verifier().verify(
            quote: Fixtures.quote("quotes/q10_gotdx_cos113_v4.bin"), collateral: Fixtures.collateral(pair.collateral), at: pair.time)
        #expect(result.error?.code == .tcbInfoMismatch)
    }

    @Test("another trust anchor rejects Intel's chains")
    func wrongRoot() throws {
        let pair = try #require(Fixtures.pairs.first { $0.id == "P01" })
        let key = try ECPrivateKey(generating: .p256)
        let other = try CertificateBuilder(
            subject: [("CN", "Intel SGX Root CA"), ("O", "Intel Corporation")], serialNumber: [1],
            notBefore: Date(timeIntervalSince1970: 0),
            notAfter: Date(timeIntervalSince1970: 4_000_000_000), isCA: true
        ).sign(subjectKey: .ec(key.publicKey), issuer: nil, issuerKey: .ec(key))
        let result = QuoteVerifier(trustedRoot: other).verify(
            quote: try Fixtures.quote(pair.quote), collateral: try Fixtures.collateral(pair.collateral), at: pair.time)
        #expect([TDXError.Code.crlInvalid, .untrustedRoot].contains(result.error?.code), "\(String(describing: result.error))")
    }

    @Test("every byte flip of the signed region, QE report, auth data and attestation key is rejected")
    func denseFlips() throws {
        for pair in Fixtures.pairs where pair.valid.result == "accepted" && ["P01", "P06"].contains(pair.id) {
            let bytes = try Fixtures.quote(pair.quote)
            let quote = try Quote(parsing: bytes)
            let collateral = try Fixtures.collateral(pair.collateral)
            let cache = VerificationCache()
            let verifier = try Fixtures.verifier(cache: cache)
            // Warm first: the cache then holds the genuine QE report signature, and every flip below must still fail.
            #expect(verifier.verify(quote: bytes, collateral: collateral, at: pair.time).verifiedQuote != nil)
            #expect(cache.counts.qeReportSignatures == 1)
            let s = quote.signedRegion.count
            // Signed region, attestation key (S+68..S+132), QE report + QE signature + auth size + auth data.
            let ranges = [0..<s, (s + 68)..<(s + 132), (s + 138)..<(s + 590 + quote.qeAuthData.count)]
            for range in ranges {
                for offset in range {
                    var mutated = bytes
                    mutated[offset] ^= 0x01
                    let result = verifier.verify(quote: mutated, collateral: collateral, at: pair.time)
                    guard let error = result.error else {
                        Issue.record("\(pair.id): flip at \(offset) was accepted")
                        continue
                    }
                    let expected: Set<TDXError.Code>
                    switch offset {
                    case 0..<48: expected = [.malformedQuote, .unsupportedQuoteFormat, .quoteSignatureInvalid]
                    case 48..<s:
                        expected = [.malformedQuote, .unsupportedQuoteFormat, .quoteSignatureInvalid, .tdxModuleMismatch, .tcbInfoMismatch]
                    case (s + 68)..<(s + 132): expected = [.qeReportDataMismatch]
                    case (s + 138)..<(s + 138 + 384 + 64): expected = [.qeReportSignatureInvalid]
                    default: expected = [.malformedQuote, .unsupportedQuoteFormat, .qeReportDataMismatch]
                    }
                    #expect(expected.contains(error.code), "\(pair.id) flip at \(offset): \(error)")
                }
            }
        }
    }

    @Test("the cache re-verifies nothing unchanged, gives the same answers, and respects nextUpdate")
    func cache() throws {
        let pair = try #require(Fixtures.pairs.first { $0.id == "P01" })
        let bytes = try Fixtures.quote(pair.quote)
        let collateral = try Fixtures.collateral(pair.collateral)
        let cache = VerificationCache()
        let cached = try Fixtures.verifier(cache: cache)
        let first = try #require(cached.verify(quote: bytes, collateral: collateral, at: pair.time).verifiedQuote)
        #expect(cache.counts.collateral == 1 && cache.counts.pcks == 1 && cache.counts.attestationKeys == 1)
        #expect(cache.counts.qeReportSignatures == 1)
        let second = try #require(cached.verify(quote: bytes, collateral: collateral, at: pair.time.addingTimeInterval(60)).verifiedQuote)
        #expect(cache.counts.collateral == 1 && cache.counts.pcks == 1)
        #expect(first.tcbStatus == second.tcbStatus && first.quote == second.quote)
        // A cached entry is never used past its nextUpdate.
        let expired = try #require(pair.expired.now)
        #expect(
            cached.verify(quote: bytes, collateral: collateral, at: Date(timeIntervalSince1970: TimeInterval(expired))).error?.code
                == .collateralExpired)
        // A tampered quote is still rejected with a warm cache.
        var mutated = bytes
        mutated[600] ^= 0x80
        #expect(cached.verify(quote: mutated, collateral: collateral, at: pair.time).error?.code == .quoteSignatureInvalid)
        // A different attestation key (v4: header 48 + TD10 body 584 + length 4 + signature 64 = offset 700) is not a
        // cache hit: it fails the QE REPORTDATA binding, which is checked before any key is parsed or cached.
        var otherKey = bytes
        otherKey[710] ^= 0x01
        #expect(cached.verify(quote: otherKey, collateral: collateral, at: pair.time).error?.code == .qeReportDataMismatch)
        #expect(cache.counts.attestationKeys == 1)
    }

    @Test("the exact signed bytes are the raw tcbInfo / enclaveIdentity substrings of the PCS bodies")
    func rawBytesAgreeBetweenForms() throws {
        var compared = 0
        for pair in Fixtures.pairs {
            let fromJSON = try Fixtures.collateral(pair.collateral)
            // Some pairs' folders hold only a QuoteCollateralV3 JSON (no PCS layout to compare with).
            guard FileManager.default.fileExists(atPath: TestData.url("tdx/" + pair.collateralDirectory + "/qe_identity.json").path) else {
                continue
            }
            compared += 1
            let fromDirectory = try Fixtures.collateral(pair.collateralDirectory)
            #expect(fromJSON.tcbInfo.signedBytes == fromDirectory.tcbInfo.signedBytes)
            #expect(fromJSON.qeIdentity.signedBytes == fromDirectory.qeIdentity.signedBytes)
            #expect(fromJSON.contentHash == fromDirectory.contentHash)
        }
        // c1, c2 and c4 come in the PCS layout too (testdata MANIFEST): missing data must not pass silently.
        #expect(compared >= 3, "only \(compared) pairs had a PCS-layout folder")
    }
}
