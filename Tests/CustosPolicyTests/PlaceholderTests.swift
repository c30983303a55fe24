import CustosPolicy
import Testing

@Suite struct PolicyModuleTests {
    @Test func moduleLinks() { #expect(String(describing: CustosPolicy.self) == "CustosPolicy") }
}
