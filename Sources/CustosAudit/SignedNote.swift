public import CustosCrypto
import Foundation

// MARK: - Key names and key IDs (C2SP signed-note v1.0.0; specs/audit.md §6)

/// A C2SP `signed-note` verifier key for Ed25519 (signature type `0x01`): `<name>+<hex8 key ID>+<base64(0x01‖pub)>`.
public struct NoteVerifierKey: Sendable, Equatable {
    /// The key name (no Unicode white space, no `+`).
    public let name: String
    /// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pub)[0..<4]`, big-endian.
    public let keyID: UInt32
    /// The Ed25519 public key.
    public let publicKey: Ed25519PublicKey

    /// The key for `name` and `publicKey`.
    /// - Throws: ``AuditError/Code-swift.struct/malformedKey`` for an invalid name.
    public init(name: String, publicKey: Ed25519PublicKey) throws(AuditError) {
        guard Self.isValidName(name) else { throw AuditError(.malformedKey, "invalid key name \"\(name)\"") }
        self.name = name
        self.publicKey = publicKey
        self.keyID = Self.keyID(name: name, publicKey: publicKey.rawRepresentation)
    }

    /// Parses a vkey, recomputing its key ID (Go `NewVerifier`).
    /// - Throws: ``AuditError/Code-swift.struct/malformedKey`` for a bad name, key ID, type byte or key length.
    public init(parsing vkey: String) throws(AuditError) {
        let parts = vkey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw AuditError(.malformedKey, "a vkey has three '+'-separated parts") }
        let name = String(parts[0])
        guard Self.isValidName(name) else { throw AuditError(.malformedKey, "invalid key name \"\(name)\"") }
        guard parts[1].utf8.count == 8, let id = UInt32(parts[1], radix: 16), parts[1].allSatisfy(\.isHexDigit) else {
            throw AuditError(.malformedKey, "the key ID is not 8 hex digits")
        }
        guard let key = StrictBase64.decode(String(parts[2])), key.count == 33, key[0] == 0x01 else {
            throw AuditError(.malformedKey, "the key is not base64(0x01 ‖ 32-byte Ed25519 key)")
        }
        let publicKey: Ed25519PublicKey
        do { publicKey = try Ed25519PublicKey(rawRepresentation: key[1...]) } catch {
            throw AuditError(.malformedKey, "invalid Ed25519 public key: \(error.reason)")
        }
        try self.init(name: name, publicKey: publicKey)
        guard keyID == id else { throw AuditError(.malformedKey, "the key ID does not match the name and key") }
    }

    /// The vkey string.
    public var encoded: String {
        name + "+" + Self.hex8(keyID) + "+" + Base64.encode([0x01] + publicKey.rawRepresentation)
    }

    static func hex8(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pub)[0..<4]` read big-endian (Trap 12: the type byte is included).
    public static func keyID(name: String, publicKey: [UInt8]) -> UInt32 {
        let hash = Digest.sha256(Array(name.utf8) + [0x0A, 0x01] + publicKey)
        return hash[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Non-empty, no Unicode white space, no `+`, no control characters.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "+" || $0.value < 0x20 || $0.value == 0x7F }
    }
}

/// An Ed25519 note signer: a key name and a private key.
public struct NoteSigner: Sendable {
    /// The key's verifier side.
    public let verifierKey: NoteVerifierKey
    let privateKey: Ed25519PrivateKey

    /// - Throws: ``AuditError/Code-swift.struct/malformedKey`` for an invalid name.
    public init(name: String, privateKey: Ed25519PrivateKey) throws(AuditError) {
        self.verifierKey = try NoteVerifierKey(name: name, publicKey: privateKey.publicKey)
        self.privateKey = privateKey
    }

    /// Parses Go's signer-key format `PRIVATE+KEY+<name>+<hex8>+<base64(0x01 ‖ seed)>` (tests and import only).
    public init(parsingGoSignerKey text: String) throws(AuditError) {
        let parts = text.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY" else {
            throw AuditError(.malformedKey, "not a PRIVATE+KEY+name+id+key signer key")
        }
        guard let key = StrictBase64.decode(String(parts[4])), key.count == 33, key[0] == 0x01 else {
            throw AuditError(.malformedKey, "the signer key is not base64(0x01 ‖ 32-byte seed)")
        }
        let privateKey: Ed25519PrivateKey
        do { privateKey = try Ed25519PrivateKey(rawRepresentation: SecretBytes(Array(key[1...]))) } catch {
            throw AuditError(.malformedKey, "invalid Ed25519 seed: \(error.reason)")
        }
        try self.init(name: String(parts[2]), privateKey: privateKey)
        guard Self.hex(verifierKey.keyID) == parts[3] else { throw AuditError(.malformedKey, "the key ID does not match") }
    }

    private static func hex(_ id: UInt32) -> String { NoteVerifierKey.hex8(id) }

    /// The signature line `— <name> <base64(keyID ‖ signature)>\n` over `text`.
    public func signatureLine(for text: String) throws(AuditError) -> String {
        let signature: [UInt8]
        do { signature = try privateKey.signature(for: Array(text.utf8)) } catch {
            throw AuditError(.malformedKey, "signing failed: \(error.reason)")
        }
        let id = verifierKey.keyID
        let prefix: [UInt8] = [UInt8(id >> 24), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff)]
        return "\u{2014} \(verifierKey.name) \(Base64.encode(prefix + signature))\n"
    }

    /// The signed note: `text`, a blank line, one signature line.
    /// - Throws: ``AuditError/Code-swift.struct/malformedNote`` when `text` is empty, does not end in one LF, holds
    ///   control characters or an empty last line.
    public func sign(text: String) throws(AuditError) -> String {
        guard !text.isEmpty, text.hasSuffix("\n"), !text.hasSuffix("\n\n") else {
            throw AuditError(.malformedNote, "a note's text must end in exactly one newline")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) else {
            throw AuditError(.malformedNote, "a note's text must not contain control characters")
        }
        return text + "\n" + (try signatureLine(for: text))
    }
}

// MARK: - Opening notes

/// A note whose signature at least one trusted key verified.
public struct OpenedNote: Sendable, Equatable {
    /// The signed text (including its final LF).
    public let text: String
    /// The trusted keys that verified it.
    public let verifiedBy: [NoteVerifierKey]
    /// How many signature lines came from keys not trusted here (ignored).
    public let unverifiedSignatureCount: Int
}

/// C2SP signed notes: open and verify.
public enum SignedNote {
    /// The most signature lines Custos reads (C2SP: at least 16; Go: 100).
    public static let maxSignatures = 32

    /// Opens `note` (specs/audit.md §6 "Opening a note"): checks the format, then the signatures of the keys in
    /// `verifiers`, matched by name and key ID together.
    /// - Throws: ``AuditError/Code-swift.struct/malformedNote`` for a malformed note,
    ///   ``AuditError/Code-swift.struct/noteNotVerified`` when a trusted key's signature fails or none verified.
    public static func open(_ note: [UInt8], verifiers: [NoteVerifierKey]) throws(AuditError) -> OpenedNote {
        guard let message = String(validating: note, as: UTF8.self) else {
            throw AuditError(.malformedNote, "the note is not valid UTF-8")
        }
        guard !message.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) else {
            throw AuditError(.malformedNote, "the note contains control characters")
        }
        let bytes = Array(message.utf8)
        // The split is the last "\n\n": text = up to and including the first LF, signatures after the blank line.
        var split: Int? = nil
        var index = bytes.count - 2
        while index >= 0 {
            if bytes[index] == 0x0A, bytes[index + 1] == 0x0A {
                split = index
                break
            }
            index -= 1
        }
        guard let split else { throw AuditError(.malformedNote, "the note has no blank line before its signatures") }
        let text = Array(bytes[...split])
        let signatureBlock = Array(bytes[(split + 2)...])
        guard !signatureBlock.isEmpty, signatureBlock.last == 0x0A else {
            throw AuditError(.malformedNote, "the signature block is empty or does not end in a newline")
        }
        let lines = signatureBlock.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard lines.count <= maxSignatures else { throw AuditError(.malformedNote, "more than \(maxSignatures) signatures") }
        let dash: [UInt8] = [0xE2, 0x80, 0x94, 0x20]
        // Parse every line first: a malformed note is malformed whatever its signatures say.
        var signatures: [(name: String, id: UInt32, bytes: [UInt8])] = []
        for line in lines {
            let line = Array(line)
            guard line.starts(with: dash) else { throw AuditError(.malformedNote, "a signature line does not start with '— '") }
            let rest = line[dash.count...]
            guard let space = rest.lastIndex(of: 0x20) else { throw AuditError(.malformedNote, "a signature line has no key name") }
            let name = String(decoding: rest[..<space], as: UTF8.self)
            guard NoteVerifierKey.isValidName(name) else { throw AuditError(.malformedNote, "invalid key name in a signature line") }
            guard let signature = StrictBase64.decode(String(decoding: rest[(space + 1)...], as: UTF8.self)), signature.count >= 5 else {
                throw AuditError(.malformedNote, "a signature is not valid base64 of at least 5 bytes")
            }
            signatures.append((name, signature[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, signature))
        }
        var verified: [NoteVerifierKey] = []
        var unverified = 0
        for signature in signatures {
            guard let key = verifiers.first(where: { $0.name == signature.name && $0.keyID == signature.id }) else {
                unverified += 1
                continue
            }
            if verified.contains(key) { continue }
            guard signature.bytes.count == 4 + Ed25519.signatureByteCount, key.publicKey.isValidSignature(signature.bytes[4...], for: text)
            else {
                throw AuditError(.noteNotVerified, "the signature of \(signature.name) does not verify")
            }
            verified.append(key)
        }
        guard !verified.isEmpty else { throw AuditError(.noteNotVerified, "no trusted key signed the note") }
        return OpenedNote(text: String(decoding: text, as: UTF8.self), verifiedBy: verified, unverifiedSignatureCount: unverified)
    }
}

// MARK: - Strict Base64

/// Standard-alphabet, padded, canonical base64 only (Trap 11): decodes, then re-encodes and compares.
enum StrictBase64 {
    static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 4 == 0,
            text.utf8.allSatisfy({ $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "=") || isAlnum($0) })
        else { return nil }
        guard let bytes = try? Base64.decode(text), Base64.encode(bytes) == text else { return nil }
        return bytes
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }
}
