import CustosAnchors
import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// The pins are compiled into the binary (issue 11 §5); `Certs/anchors.json` documents them. The two must agree
/// field by field, so the documentation never drifts from what the binary trusts.
@Suite struct PinnedAnchorsTests {
    /// The documentation file, parsed with the strict JSON parser (not the `Codable` path the pins' type uses).
    static func documented() throws -> JSONValue {
        let url = TestData.packageRoot.appendingPathComponent("Certs/anchors.json")
        return try JSONValue.parse(Array(try Data(contentsOf: url)))
    }

    /// One pin as the JSON document writes it; absent optionals are absent members.
    static func document(_ pin: AnchorPin) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .string(pin.id), "vendor": .string(pin.vendor), "productLine": .string(pin.productLine), "role": .string(pin.role),
            "format": .string(pin.format), "file": .string(pin.file), "sha256": .string(pin.sha256), "url": .string(pin.url),
            "mirrorPath": .string(pin.mirrorPath),
        ]
        if let slice = pin.urlSlice {
            members["urlSlice"] = ["offset": .integer(Int64(slice.offset)), "length": .integer(Int64(slice.length))]
        }
        if let note = pin.note { members["note"] = .string(note) }
        return .object(members)
    }

    @Test func compiledPinsEqualTheDocumentedManifest() throws {
        let documented = try Self.documented()
        #expect(documented["version"] == .integer(Int64(AnchorManifest.pinned.version)))
        guard case .object(let top) = documented else {
            Issue.record("anchors.json is not an object")
            return
        }
        #expect(Set(top.keys) == ["version", "anchors"])
        guard case .array(let entries)? = documented["anchors"] else {
            Issue.record("anchors.json has no anchors array")
            return
        }
        let pins = AnchorManifest.pinned.anchors
        #expect(entries.count == pins.count)
        #expect(pins.count == 11)
        // Same order, and every member equal (an extra or missing member in either is a difference).
        for (entry, pin) in zip(entries, pins) {
            guard case .object(let documentedMembers) = entry, case .object(let compiledMembers) = Self.document(pin) else {
                Issue.record("anchor entry is not an object")
                continue
            }
            #expect(Set(documentedMembers.keys) == Set(compiledMembers.keys), "members of \(pin.id)")
            for (key, value) in documentedMembers {
                #expect(compiledMembers[key] == value, "\(pin.id).\(key)")
            }
        }
    }

    @Test func pinsAreWellFormed() throws {
        let pins = AnchorManifest.pinned.anchors
        #expect(Set(pins.map(\.id)).count == pins.count)
        for pin in pins {
            #expect(pin.sha256.count == 64 && pin.sha256 == pin.sha256.lowercased(), "\(pin.id)")
            #expect((try? Hex.decode(pin.sha256)) != nil, "\(pin.id)")
            #expect(!pin.file.contains("..") && !pin.file.hasPrefix("/"), "\(pin.id)")
        }
        // The Intel root's pin as Intel publishes it (README, specs/tdx.md).
        #expect(pins.first { $0.id == "intel-sgx-root-ca" }?.sha256 == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
    }
}
