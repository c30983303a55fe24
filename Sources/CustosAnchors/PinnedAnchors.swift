import Foundation

// MARK: - The compiled-in pins (issue 11 §5)

extension AnchorManifest {
    /// The pins `custos` trusts, compiled into the binary: whoever can write the Certs folder can replace an
    /// anchor file but not its pin. `Certs/anchors.json` documents the same data; a test keeps the two equal.
    public static let pinned = AnchorManifest(
        version: 1,
        anchors: [
            AnchorPin(
                id: "intel-sgx-root-ca", vendor: "Intel", productLine: "SGX/TDX", role: "root CA",
                format: "x509-der", file: "intel/intel_sgx_root_ca.der",
                sha256: "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3",
                url: "https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer",
                urlSlice: nil, mirrorPath: "tdx/root/intel_sgx_root_ca.der",
                note: nil),
            AnchorPin(
                id: "amd-naples-ark", vendor: "AMD", productLine: "Naples", role: "ARK",
                format: "amd-sev", file: "amd/naples/ark.cert",
                sha256: "dedabca561e1dece8cc00b7bda864cf5f20b95017864408cfe18eaee0dce24b9",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_naples.cert",
                urlSlice: AnchorPin.Slice(offset: 832, length: 576), mirrorPath: "sev/amd-roots/naples/ark.cert",
                note: "AMD's published Naples ARK lacks its 256-byte signature (AMDESE/AMDSEV#17); the pin is that 576-byte body with "
                    + "the signature appended, as virtee/sev ships it, so --download cannot reproduce it: install it from a mirror."),
            AnchorPin(
                id: "amd-naples-ask", vendor: "AMD", productLine: "Naples", role: "ASK",
                format: "amd-sev", file: "amd/naples/ask.cert",
                sha256: "c6f30cf923f526c3bcd5c8c221db51e0db65911782f046de17a6603131cdfd7f",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_naples.cert",
                urlSlice: AnchorPin.Slice(offset: 0, length: 832), mirrorPath: "sev/amd-roots/naples/ask.cert",
                note: nil),
            AnchorPin(
                id: "amd-rome-ark", vendor: "AMD", productLine: "Rome", role: "ARK",
                format: "amd-sev", file: "amd/rome/ark.cert",
                sha256: "865977b268c16d5b27772b00aaefb4e737ba9499e818ed8e9f65b0cecefbc529",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_rome.cert",
                urlSlice: AnchorPin.Slice(offset: 1600, length: 1600), mirrorPath: "sev/amd-roots/rome/ark.cert",
                note: nil),
            AnchorPin(
                id: "amd-rome-ask", vendor: "AMD", productLine: "Rome", role: "ASK",
                format: "amd-sev", file: "amd/rome/ask.cert",
                sha256: "7754a69407d25540fe3a695be6b02c58a53bffd12594f5c30793d6cb62875706",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_rome.cert",
                urlSlice: AnchorPin.Slice(offset: 0, length: 1600), mirrorPath: "sev/amd-roots/rome/ask.cert",
                note: nil),
            AnchorPin(
                id: "amd-milan-ark", vendor: "AMD", productLine: "Milan", role: "ARK",
                format: "amd-sev", file: "amd/milan/ark.cert",
                sha256: "1246469862b78a7a8625579b0378d1f8e975eb8b82a1623b579d7968a5969888",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_milan.cert",
                urlSlice: AnchorPin.Slice(offset: 1600, length: 1600), mirrorPath: "sev/amd-roots/milan/ark.cert",
                note: nil),
            AnchorPin(
                id: "amd-milan-ask", vendor: "AMD", productLine: "Milan", role: "ASK",
                format: "amd-sev", file: "amd/milan/ask.cert",
                sha256: "c7c73765561c58003a3d09adb2c76993027dd3a1ec4e9be876024c035e015cec",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_milan.cert",
                urlSlice: AnchorPin.Slice(offset: 0, length: 1600), mirrorPath: "sev/amd-roots/milan/ask.cert",
                note: nil),
            AnchorPin(
                id: "amd-genoa-ark", vendor: "AMD", productLine: "Genoa", role: "ARK",
                format: "amd-sev", file: "amd/genoa/ark.cert",
                sha256: "8f4e3fd36589c23f1fe0c8338465bac7e2e066d97fc92f228bbee4fd356fb674",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_genoa.cert",
                urlSlice: AnchorPin.Slice(offset: 1600, length: 1600), mirrorPath: "sev/amd-roots/genoa/ark.cert",
                note: nil),
            AnchorPin(
                id: "amd-genoa-ask", vendor: "AMD", productLine: "Genoa", role: "ASK",
                format: "amd-sev", file: "amd/genoa/ask.cert",
                sha256: "c30307e4f594fb6c51fd753ab758eb78ad4bb70d9e4d96690e51c0621901031d",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_genoa.cert",
                urlSlice: AnchorPin.Slice(offset: 0, length: 1600), mirrorPath: "sev/amd-roots/genoa/ask.cert",
                note: nil),
            AnchorPin(
                id: "amd-turin-ark", vendor: "AMD", productLine: "Turin", role: "ARK",
                format: "amd-sev", file: "amd/turin/ark.cert",
                sha256: "f6405e5096a6eee1eb7d5df75c49f9b9f7c8357a31c7fff150149d68588a7bf7",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_turin.cert",
                urlSlice: AnchorPin.Slice(offset: 1600, length: 1600), mirrorPath: "sev/amd-roots/turin/ark.cert",
                note: nil),
            AnchorPin(
                id: "amd-turin-ask", vendor: "AMD", productLine: "Turin", role: "ASK",
                format: "amd-sev", file: "amd/turin/ask.cert",
                sha256: "2ee285477f0d5eb94a69029197f4cf58ca82d8e1b9a276da1ac45b0db3f4be56",
                url: "https://download.amd.com/developer/eula/sev/ask_ark_turin.cert",
                urlSlice: AnchorPin.Slice(offset: 0, length: 1600), mirrorPath: "sev/amd-roots/turin/ask.cert",
                note: nil),
        ])
}
