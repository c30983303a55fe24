import CustosCrypto
import CustosTestSupport
import Testing

/// RFC 8785 (JCS) on the integer-only ``JSONValue``: the RFC's key-ordering vector, its string escaping, and the
/// strict parser's refusals.
@Suite struct CanonicalJSONTests {
    /// RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+1F600 (D83D DE00) precedes U+FB33.
    @Test func rfc8785KeyOrdering() throws {
        let input =
            #"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","#
            + #""\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#
        let canonical = CanonicalJSON.string(try JSONValue.parse(input))
        let expected =
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\","
            + "\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"דּ\":\"Hebrew Letter Dalet With Dagesh\"}"
        #expect(canonical == expected)
    }

    /// `keyPrecedes` (which compares UTF-8 bytes) agrees with a plain UTF-16 code-unit comparison on random keys drawn
    /// from every UTF-8 length class, including the U+E000–U+FFFF against supplementary case where byte order and
    /// UTF-16 order disagree, and on prefixes of each other.
    @Test func keyOrderMatchesUTF16CodeUnitOrder() {
        var random = SeededRandom("keyOrderMatchesUTF16CodeUnitOrder")
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
        func key() -> String {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                let pool = pools.randomElement(using: &random)!
                scalars.append(Unicode.Scalar(UInt32.random(in: pool, using: &random))!)
            }
            return String(scalars)
        }
        var disagreements: [String] = []
        var byteOrderDiffers = 0
        for _ in 0..<20_000 {
            let a = key()
            let b = Bool.random(using: &random) ? a + key() : key()
            let expected = Array(a.utf16).lexicographicallyPrecedes(Array(b.utf16))
            if Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) != expected { byteOrderDiffers += 1 }
            if CanonicalJSON.keyPrecedes(a, b) != expected
                || CanonicalJSON.keyPrecedes(b, a) != Array(b.utf16).lexicographicallyPrecedes(Array(a.utf16))
            {
                disagreements.append(
                    "\(a.unicodeScalars.map { String($0.value, radix: 16) }) vs \(b.unicodeScalars.map { String($0.value, radix: 16) })")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
        #expect(byteOrderDiffers > 100, "the surrogate case was drawn only \(byteOrderDiffers) times")
        #expect(!CanonicalJSON.keyPrecedes("a", "a"))
        #expect(CanonicalJSON.keyPrecedes("", "a"))
        #expect(CanonicalJSON.keyPrecedes("\u{1F600}", "\u{FB33}"))
    }

    /// RFC 8785 §3.2.2.2 string rules, from the RFC's sample's `string` member.
    @Test func rfc8785StringEscaping() throws {
        let input = #"{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"}"#
        #expect(CanonicalJSON.string(try JSONValue.parse(input)) == #"{"string":"€$\u000f\nA'B\"\\\\\"/"}"#)
    }

    @Test func literalsIntegersAndNesting() throws {
        let input = #" { "b" : [ null , true , false , -0 , 0 , 9007199254740991 ] , "a" : { "z" : 1 , "y" : "" } } "#
        #expect(CanonicalJSON.string(try JSONValue.parse(input)) == #"{"a":{"y":"","z":1},"b":[null,true,false,0,0,9007199254740991]}"#)
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#,  // duplicate key
        #"{"a":1.5}"#,  // fraction
        #"{"a":1e3}"#,  // exponent
        #"[9007199254740992]"#,  // beyond 2^53-1
        #"["\ud800"]"#,  // lone high surrogate
        #"["\udc00"]"#,  // lone low surrogate
        #"[01]"#,  // leading zero
        "[\"a\u{01}\"]",  // raw control character
        #"{"a":1} x"#,  // trailing bytes
        #"[1,]"#,  // trailing comma
        "",  // empty
        #"{"a""#,  // truncated
    ])
    func refusals(input: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(input) }
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: JSONError.self) { try JSONValue.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func depthLimit() throws {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONValue.parse(ok)
    }

    @Test func dottedPathLookup() throws {
        let value = try JSONValue.parse(#"{"tdx":{"quote":{"body":{"mr_td":"ab"}}},"ear.veraison.annotated-evidence":{"x":1}}"#)
        #expect(value.value(atPath: "tdx.quote.body.mr_td") == .string("ab"))
        #expect(value.value(atPath: "ear.veraison.annotated-evidence.x") == .integer(1))
        #expect(value.value(atPath: "tdx.quote.body.rtmr_0") == nil)
    }
}
