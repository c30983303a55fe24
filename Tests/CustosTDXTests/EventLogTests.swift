import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

@Suite(Requirement.testData)
struct EventLogTests {
    static var logs: [ExpectedEventLog] { Fixtures.expected?.eventlog ?? [] }

    @Test("replay, events and quote comparison equal the recorded results", arguments: logs)
    func replay(expected: ExpectedEventLog) throws {
        let log = try EventLog(parsing: TestData.bytes("tdx/" + expected.log))
        let replayed = try log.replay()
        #expect(replayed.map { Hex.encode($0) } == expected.replayed)
        let measured = log.events.filter { $0.eventType != EventLog.evNoAction }
        #expect(measured.count == expected.events)
        let types: [[ExpectedEventLog.EventTypeEntry]] = measured.map { [.int(Int($0.mrIndex)), .string($0.typeName)] }
        #expect(types == expected.event_types)
        let quote = try Quote(parsing: TestData.bytes("tdx/" + expected.quote))
        #expect(zip(quote.body.rtmrs, replayed).map { $0 == $1 } == expected.match)
    }

    @Test("the COS log replays exactly to q10 and exposes the booted images' Authenticode digests")
    func cosMatchesQ10() throws {
        let log = try EventLog(parsing: TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat"))
        let quote = try Quote(parsing: TestData.bytes("tdx/quotes/q10_gotdx_cos113_v4.bin"))
        #expect(try log.replay() == quote.body.rtmrs)
        // expected.json lists two EV_EFI_BOOT_SERVICES_APPLICATION events, both in MR 2 (RTMR1).
        #expect(log.bootServicesApplicationDigests.count == 2)
        #expect(log.events.filter { $0.eventType == EventLog.evEFIBootServicesApplication }.allSatisfy { $0.rtmrIndex == 1 })
        #expect(log.events.contains { $0.decodedData == "Exit Boot Services Invocation" })
        #expect(log.events.contains { $0.decodedData == "SecureBoot" })
    }

    @Test("the trustee direct-boot log does not match q09")
    func trusteeDoesNotMatchQ09() throws {
        let log = try EventLog(parsing: TestData.bytes("tdx/eventlog/trustee_CCEL_data_directboot.dat"))
        let quote = try Quote(parsing: TestData.bytes("tdx/quotes/q09_trustee_tdx_quote_4_v4.bin"))
        #expect(try log.replay() != quote.body.rtmrs)
    }

    @Test("the CCEL table fields")
    func table() throws {
        let table = try CCELTable(parsing: TestData.bytes("tdx/eventlog/gotdx_ccel_table.dat"))
        // expected.json eventlog[0].ccel_table
        #expect(table.ccType == 2 && table.ccSubtype == 0)
        #expect(table.logAreaMinimumLength == 0x40000)
        #expect(table.logAreaStartAddress == 0xbedb_f000)
        for length in 0..<56 {
            #expect(throws: TDXError(.malformedEventLog, "")) {
                try CCELTable(parsing: Array(try TestData.bytes("tdx/eventlog/gotdx_ccel_table.dat")[0..<length]))
            }
        }
    }

    @Test("truncation inside an event is a typed error; cutting at an event boundary yields a shorter log")
    func truncation() throws {
        let bytes = try TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat")
        let full = try EventLog(parsing: bytes)
        let boundaries = Set(full.events.dropFirst().map(\.offset) + [full.length])
        for length in 0..<full.length {
            do {
                let log = try EventLog(parsing: Array(bytes[0..<length]))
                #expect(boundaries.contains(length) || length - log.length < 8, "prefix \(length) parsed to \(log.length)")
            } catch {
                #expect(error.code == .malformedEventLog)
                #expect(error.offset != nil)
            }
        }
    }

    @Test("random byte flips never crash the log parser")
    func randomFlips() throws {
        let bytes = Array(try TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat").prefix(20_000))
        var generator = SeededRandom("EventLogTests.randomFlips")
        for _ in 0..<2000 {
            var mutated = bytes
            let index = Int(generator.next() % UInt64(mutated.count))
            mutated[index] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            do { _ = try EventLog(parsing: mutated).replay() } catch { #expect(error.code == .malformedEventLog) }
        }
    }
}
