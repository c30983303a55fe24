import CustosAudit
import Testing

@Suite struct AuditModuleTests {
    @Test func moduleLinks() { #expect(String(describing: CustosAudit.self) == "CustosAudit") }
}
