public import CustosCrypto

/// The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1, spec §1.5).
///
/// ```
/// SGXExtensions ::= SEQUENCE OF SEQUENCE { OBJECT IDENTIFIER, value }
///   .1 PPID OCTET STRING(16)
///   .2 TCB SEQUENCE OF SEQUENCE { .2.k, INTEGER } (k = 1…16 comp SVNs, 17 PCESVN), .2.18 CPUSVN OCTET STRING(16)
///   .3 PCE-ID OCTET STRING(2)
///   .4 FMSPC OCTET STRING(6)
///   .5 SGX type ENUMERATED
///   .6 Platform Instance ID OCTET STRING(16) (optional)
///   .7 Configuration SEQUENCE { .7.1/.7.2/.7.3 BOOLEAN } (optional)
/// ```
/// SVNs are DER INTEGERs (255 is `02 02 00 ff`, spec §8 trap 8); TCB matching uses the 16 component INTEGERs.
public struct PCKExtension: Sendable, Equatable {
    public static let oid = "1.2.840.113741.1.13.1"

    public let ppid: [UInt8]
    /// The 16 SGX TCB component SVNs (.2.1–.2.16).
    public let tcbComponents: [Int]
    public let pceSVN: Int
    public let cpuSVN: [UInt8]
    public let pceID: [UInt8]
    public let fmspc: [UInt8]
    /// 0 Standard, 1 Scalable, 2 ScalableWithIntegrity.
    public let sgxType: Int
    public let platformInstanceID: [UInt8]?
    /// dynamicPlatform, cachedKeys, SMTEnabled (platform-CA PCKs only).
    public let configuration: [String: Bool]?

    /// Reads the extension of `certificate`.
    /// - Throws: ``TDXError/Code/invalidPCKCertificate`` when the extension is missing or malformed.
    public init(certificate: Certificate) throws(TDXError) {
        guard let ext = certificate.extension(oid: Self.oid) else {
            throw TDXError(.invalidPCKCertificate, "PCK certificate has no SGX extension (\(Self.oid))")
        }
        do {
            try self.init(der: ext.value)
        } catch let error as TDXError {
            throw error
        } catch {
            throw TDXError(.invalidPCKCertificate, "SGX extension: \(error)")
        }
    }

    /// The content octets of the extension's OID: entries are looked up by their OIDs' bytes (`arcs` appended),
    /// which spares rendering ~30 dotted OIDs per PCK certificate.
    private static let oidContent: [UInt8] = {
        var writer = DERWriter()
        writer.objectIdentifier(oid)
        return Array(writer.bytes.dropFirst(2))  // tag and one-byte length
    }()

    /// The OID bytes of an entry: a well-formed OBJECT IDENTIFIER's content (minimal arcs, last octet ends an arc).
    private static func oidKey(_ node: DERNode) throws(TDXError) -> [UInt8] {
        let content = node.content
        guard node.tag == DERNode.Tag.objectIdentifier, let last = content.last, last & 0x80 == 0, content.count <= 64,
            content.first != 0x80
        else { throw TDXError(.invalidPCKCertificate, "SGX extension entry at offset \(node.offset) has no valid OID") }
        for (previous, byte) in zip(content, content.dropFirst()) where previous & 0x80 == 0 && byte == 0x80 {
            throw TDXError(.invalidPCKCertificate, "SGX extension entry at offset \(node.offset) has a non-minimal OID")
        }
        return Array(content)
    }

    /// Parses the extension's DER value.
    public init(der: [UInt8]) throws {
        let root = try DERReader.parseSingle(der).expecting(DERNode.Tag.sequence)
        var values: [[UInt8]: DERNode] = [:]
        for entry in try root.children() {
            let parts = try entry.expecting(DERNode.Tag.sequence).children()
            guard parts.count == 2 else { throw TDXError(.invalidPCKCertificate, "SGX extension entry has \(parts.count) parts") }
            let oid = try Self.oidKey(parts[0])
            guard values[oid] == nil else {
                throw TDXError(.invalidPCKCertificate, "duplicate SGX extension entry \((try? parts[0].objectIdentifier()) ?? "?")")
            }
            values[oid] = parts[1]
        }
        func required(_ suffix: UInt8) throws -> DERNode {
            guard let node = values[Self.oidContent + [suffix]] else {
                throw TDXError(.invalidPCKCertificate, "SGX extension lacks \(Self.oid).\(suffix)")
            }
            return node
        }
        func octets(_ node: DERNode, _ count: Int, _ name: String) throws -> [UInt8] {
            guard node.tag == DERNode.Tag.octetString, node.content.count == count else {
                throw TDXError(.invalidPCKCertificate, "SGX extension \(name) is not an OCTET STRING(\(count))")
            }
            return Array(node.content)
        }
        ppid = try octets(required(1), 16, "PPID")
        pceID = try octets(required(3), 2, "PCE-ID")
        fmspc = try octets(required(4), 6, "FMSPC")
        let typeNode = try required(5)
        guard typeNode.tag == 0x0a, typeNode.content.count == 1 else {
            throw TDXError(.invalidPCKCertificate, "SGX extension SGX type is not a one-byte ENUMERATED")
        }
        sgxType = Int(typeNode.content[typeNode.content.startIndex])

        var tcb: [[UInt8]: DERNode] = [:]
        for entry in try required(2).expecting(DERNode.Tag.sequence).children() {
            let parts = try entry.expecting(DERNode.Tag.sequence).children()
            guard parts.count == 2 else { throw TDXError(.invalidPCKCertificate, "SGX TCB entry has \(parts.count) parts") }
            tcb[try Self.oidKey(parts[0])] = parts[1]
        }
        let tcbPrefix = Self.oidContent + [2]
        var components: [Int] = []
        for index in UInt8(1)...16 {
            guard let node = tcb[tcbPrefix + [index]] else {
                throw TDXError(.invalidPCKCertificate, "SGX TCB lacks component \(index)")
            }
            let value = try node.integerValue()
            guard value <= 255 else { throw TDXError(.invalidPCKCertificate, "SGX TCB component \(index) = \(value) exceeds 255") }
            components.append(value)
        }
        tcbComponents = components
        guard let pce = tcb[tcbPrefix + [17]] else { throw TDXError(.invalidPCKCertificate, "SGX TCB lacks PCESVN") }
        pceSVN = try pce.integerValue()
        guard pceSVN <= 0xffff else { throw TDXError(.invalidPCKCertificate, "PCESVN \(pceSVN) exceeds 65535") }
        guard let cpu = tcb[tcbPrefix + [18]] else { throw TDXError(.invalidPCKCertificate, "SGX TCB lacks CPUSVN") }
        cpuSVN = try octets(cpu, 16, "CPUSVN")

        if let node = values[Self.oidContent + [6]] {
            platformInstanceID = try octets(node, 16, "Platform Instance ID")
        } else {
            platformInstanceID = nil
        }
        if let node = values[Self.oidContent + [7]] {
            var config: [String: Bool] = [:]
            let names = ["1": "dynamicPlatform", "2": "cachedKeys", "3": "smtEnabled"]
            for entry in try node.expecting(DERNode.Tag.sequence).children() {
                let parts = try entry.expecting(DERNode.Tag.sequence).children()
                guard parts.count == 2, parts[1].tag == DERNode.Tag.boolean, parts[1].content.count == 1 else {
                    throw TDXError(.invalidPCKCertificate, "SGX configuration entry is not { OID, BOOLEAN }")
                }
                let oid = try parts[0].objectIdentifier()
                let suffix = String(oid.split(separator: ".").last ?? "")
                config[names[suffix] ?? oid] = parts[1].content[parts[1].content.startIndex] != 0
            }
            configuration = config
        } else {
            configuration = nil
        }
    }
}
