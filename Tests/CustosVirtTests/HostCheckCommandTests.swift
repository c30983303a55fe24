import CustosCrypto
import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// `custos host check` run as a user runs it: the real executable, exit codes, text and `--json`.
@Suite(Requirement.executableAndTestData, .serialized)
struct HostCheckCommandTests {
    static func checks(_ stdout: String) throws -> [String: (verdict: String, reason: String, fix: String)] {
        let value = try JSONValue.parse(stdout)
        let list = try #require(value["checks"]?.arrayValue)
        var result: [String: (verdict: String, reason: String, fix: String)] = [:]
        for item in list {
            let id = try #require(item["id"]?.stringValue)
            result[id] = (item["verdict"]?.stringValue ?? "", item["reason"]?.stringValue ?? "", item["fix"]?.stringValue ?? "")
        }
        return result
    }

    @Test("on this machine (no hardware-accelerated KVM, no SEV/TDX): FAIL lines with reasons, exit status 1", .timeLimit(.minutes(10)))
    func realHost() throws {
        // The real-boot suite may start a libvirt daemon while this test runs: look before and after.
        let daemonSockets = ["/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"]
        let daemonBefore = daemonSockets.contains { FileManager.default.fileExists(atPath: $0) }
        let result = try CustosExecutable.run(["host", "check", "--json"])
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        let checks = try Self.checks(result.stdout)
        #expect(Set(checks.keys) == Set(HostCheck.ids))
        let failing = checks.filter { $0.value.verdict == "FAIL" }
        #expect(!failing.isEmpty)
        for (id, check) in failing {
            #expect(!check.reason.isEmpty && !check.fix.isEmpty, "\(id)")
        }
        // Independent facts about this machine decide which FAILs must be there.
        let fm = FileManager.default
        let vendorKVM = fm.fileExists(atPath: "/sys/module/kvm_amd") || fm.fileExists(atPath: "/sys/module/kvm_intel")
        if !vendorKVM { #expect(checks["kvm"]?.verdict == "FAIL", "\(checks["kvm"]?.reason ?? "")") }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if cpuinfo.contains("AuthenticAMD"), !fm.fileExists(atPath: "/dev/sev") { #expect(checks["sev"]?.verdict == "FAIL") }
        if cpuinfo.contains(" hypervisor") { #expect(checks["nested"]?.verdict == "FAIL") }
        // No libvirt daemon here: the connection failure is reported, not a crash.
        let daemon = daemonBefore || daemonSockets.contains { fm.fileExists(atPath: $0) }
        if !daemon, cpuinfo.contains("AuthenticAMD") { #expect(checks["sev"]?.reason.contains("qemu:///system") == true) }

        let text = try CustosExecutable.run(["host", "check"])
        #expect(text.status == 1)
        #expect(text.stdout.split(separator: "\n").contains { $0.hasPrefix("FAIL  ") })
    }

    @Test("a fixture SEV host with a real SEV capture: no FAIL, exit 0")
    func fixtureHost() throws {
        let dir = try HostCheckTests.build(.sev)
        defer { dir.cleanup() }
        let domcaps = TestData.url(Captures.directory + Captures.sevHosts[0]).path
        let result = try CustosExecutable.run(["host", "check", "--json", "--host-root", dir.url.path, "--domcaps", domcaps])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let checks = try Self.checks(result.stdout)
        #expect(checks["sev"]?.verdict == "PASS")
        #expect(checks["sev-es"]?.verdict == "PASS")
        #expect(checks["tdx"]?.verdict == "WARN")

        let plain = try CustosExecutable.run([
            "host", "check", "--host-root", dir.url.path, "--domcaps", TestData.url(Captures.directory + Captures.plainHost).path,
        ])
        #expect(plain.status == 1)
        #expect(plain.stdout.contains("FAIL  sev"))
    }

    @Test("--connect test:///default: versions come from the connection; the driver's missing capabilities are a WARN, not a crash")
    func connectTestDriver() throws {
        let dir = try HostCheckTests.build(.sev)
        defer { dir.cleanup() }
        let result = try CustosExecutable.run(["host", "check", "--json", "--host-root", dir.url.path, "--connect", "test:///default"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let checks = try Self.checks(result.stdout)
        let sev = try #require(checks["sev"])
        #expect(sev.verdict == "WARN")
        #expect(sev.reason.contains("test:///default") && sev.reason.contains("virConnectGetDomainCapabilities"), "\(sev.reason)")
    }

    @Test("an unreadable or malformed --domcaps is unusable input: exit 2 with a JSON error")
    func badDomcaps() throws {
        let missing = try CustosExecutable.run(["host", "check", "--json", "--domcaps", "/nonexistent/caps.xml"])
        #expect(missing.status == 2)
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write("caps.xml", "<capabilities/>")
        let malformed = try CustosExecutable.run(["host", "check", "--json", "--domcaps", dir.url.appendingPathComponent("caps.xml").path])
        #expect(malformed.status == 2, "\(malformed.stdout)\(malformed.stderr)")
        let error = try JSONValue.parse(malformed.stdout)["error"]
        #expect(error?["code"]?.stringValue == "domainCapabilitiesMalformed")
    }
}
