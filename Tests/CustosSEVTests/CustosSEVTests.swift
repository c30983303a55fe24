import CustosTestSupport
import Testing

@Suite struct CustosSEVPlaceholder {
    @Test func testDataIsFound() {
        #expect(TestData.isAvailable, "\(TestData.skipReason)")
    }
}
