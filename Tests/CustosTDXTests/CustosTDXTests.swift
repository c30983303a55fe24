import CustosTestSupport
import Testing

@Suite struct CustosTDXPlaceholder {
    @Test func testDataIsFound() {
        #expect(TestData.isAvailable, "\(TestData.skipReason)")
    }
}
