import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// RFC 4648 §10 vectors, both alphabets, and a seeded round trip against Foundation's independent codec.
@Suite struct Base64Tests {
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test func rfc4648Vectors() throws {
        for (plain, encoded) in Self.vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(try Base64.decode(encoded) == Array(plain.utf8))
            #expect(Base64.urlEncode(Array(plain.utf8)) == encoded.replacingOccurrences(of: "=", with: ""))
            #expect(try Base64.decode(encoded.replacingOccurrences(of: "=", with: "")) == Array(plain.utf8))
        }
        // The URL alphabet: 0xfb 0xff → "+/8=" and "-_8".
        #expect(Base64.encode([0xfb, 0xff]) == "+/8=")
        #expect(Base64.urlEncode([0xfb, 0xff]) == "-_8")
        #expect(try Base64.decode("-_8") == [0xfb, 0xff])
        #expect(try Base64.decode("Zm9v\nYmFy") == Array("foobar".utf8))
        #expect(throws: CryptoError.self) { try Base64.decode("Zm9v!") }
        #expect(throws: CryptoError.self) { try Base64.decode("Zg==Zg") }
    }

    @Test func roundTripsAgreeWithFoundation() throws {
        var random = SeededRandom("Base64Tests")
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let ours = Base64.encode(bytes)
            #expect(ours == Data(bytes).base64EncodedString())
            #expect(try Base64.decode(ours) == bytes)
            #expect(try Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }

    /// The decoder's three entry shapes (String, contiguous bytes, a collection without contiguous storage) and its
    /// errors agree with Foundation's decoder.
    @Test func decodeEntryShapesAgreeWithFoundation() throws {
        var random = SeededRandom("Base64Tests.shapes")
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let text = Data(bytes).base64EncodedString()
            #expect(try Base64.decode(text) == bytes)
            #expect(try Base64.decode(utf8: Array(text.utf8)) == bytes)
            #expect(try Base64.decode(utf8: Array(text.utf8).lazy.map { $0 }) == bytes)
            #expect(try Base64.decode(utf8: ArraySlice(Array(text.utf8))) == bytes)
        }
        #expect(try Base64.decode("Zm9v\nYmFy") == Array("foobar".utf8))
        #expect(throws: CryptoError.self) { try Base64.decode("Zm9v!mFy") }
        #expect(throws: CryptoError.self) { try Base64.decode("Zg==Zg==") }
        #expect(throws: CryptoError.self) { try Base64.decode("Z") }
        #expect(throws: CryptoError.self) { try Base64.decode(utf8: Array("Zm=9".utf8).lazy.map { $0 }) }
    }

    /// Hex of contiguous and non-contiguous sequences agrees with printf-style formatting.
    @Test func hexAgreesWithFormat() throws {
        var random = SeededRandom("Base64Tests.hex")
        for _ in 0..<100 {
            let bytes = (0..<Int.random(in: 0...100, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let expected = bytes.map { String(format: "%02x", $0) }.joined()
            #expect(Hex.encode(bytes) == expected)
            #expect(Hex.encode(bytes.lazy.map { $0 }) == expected)
            #expect(Hex.encode(bytes[...]) == expected)
            #expect(try Hex.decode(expected) == bytes)
        }
    }
}
