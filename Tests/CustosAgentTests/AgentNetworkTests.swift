import CustosAgent
import CustosCrypto
import CustosTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP listener that accepts connections and closes them at once, counting them: a service that is "up" at the
/// socket level but never answers (or, with `answer`, reads the request and sends those bytes before closing).
final class ClosingListener: Sendable {
    let fd: Int32
    let port: Int
    let answer: [UInt8]?
    let accepted = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let done = DispatchSemaphore(value: 0)

    init(answer: String? = nil) throws {
        self.answer = answer.map { Array($0.utf8) }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw AgentTestError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, 16) == 0 else {
            close(listener)
            throw AgentTestError("bind/listen failed")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        fd = listener
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts and closes connections on a thread until ``stop()``.
    func start() {
        Thread.detachNewThread { [self] in
            while !stopping.load(ordering: .relaxed) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                let client = accept(fd, nil, nil)
                if client >= 0 {
                    accepted.add(1, ordering: .relaxed)
                    if let answer {
                        var request = [UInt8](repeating: 0, count: 65_536)
                        _ = recv(client, &request, request.count, 0)
                        _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                    close(client)
                }
            }
            done.signal()
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        done.wait()
        close(fd)
    }
}

@Suite(.serialized, .enabled(if: AgentTestConditions.ready, Comment(rawValue: AgentTestConditions.reason)))
struct AgentNetworkTests {
    static let fastRetries = ["CUSTOS_AGENT_RETRY_BACKOFF_MS": "20"]

    /// Nothing listens: the handshake is tried 5 times, then exit 2 with the `auth` stage and the attempt count.
    @Test(.timeLimit(.minutes(10)))
    func serviceDownGivesUpAfterBoundedRetries() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let port = try ServiceProcess.freePort()
        let result = try guest.agent(
            ["fetch", "--url", "http://127.0.0.1:\(port)", "--resource", "default/key/disk", "--out", guest.output.path],
            environment: Self.fastRetries)
        #expect(result.status == 2, "\(result.stdout) \(result.stderr)")
        let error = try #require(FakeGuest.error(result))
        #expect(error["code"] == "authUnreachable")
        #expect(error["field"] == "auth")
        #expect(error["message"]?.stringValue?.contains("gave up after 5 attempts") == true, "\(error)")
        #expect(result.stderr.hasPrefix("error: auth:"), "\(result.stderr)")
        // No quote was asked for: the service was never reached.
        #expect(guest.configfs.quotesIssued == 0)
    }

    /// `custos agent fetch` of one resource from a local listener, with fast retries.
    static func fetch(_ guest: FakeGuest, from listener: ClosingListener) throws -> CustosExecutable.Result {
        try guest.agent(
            ["fetch", "--url", "http://127.0.0.1:\(listener.port)", "--resource", "default/key/disk", "--out", guest.output.path],
            environment: fastRetries)
    }

    /// A listener that accepts and drops every connection: exactly 5 connections, then the same error.
    @Test(.timeLimit(.minutes(10)))
    func droppedConnectionsAreRetriedExactlyFiveTimes() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let listener = try ClosingListener()
        listener.start()
        defer { listener.stop() }
        let result = try Self.fetch(guest, from: listener)
        #expect(result.status == 2, "\(result.stdout) \(result.stderr)")
        #expect(FakeGuest.error(result)?["code"] == "authUnreachable")
        #expect(listener.accepted.load(ordering: .relaxed) == 5)
    }

    /// A server that is not a KBS (a redirect, a plain 404 page) or a URL with a fragment or user: exit 2, the
    /// agent's input is unusable; exit 1 stays for a service's refusal.
    @Test(.timeLimit(.minutes(10)))
    func answersThatAreNotKBSAreUnusableNotRefusals() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        for answer in [
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here.",
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\nConnection: close\r\n\r\n<html>",
        ] {
            let listener = try ClosingListener(answer: answer)
            listener.start()
            defer { listener.stop() }
            let result = try Self.fetch(guest, from: listener)
            #expect(result.status == 2, "\(answer.prefix(20)): \(result.stdout) \(result.stderr)")
            #expect(FakeGuest.error(result)?["code"] == "authUnusable", "\(answer.prefix(20))")
        }
        for url in ["http://127.0.0.1:9#fragment", "http://user@127.0.0.1:9"] {
            let result = try guest.agent(["fetch", "--url", url, "--resource", "default/key/disk", "--out", guest.output.path])
            #expect(result.status == 2, "\(url)")
            #expect(FakeGuest.error(result)?["code"] == "usageUnusable", "\(url)")
        }
    }

    /// Plain HTTP to a host that is not loopback is refused before any connection; `--insecure-http` lifts that.
    @Test func plainHTTPOnlyToLoopback() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let refused = try guest.agent([
            "fetch", "--url", "http://192.0.2.1:8080", "--resource", "default/key/disk", "--out", guest.output.path,
        ])
        #expect(refused.status == 2)
        #expect(FakeGuest.error(refused)?["code"] == "usageUnusable")
        #expect(FakeGuest.error(refused)?["message"]?.stringValue?.contains("--insecure-http") == true)
    }

    /// Secrets only on tmpfs: a directory on the disk-backed /tmp (or wherever the package lives) is refused before
    /// attesting, unless --allow-disk.
    @Test func diskDirectoryIsRefused() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let disk = TestData.packageRoot.appendingPathComponent(".build/agent-disk-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: disk) }
        try #require(!SecretFileWriter.isMemoryBacked(TestData.packageRoot.path), "the package root is on tmpfs here")
        let result = try guest.agent(["fetch", "--url", "http://127.0.0.1:9", "--resource", "default/key/disk", "--out", disk.path])
        #expect(result.status == 2)
        #expect(FakeGuest.error(result)?["code"] == "writeUnusable")
        #expect(FakeGuest.error(result)?["message"]?.stringValue?.contains("tmpfs") == true)
        #expect(guest.configfs.quotesIssued == 0)
    }
}

// MARK: - TLS

/// The agent through a TLS terminator (Python's ssl module) in front of `custos serve`: `--ca` with the CA that
/// issued the server certificate completes the flow; another CA, or the system roots, fail with the TLS reason.
@Suite(.serialized, .enabled(if: AgentTestConditions.ready, Comment(rawValue: AgentTestConditions.reason)))
struct AgentTLSTests {
    /// A CA, a server certificate for IP 127.0.0.1 from it, and an unrelated CA, made with the openssl CLI.
    static func makeCertificates(in directory: URL) throws -> (ca: String, wrongCA: String, cert: String, key: String) {
        func openssl(_ arguments: [String]) throws {
            let (status, _, err) = try JOSEPeer.run("/usr/bin/openssl", arguments)
            guard status == 0 else { throw AgentTestError("openssl \(arguments.first ?? ""): \(err)") }
        }
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        for (name, subject) in [("ca", "/CN=Custos agent test CA"), ("wrong-ca", "/CN=Some other CA")] {
            try openssl([
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("\(name).key"),
                "-out", path("\(name).pem"), "-days", "2", "-subj", subject,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        }
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("server.key"), "-out",
            path("server.csr"), "-subj", "/CN=127.0.0.1",
        ])
        try Data("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".utf8).write(to: directory.appendingPathComponent("ext.cnf"))
        try openssl([
            "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial", "-out",
            path("server.pem"), "-days", "2", "-extfile", path("ext.cnf"),
        ])
        return (path("ca.pem"), path("wrong-ca.pem"), path("server.pem"), path("server.key"))
    }

    @Test(.timeLimit(.minutes(10)))
    func caMustIssueTheServerCertificate() async throws {
        try await AgentFlowTests.withService { service, guest in
            let certificates = try Self.makeCertificates(in: guest.directory)
            let terminator = try PortProcess(
                "/usr/bin/python3",
                [
                    TestData.packageRoot.appendingPathComponent("scripts/agent/tls_terminator.py").path, certificates.cert,
                    certificates.key,
                    String(service.port),
                ])
            defer { terminator.stop() }
            let url = "https://127.0.0.1:\(terminator.port)"
            let base = ["fetch", "--url", url, "--resource", "default/key/disk", "--out", guest.output.path]

            for (label, extra) in [("wrong CA", ["--ca", certificates.wrongCA]), ("system roots", [])] {
                let refused = try guest.agent(base + extra, environment: AgentNetworkTests.fastRetries)
                #expect(refused.status == 2, "\(label): \(refused.stdout) \(refused.stderr)")
                let error = try #require(FakeGuest.error(refused), "\(label)")
                #expect(error["field"] == "auth", "\(label)")
                #expect(error["message"]?.stringValue?.contains("TLS") == true, "\(label): \(error)")
                #expect(!FileManager.default.fileExists(atPath: guest.output.appendingPathComponent("key/disk").path))
            }
            #expect(guest.configfs.quotesIssued == 0)

            let accepted = try guest.agent(base + ["--ca", certificates.ca])
            #expect(accepted.status == 0, "\(accepted.stdout) \(accepted.stderr) \(terminator.stderr)")
            let file = guest.output.appendingPathComponent("key/disk").path
            #expect(FileManager.default.contents(atPath: file).map { [UInt8]($0) } == AgentFlowTests.secret)
        }
    }
}
