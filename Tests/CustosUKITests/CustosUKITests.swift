import CustosTestSupport
import Testing

@Suite struct CustosUKIPlaceholder {
    @Test func testDataIsFound() {
        #expect(TestData.isAvailable, "\(TestData.skipReason)")
    }
}
