import CustosServer
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsAreWhatMakeRunUses() {
        let configuration = ServerConfiguration()
        #expect(configuration.baseURL == "http://127.0.0.1:8080")
        #expect(configuration.dataDirectory == "var")
        #expect(configuration.policiesDirectory == "Policies")
        #expect(configuration.certsDirectory == "Certs")
        #expect(configuration.collateral == .service(url: ServerConfiguration.intelPCS))
        #expect(!configuration.usesTestAnchors)
    }

    @Test(arguments: [
        ("0.0.0.0:9000", "0.0.0.0", 9000), ("[::1]:8443", "::1", 8443), (":7000", "127.0.0.1", 7000),
        ("localhost:0", "localhost", 0),
    ])
    func listenAddresses(text: String, host: String, port: Int) throws {
        var configuration = ServerConfiguration()
        try configuration.setListen(text)
        #expect(configuration.host == host)
        #expect(configuration.port == port)
    }

    @Test(arguments: ["8080", "host:", "host:70000", "[::1]8080", "host:port", "[::1"])
    func badListenAddresses(text: String) {
        var configuration = ServerConfiguration()
        #expect(throws: ConfigurationError.self) { try configuration.setListen(text) }
    }

    @Test func yamlFileSetsKeys() throws {
        var configuration = ServerConfiguration()
        try configuration.apply(
            yaml: """
                listen: "[::1]:9443"
                data: /srv/custos
                collateral: /srv/collateral
                kbs_denial_status: 403
                tls_cert: /etc/custos/cert.pem
                tls_key: /etc/custos/key.pem
                """, file: "custos.yaml")
        #expect(configuration.baseURL == "https://[::1]:9443")
        #expect(configuration.dataDirectory == "/srv/custos")
        #expect(configuration.collateral == .directory("/srv/collateral"))
        #expect(configuration.kbsDenialStatus == 403)
    }

    @Test func unknownKeyIsRefusedWithItsPlace() {
        var configuration = ServerConfiguration()
        do {
            try configuration.apply(yaml: "data: x\nlisen: 1.2.3.4:80\n", file: "c.yaml")
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.message.hasPrefix("c.yaml:2:1:"))
            #expect(error.message.contains("lisen"))
        }
    }

    @Test(arguments: [
        "kbs_denial_status: 404", "tls_cert: a.pem", "json_limit: -1", "token_lifetime_seconds: 5", "port: [1]",
        "- a\n- b", "data: [x]", "{ unclosed", "challenge_rate: 0", "challenge_rate: -5",
        // YAML 1.1 base-60 integers: the long one trapped inside Yams before.
        "challenge_rate: 1:30", "json_limit: 333333373333333315:15",
        // Other forms that are not decimal: YAML 1.1 octal (8), binary, hexadecimal, digit groups, and one past Int.
        "challenge_rate: 010", "challenge_rate: 0b101", "json_limit: 0x10000", "json_limit: 65_536",
        "json_limit: 9223372036854775808", "appraisal_retention_days: -1", "appraisal_retention_days: 36501",
        "challenge_rate_per_client: -1", "challenge_rate_per_client: 1000001", "client_address_header: \"X Forwarded\"",
        "client_address_header: [a]",
    ])
    func badFilesAreRefused(yaml: String) {
        var configuration = ServerConfiguration()
        #expect(throws: ConfigurationError.self) { try configuration.apply(yaml: yaml, file: "c.yaml") }
    }

    /// Integers are read from their text in decimal, quoted or not, with an optional sign.
    @Test func integersAreReadInDecimal() throws {
        var configuration = ServerConfiguration()
        try configuration.apply(
            yaml: "challenge_rate: 25\njson_limit: \"70000\"\nevidence_limit: +2000000\ntoken_lifetime_seconds: 600\n"
                + "appraisal_retention_days: 90\nchallenge_rate_per_client: 20\nclient_address_header: X-Forwarded-For\n",
            file: "c.yaml")
        #expect(configuration.challengeRatePerClient == 20)
        #expect(configuration.clientAddressHeader == "X-Forwarded-For")
        #expect(ServerConfiguration().challengeRatePerClient == 0)
        #expect(configuration.challengeRate == 25)
        #expect(configuration.appraisalRetentionDays == 90)
        #expect(ServerConfiguration().appraisalRetentionDays == 0)
        #expect(configuration.jsonLimit == 70_000)
        #expect(configuration.evidenceLimit == 2_000_000)
        #expect(configuration.tokenLifetimeSeconds == 600)
    }

    /// Session cookies are `Secure` when clients come over HTTPS: built-in TLS, or an `https` issuer (a TLS proxy).
    @Test func servedOverHTTPSFollowsTLSOrTheIssuerScheme() {
        var configuration = ServerConfiguration()
        #expect(!configuration.servedOverHTTPS)
        configuration.issuer = "http://custos.example"
        #expect(!configuration.servedOverHTTPS)
        configuration.issuer = "HTTPS://custos.example"
        #expect(configuration.servedOverHTTPS)
        configuration.issuer = nil
        configuration.tlsCertificate = "cert.pem"
        #expect(configuration.servedOverHTTPS)
    }
}
